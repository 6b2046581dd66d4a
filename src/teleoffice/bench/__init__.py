"""Benchmarks of a running teleoffice server, driven by sipp over loopback.

`python -m teleoffice.bench [--quick] [--out DIR] [--only NAME]` (or `make bench`)
starts a server of its own on free ports, with its own data directory, measures
it from outside (sipp for load; /proc for the server's CPU time and memory) and
writes `results.json` and `summary.md` to the output directory.

Numbers are reported side by side within one run, as ratios and percentiles;
nothing here passes or fails on speed, since a shared two-core machine is noisy.

Modules: `harness` (processes: the server, sipp, /proc samples), `register` (the
benchmarks), `report` (JSON, Markdown and optional charts). This package imports
none of them on purpose, so `python -m teleoffice.bench.harness` runs cleanly.
"""

from __future__ import annotations
