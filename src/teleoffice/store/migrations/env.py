"""Alembic environment: runs migrations through the engine `db.upgrade` passes in.

`teleoffice.store.db.alembic_config` puts the engine into `config.attributes`, so
there is no alembic.ini and no URL to parse here. Running the `alembic` command
by hand also works: give it `-x url=sqlite:///path/to/teleoffice.db`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from teleoffice.store.db import make_engine
from teleoffice.store.models import Base

target_metadata = Base.metadata


def _engine() -> tuple[Engine, bool]:
    """The engine to migrate through, and whether this module created it."""
    given = context.config.attributes.get("engine")
    if isinstance(given, Engine):
        return given, False
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("no database: call teleoffice.store.db.upgrade(), or pass -x url=...")
    return make_engine(url), True


def run_offline() -> None:
    """Emit SQL instead of executing it (`alembic upgrade head --sql`)."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine, owned = _engine()
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds the table
                # instead, and is a no-op wrapper on PostgreSQL.
                render_as_batch=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
