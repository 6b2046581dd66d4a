"""Persistent state: SQLAlchemy models, Alembic migrations and typed repositories.

Import from here; the modules behind it are free to move things around.
"""

from teleoffice.store.db import (
    NotInitialised,
    current_revision,
    describe_url,
    head_revision,
    make_engine,
    require_current,
    session_factory,
    upgrade,
)
from teleoffice.store.repos import (
    AccountRecord,
    AccountRepo,
    Conflict,
    InvalidInput,
    NotFound,
    RegistrationRepo,
    Sessions,
    StoredBinding,
    StoreError,
    UserRecord,
    UserRepo,
)

__all__ = [
    "AccountRecord",
    "AccountRepo",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "NotInitialised",
    "RegistrationRepo",
    "Sessions",
    "StoreError",
    "StoredBinding",
    "UserRecord",
    "UserRepo",
    "current_revision",
    "describe_url",
    "head_revision",
    "make_engine",
    "require_current",
    "session_factory",
    "upgrade",
]
