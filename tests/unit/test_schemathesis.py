"""schemathesis against the OpenAPI document: no request makes the server fail.

Requests are generated from `/openapi.json` for every operation, both fitting
the schema and deliberately not fitting it (wrong types, missing fields,
strings where numbers go, odd path parameters), and sent in-process to the
whole application (tests/unit/app_kit.py), once logged in as a user and once
as an administrator. Whatever the input, the answer must not be a 5xx: bad
input is the client's error (4xx), never the server's.

The examples per operation are bounded so the module stays well under a
minute on a loaded two-core machine; a 5xx found is a bug to fix, with the
request to reproduce it in the failure message (as a curl command).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.unit.app_kit import World, open_world, seed_database

# Cases of any operation.
Case = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]

# Examples per operation and role: about 60 operations, two roles.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))

_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # No shrinking: the first failing request says enough, and shrinking one
    # would replay requests against state earlier ones changed.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_database(tmp_path_factory.mktemp("seeded"))


@pytest.fixture(scope="module")
def api_world(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # One world for the whole run: what one request changes (a user created, a
    # profile deleted) is state the next ones meet, as on a real server.
    yield from open_world(seeded, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def api_schema(api_world: World) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", api_world.app.http)


schema = schemathesis.pytest.from_fixture("api_schema")


def call(case: Case, world: World, role: str) -> None:
    response = case.call(headers=world.session_headers(role))
    assert response.status_code < 500, (
        f"{response.status_code} as {role}: {case.as_curl_command()}\n{response.text[:500]}"
    )


@schema.parametrize()
@_SETTINGS
def test_no_server_errors_as_a_user(case: Case, api_world: World) -> None:
    call(case, api_world, "alice")


@schema.parametrize()
@_SETTINGS
def test_no_server_errors_as_an_administrator(case: Case, api_world: World) -> None:
    call(case, api_world, "admin")
