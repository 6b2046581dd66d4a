"""A throwaway PostgreSQL server for one test process.

`PostgresCluster.start()` runs `initdb`, then `postgres` itself as a child of
this process, listening on 127.0.0.1 (a free port) and on a unix socket inside
its folder, with trust authentication for loopback only. `stop()` shuts down
that one process by its PID and removes the folder. Tests get a database each
(`create_database`, copied from a template) so they stay independent.

PostgreSQL refuses to run as root; as root the server runs as the `postgres`
system user (Debian's package creates it), else as `nobody`, and the folder is
handed to that user. Nothing is skipped when PostgreSQL is missing:
`scripts/system-deps.sh test` installs it, and the error says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

DEBIAN_ROOT = Path("/usr/lib/postgresql")
RAM_DIR = Path("/dev/shm")
FOLDER_PREFIX = "teleoffice-pg-"
OWNER_FILE = "owner.pid"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
PORT_ATTEMPTS = 3

# Only loopback, and no password: the server holds nothing but test data and
# lives as long as the test process.
PG_HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
"""

# Durability buys nothing for a cluster that is deleted at the end, and fsync
# per commit would dominate the store tests' run time.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    # Copying a database writes all of it to the WAL: recycle the WAL early so
    # it stays small (it lives in memory when RAM_DIR is usable).
    "max_wal_size": "64MB",
    "min_wal_size": "32MB",
    "max_connections": "100",
}

# prctl(PR_SET_PDEATHSIG, sig), looked up before any fork: see _die_with_parent.
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server programs are missing or the server would not start."""


def find_bindir() -> Path:
    """The folder of initdb and postgres: Debian's newest /usr/lib/postgresql/N/bin,
    else wherever initdb is on PATH (other distributions)."""

    def version(initdb: Path) -> tuple[int, ...]:
        name = initdb.parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(DEBIAN_ROOT.glob("*/bin/initdb"), key=version)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL's initdb was not found; install the Debian package `postgresql` "
        "(as root: scripts/system-deps.sh test)"
    )


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, but neither a postgres nor a nobody user exists")


def _data_parent() -> Path:
    """Where the cluster's folder goes: memory when possible, else the usual
    temporary folder. Not under pytest's tmp_path, whose parents are private to
    root: the server's user must reach it. Each test copies and drops a 7.5 MB
    database; on a disk (ext4 mounted with discard, as here) that takes about
    0.5 s, in memory 30 ms."""
    if RAM_DIR.is_dir() and os.access(RAM_DIR, os.W_OK | os.X_OK):
        return RAM_DIR
    return Path(tempfile.gettempdir())


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (here, PID 1 may never
    reap orphans, so a dead test worker can linger as one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sweep_abandoned(parent: Path) -> None:
    """Remove the folders of clusters whose test process died without stopping
    them (killed, crashed): the server stopped with it (see `_die_with_parent`),
    but its data would otherwise stay, in memory, until the machine restarts.
    A folder is removed only when both its owner and its server are gone."""
    for folder in parent.glob(f"{FOLDER_PREFIX}*"):
        owner = _read_pid(folder / OWNER_FILE)
        server = _read_pid(folder / "data" / "postmaster.pid")
        if owner is None or _running(owner) or (server is not None and _running(server)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _die_with_parent() -> None:
    """Runs in the server's process between fork and exec, after the switch of
    user (which would reset it): when the process that started the server dies
    without stopping it, Linux sends the server SIGINT, its fast shutdown, rather
    than leaving it running for good. Only a call of a function looked up before
    the fork happens here, which is what makes preexec_fn safe enough."""
    if _prctl(_PR_SET_PDEATHSIG, signal.SIGINT) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One running server; `start()` gives one, `stop()` (or leaving `with`) ends it."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.process = process
        self._admin: psycopg.Connection[Any] | None = None

    @classmethod
    def start(cls) -> PostgresCluster:
        bindir = find_bindir()
        account = _server_account()
        parent = _data_parent()
        sweep_abandoned(parent)
        root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=parent))
        (root / OWNER_FILE).write_text(f"{os.getpid()}\n")
        try:
            return cls._start_in(root, bindir, account)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    @classmethod
    def _start_in(
        cls, root: Path, bindir: Path, account: pwd.struct_passwd | None
    ) -> PostgresCluster:
        sockets = root / "sock"
        sockets.mkdir()
        as_server: dict[str, Any] = {"cwd": root}
        if account is not None:
            for path in (root, sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
            # setuid in the child before exec: no PAM, no terminal, works in CI.
            as_server |= {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

        data = root / "data"
        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            **as_server,
        )
        if initdb.returncode != 0:
            output = (initdb.stdout + initdb.stderr).decode(errors="replace")
            raise PostgresUnavailable(f"initdb failed ({initdb.returncode}):\n{output}")
        # Rewriting the file keeps its owner (the server's user) and mode.
        (data / "pg_hba.conf").write_text(PG_HBA)

        settings = {**SERVER_SETTINGS, "unix_socket_directories": str(sockets)}
        log_path = root / "postgres.log"
        for _attempt in range(PORT_ATTEMPTS):
            # Another process may take the port between the probe and the bind;
            # the server then exits at once and the next attempt picks another.
            port = _free_port()
            command = [str(bindir / "postgres"), "-D", str(data), "-c", f"port={port}"]
            for name, value in settings.items():
                command += ["-c", f"{name}={value}"]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 (see its docstring)
                    **as_server,
                )
            cluster = cls(root, port, process)
            if cluster._wait_ready():
                return cluster
            cluster._terminate()
        log_tail = log_path.read_text(errors="replace")[-3000:]
        raise PostgresUnavailable(f"postgres would not start; its log ends with:\n{log_tail}")

    def _wait_ready(self) -> bool:
        """True once the server takes connections; False if it exited or never did."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self._admin = psycopg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=SUPERUSER,
                    dbname="postgres",
                    autocommit=True,  # CREATE and DROP DATABASE refuse transactions
                    connect_timeout=5,
                )
            except psycopg.OperationalError:
                time.sleep(0.05)
                continue
            return True
        return False

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _execute(self, statement: sql.Composed) -> None:
        assert self._admin is not None, "the cluster is not running"
        self._admin.execute(statement)

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database copied from `template` (which nobody may be connected
        to meanwhile); returns its URL."""
        self._execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending whatever connections a test left open to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def stop(self) -> None:
        """Shut the server down (the one process we started, by its PID) and
        remove its folder. Safe to call twice."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def _terminate(self) -> None:
        if self.process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown (ends sessions, no waiting for
        # clients); SIGQUIT, the immediate one, only if that hangs.
        os.kill(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGQUIT)
            self.process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
