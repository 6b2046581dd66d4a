"""`python -m teleoffice`: the same command line as the `teleoffice` script."""

from teleoffice.cli import main

raise SystemExit(main())
