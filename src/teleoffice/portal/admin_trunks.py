"""Administration of SIP trunks: what `teleoffice trunk add/set/list/del` does.

The store checks everything again (host spelling, clashing prefixes and
addresses, credentials that need a username); the models here only give the
client a precise, per-field message first. A provider password is write-only:
it is kept as HA1 hashes for the provider's realm and never shown.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StringConstraints

from teleoffice.portal.admin_live import OptionalLiveDep
from teleoffice.portal.deps import AdminUser, ContextDep, PortalContext
from teleoffice.portal.errors import error_responses
from teleoffice.portal.schemas import (
    MAX_PASSWORD_LENGTH,
    NAME_PATTERN,
    NO_CONTROL_PATTERN,
    InputModel,
    PatchModel,
)
from teleoffice.store.models import HOST_LENGTH, NUMBER_LENGTH, REALM_LENGTH, TRUNK_USERNAME_LENGTH
from teleoffice.store.repos import (
    DEFAULT_REGISTER_EXPIRES,
    DEFAULT_TRUNK_PORT,
    KEEP,
    MAX_REGISTER_EXPIRES,
    MIN_REGISTER_EXPIRES,
    TrunkRecord,
    TrunkRepo,
)

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=error_responses(401, 403))

TrunkPath = Annotated[str, Path(pattern=NAME_PATTERN, description="The trunk's name.")]
TrunkName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Host = Annotated[str, StringConstraints(min_length=1, max_length=HOST_LENGTH, pattern=r"^\S+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Transport = Literal["udp", "tcp"]
Prefix = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}$")]
HeaderText = r"^[^\x00-\x1f\x7f]+$"
ProviderUser = Annotated[
    str, StringConstraints(min_length=1, max_length=TRUNK_USERNAME_LENGTH, pattern=HeaderText)
]
Realm = Annotated[str, StringConstraints(min_length=1, max_length=REALM_LENGTH, pattern=HeaderText)]
ProviderPassword = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH, pattern=NO_CONTROL_PATTERN)
]
OutsideNumber = Annotated[str, StringConstraints(pattern=rf"^\+?[0-9]{{1,{NUMBER_LENGTH - 1}}}$")]
RegisterExpires = Annotated[int, Field(ge=MIN_REGISTER_EXPIRES, le=MAX_REGISTER_EXPIRES)]


class TrunkOut(BaseModel):
    name: str
    host: str = Field(description="The provider's host, in its canonical spelling.")
    port: int
    transport: str
    prefix: str | None = Field(
        description="Numbers dialled as PREFIX+number leave through this trunk as the "
        "number; null: the trunk only receives calls."
    )
    username: str | None = Field(description="The account the provider knows us by.")
    realm: str | None = Field(description="The digest realm the password was hashed for.")
    has_credentials: bool = Field(description="Whether a password is set (it is never shown).")
    outside_number: str | None = Field(
        description="Caller number presented on calls out; null: the caller's extension."
    )
    use_pai: bool = Field(description="Whether calls out carry P-Asserted-Identity.")
    # (`register` is a method of pydantic models: the attribute has another name.)
    registers: bool = Field(
        serialization_alias="register",
        description="Whether teleoffice registers with the provider.",
    )
    register_expires: int
    registration: str | None = Field(
        description="State of the registration with the provider (unregistered, "
        "registering, registered, failed); null when the trunk does not register or "
        "the server has no live state."
    )
    created_at: datetime

    @classmethod
    def of(cls, trunk: TrunkRecord, states: dict[str, str]) -> Self:
        return cls(
            name=trunk.name,
            host=trunk.host,
            port=trunk.port,
            transport=trunk.transport,
            prefix=trunk.prefix,
            username=trunk.username,
            realm=trunk.realm,
            has_credentials=trunk.has_credentials,
            outside_number=trunk.outside_number,
            use_pai=trunk.use_pai,
            registers=trunk.register,
            register_expires=trunk.register_expires,
            registration=states.get(trunk.name) if trunk.register else None,
            created_at=trunk.created_at,
        )


class TrunkCreateIn(InputModel):
    name: TrunkName
    host: Host = Field(description="Host name or IP address; requests from it are the trunk's.")
    port: Port = DEFAULT_TRUNK_PORT
    transport: Transport = "udp"
    prefix: Prefix | None = None
    username: ProviderUser | None = None
    password: ProviderPassword | None = Field(
        default=None, description="Write only; needs `username`."
    )
    realm: Realm | None = Field(
        default=None, description="The provider's digest realm (default: the host); needs password."
    )
    outside_number: OutsideNumber | None = None
    use_pai: bool = False
    registers: bool = Field(
        default=False,
        alias="register",
        description="Register with the provider (needs `username`).",
    )
    register_expires: RegisterExpires = DEFAULT_REGISTER_EXPIRES


class TrunkPatchIn(PatchModel):
    """null removes the prefix (inbound only), the outside number, or the
    username with the credentials."""

    clearable: ClassVar[frozenset[str]] = frozenset({"prefix", "outside_number", "username"})

    host: Host | None = None
    port: Port | None = None
    transport: Transport | None = None
    prefix: Prefix | None = None
    username: ProviderUser | None = None
    password: ProviderPassword | None = Field(
        default=None, description="Write only; changing the username or realm needs it again."
    )
    realm: Realm | None = None
    outside_number: OutsideNumber | None = None
    use_pai: bool | None = None
    registers: bool | None = Field(default=None, alias="register")
    register_expires: RegisterExpires | None = None


def repo_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """Model fields as `TrunkRepo.add`/`update` name them."""
    if "registers" in values:
        values["register"] = values.pop("registers")
    return values


def _repo(context: PortalContext) -> TrunkRepo:
    return TrunkRepo(context.users.sessions)


def _states(live: OptionalLiveDep) -> dict[str, str]:
    return {} if live is None else dict(live.trunk_states())


@router.get(
    "/trunks",
    summary="List trunks",
    description="Every SIP trunk by name, with its registration state when it registers.",
)
async def list_trunks(
    admin: AdminUser, context: ContextDep, live: OptionalLiveDep
) -> list[TrunkOut]:
    # async (like every route that reads live state): the states are read on the
    # event loop's thread; the table is small and read in a worker thread.
    trunks = await asyncio.to_thread(_repo(context).list_trunks)
    states = _states(live)
    return [TrunkOut.of(trunk, states) for trunk in trunks]


@router.get("/trunks/{name}", summary="Show a trunk", responses=error_responses(404, 422))
async def get_trunk(
    name: TrunkPath, admin: AdminUser, context: ContextDep, live: OptionalLiveDep
) -> TrunkOut:
    trunk = await asyncio.to_thread(_repo(context).get, name)
    return TrunkOut.of(trunk, _states(live))


@router.post(
    "/trunks",
    status_code=201,
    summary="Create a trunk",
    description=(
        "As `teleoffice trunk add`. 409 when the name or the host and port are taken, "
        "or the prefix equals or overlaps another trunk's (a number could match both)."
    ),
    responses=error_responses(409, 422),
)
def create_trunk(body: TrunkCreateIn, admin: AdminUser, context: ContextDep) -> TrunkOut:
    trunk = _repo(context).add(**repo_arguments(body.model_dump()))
    return TrunkOut.of(trunk, {})


@router.patch(
    "/trunks/{name}",
    summary="Change a trunk",
    description=(
        "Changes the fields given (as `teleoffice trunk set`); null removes the prefix, "
        "the outside number, or the username with the credentials. On any error "
        "nothing changes."
    ),
    responses=error_responses(404, 409, 422),
)
def patch_trunk(
    name: TrunkPath, body: TrunkPatchIn, admin: AdminUser, context: ContextDep
) -> TrunkOut:
    changes = repo_arguments(body.changes())
    # The repository reads None as "remove" for these and needs KEEP to leave them.
    for key in ("prefix", "outside_number", "username"):
        changes.setdefault(key, KEEP)
    return TrunkOut.of(_repo(context).update(name, **changes), {})


@router.delete(
    "/trunks/{name}",
    status_code=204,
    summary="Delete a trunk",
    description="New calls can no longer use it; its DIDs stay (they belong to users).",
    responses=error_responses(404, 422),
)
def delete_trunk(name: TrunkPath, admin: AdminUser, context: ContextDep) -> None:
    _repo(context).delete(name)
