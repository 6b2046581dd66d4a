"""Fixtures of the end-to-end tests: servers, sipp and baresip on loopback.

Each test gets a server of its own (fresh data directory, own ports) unless its
module asks for `module_server`. The default directory (users alice 201 and bob 202)
is created once per session through the CLI and copied, which keeps set-up short.
When a test fails, the tails of the logs of every process it used are added to the
report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.e2e.calls_kit import CallLab, Drainer
from tests.e2e.harness import Baresip, HasLog, Server, Sipp, iter_logged
from tests.e2e.portal_kit import Portals, Site


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        values = list(getattr(item, "funcargs", {}).values())
        for owner in iter_logged(values):
            report.sections.append((f"{owner.log_name}: log tail", owner.log_tail()))
    return report


@pytest.fixture(scope="session")
def seeded_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after `init` and the default `user add`s, to copy from."""
    server = Server(tmp_path_factory.mktemp("seed"))
    server.prepare()
    return server.data_dir


class ServerFactory:
    """Creates servers for one test and stops each of them (by PID) afterwards."""

    def __init__(self, root: Path, seed: Path) -> None:
        self.root = root
        self.seed = seed
        self.servers: list[Server] = []

    @property
    def log_owners(self) -> list[HasLog]:
        return list(self.servers)

    def __call__(self, *, env: Mapping[str, str] | None = None, start: bool = True) -> Server:
        server = Server(self.root / f"server-{len(self.servers)}", env=env)
        self.servers.append(server)
        server.prepare(self.seed)
        if start:
            server.start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def server_factory(tmp_path: Path, seeded_data: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path, seeded_data)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """A running server with alice (201, secret201) and bob (202, secret202)."""
    return server_factory()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Iterator[Server]:
    """One running server shared by every test of a module."""
    server = Server(tmp_path_factory.mktemp("module-server"))
    server.prepare(seeded_data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sipp(server: Server, tmp_path: Path) -> Sipp:
    """sipp aimed at `server`, from a port of its own (the same for every run)."""
    return Sipp(server.sip_port, tmp_path / "sipp")


class BaresipFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.instances: list[Baresip] = []

    @property
    def log_owners(self) -> list[HasLog]:
        return list(self.instances)

    def __call__(self) -> Baresip:
        phone = Baresip(self.root / f"baresip-{len(self.instances)}")
        self.instances.append(phone)
        phone.workdir.mkdir(parents=True, exist_ok=True)
        phone.start()
        return phone

    def close(self) -> None:
        for phone in self.instances:
            phone.stop()


@pytest.fixture
def baresip_factory(tmp_path: Path, server: Server) -> Iterator[BaresipFactory]:
    """Starts baresip instances; they stop (by PID) before the server does."""
    factory = BaresipFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


# ---- calls: a lab per test, and the module's check that servers drain ----------------


@pytest.fixture(scope="module")
def drainer() -> Iterator[Drainer]:
    drainer = Drainer()
    yield drainer
    problems = drainer.settle()
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, tmp_path: Path, seeded_data: Path, drainer: Drainer
) -> Iterator[CallLab]:
    lab = CallLab(tmp_path, seeded_data, drainer, request.node.name)
    try:
        yield lab
    finally:
        lab.close()


# ---- modules whose servers start from a seeded site (see portal_kit.make_site) -------
# Such a module defines a module-scoped `site` fixture; these give each test a lab
# on it and the API sessions it opens.


@pytest.fixture
def site_lab(
    request: pytest.FixtureRequest, tmp_path: Path, site: Site, drainer: Drainer
) -> Iterator[CallLab]:
    lab = CallLab(tmp_path, site.data, drainer, request.node.name)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def portals() -> Iterator[Portals]:
    pool = Portals()
    try:
        yield pool
    finally:
        pool.close()
