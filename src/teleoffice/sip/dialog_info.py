"""Dialog state documents: application/dialog-info+xml (RFC 4235).

Sans-IO and pure: frozen dataclasses in, bytes out, and back.

Theory of operation
-------------------
Busy-lamp keys on desk phones SUBSCRIBE to `Event: dialog` for an extension and
light up from the NOTIFY bodies built here: idle with no dialog (or only
terminated ones), blinking for an "early" dialog (ringing; most phones then
offer pickup using the call-id and tags), steady for "confirmed".  RFC 4235
section 4.1 gives every notification a `version` that grows by one per NOTIFY
of a subscription, and a `state`: "full" lists every dialog, "partial" only
those that changed since the previous notification.  `dialog_changes` computes
the entries of a partial update from two full views; a subscriber keeps the
version counter.  Many phones (Snom's parsing rules, older Yealinks) only look
at whatever dialogs a body lists, so sending "full" every time is the safe
choice, and RFC 4235 allows it.

Snom matches the document's `entity` against the URI it subscribed to, so the
notifier should echo the subscribed URI there.

Parsing exists for tests and for phones that PUBLISH dialog state; it passes
through the same hardened loader as PIDF (`pidf.load_untrusted_xml`: bounded
size and depth, UTF-8, no DTD or entities) and is lenient where RFC 4235's own
examples are: its section 4.2 sample has no `entity` attribute (read as ""),
and `<local>`/`<remote>` may carry only a `<target uri>`.  Unknown elements
(duration, route-set, session descriptions, extensions) are ignored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

from teleoffice.sip.pidf import XmlBodyError, clean_note, load_untrusted_xml

__all__ = [
    "CONTENT_TYPE",
    "DIALOG_INFO_NS",
    "DIALOG_STATES",
    "EVENT_PACKAGE",
    "MAX_DIALOGS",
    "DialogEntry",
    "DialogInfo",
    "DialogInfoError",
    "DialogState",
    "Direction",
    "DocumentState",
    "build_dialog_info",
    "dialog_changes",
    "parse_dialog_info",
]

EVENT_PACKAGE: Final = "dialog"
CONTENT_TYPE: Final = "application/dialog-info+xml"
DIALOG_INFO_NS: Final = "urn:ietf:params:xml:ns:dialog-info"

MAX_DIALOGS: Final = 128
MAX_TOKEN: Final = 256  # ids, Call-IDs and tags
MAX_URI: Final = 1024
MAX_DISPLAY: Final = 200  # display names are cleaned like notes (pidf.clean_note)
# A version is an xs:nonNegativeInteger; anything past 2**63 is an attack or a bug.
_MAX_VERSION: Final = 2**63 - 1
_VERSION = re.compile(r"[0-9]{1,19}")

DialogState = Literal["trying", "proceeding", "early", "confirmed", "terminated"]
DIALOG_STATES: Final[tuple[DialogState, ...]] = get_args(DialogState)
Direction = Literal["initiator", "recipient"]
DocumentState = Literal["full", "partial"]


class DialogInfoError(XmlBodyError):
    """A dialog-info document is malformed or hostile, or cannot be built as asked."""


@dataclass(frozen=True, slots=True)
class DialogEntry:
    """One `<dialog>` (RFC 4235 section 4.1), seen from the entity's side.

    `local` and `remote` are the identity URIs of the two parties, with their
    display names alongside; `local_tag`/`remote_tag` with `call_id` identify
    the SIP dialog, which phones use for directed call pickup.
    """

    id: str
    call_id: str | None
    direction: Direction | None
    state: DialogState
    remote: str | None = None
    local: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    remote_display: str | None = None
    local_display: str | None = None


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A dialog-info document: the dialogs of `entity` at notification `version`."""

    entity: str
    version: int
    state: DocumentState
    dialogs: tuple[DialogEntry, ...] = ()


def _q(name: str) -> str:
    return f"{{{DIALOG_INFO_NS}}}{name}"


_ROOT: Final = _q("dialog-info")
_DIALOG: Final = _q("dialog")
_STATE: Final = _q("state")
_LOCAL: Final = _q("local")
_REMOTE: Final = _q("remote")
_IDENTITY: Final = _q("identity")
_TARGET: Final = _q("target")


# ---------------------------------------------------------------------------
# Parsing


def parse_dialog_info(data: bytes) -> DialogInfo:
    """Parse an application/dialog-info+xml body; raise `DialogInfoError` if wrong."""
    root = load_untrusted_xml(data, DialogInfoError)
    if root.tag != _ROOT:
        raise DialogInfoError(
            f"not a dialog-info document: root element {root.tag!r}, "
            f"expected dialog-info in {DIALOG_INFO_NS}"
        )
    version_text = (root.get("version") or "").strip()
    if not _VERSION.fullmatch(version_text):
        raise DialogInfoError(f"dialog-info version {version_text[:30]!r} is not a number")
    version = int(version_text)
    if version > _MAX_VERSION:
        raise DialogInfoError("dialog-info version out of range")
    state = (root.get("state") or "").strip()
    if state not in ("full", "partial"):
        raise DialogInfoError(f"dialog-info state {state[:30]!r} is neither full nor partial")
    entity = (root.get("entity") or "").strip()
    if entity and not _is_token(entity, MAX_URI):
        raise DialogInfoError(f"dialog-info entity {entity[:40]!r} is too long or has spaces")

    dialogs: list[DialogEntry] = []
    for element in root.iterfind(_DIALOG):
        if len(dialogs) >= MAX_DIALOGS:
            raise DialogInfoError(f"more than {MAX_DIALOGS} dialogs")
        dialogs.append(_parse_dialog(element))
    return DialogInfo(
        entity=entity,
        version=version,
        state="full" if state == "full" else "partial",
        dialogs=tuple(dialogs),
    )


def _parse_dialog(element: ET.Element) -> DialogEntry:
    dialog_id = _token_attribute(element, "id", MAX_TOKEN)
    if dialog_id is None:
        raise DialogInfoError("dialog without the id attribute (RFC 4235 section 4.1)")
    state_text = (element.findtext(_STATE) or "").strip().lower()
    if state_text not in DIALOG_STATES:
        raise DialogInfoError(f"dialog {dialog_id!r} has state {state_text[:30]!r}")
    direction_text = (element.get("direction") or "").strip()
    direction: Direction | None = None
    if direction_text == "initiator":
        direction = "initiator"
    elif direction_text == "recipient":
        direction = "recipient"
    local, local_display = _participant(element.find(_LOCAL))
    remote, remote_display = _participant(element.find(_REMOTE))
    return DialogEntry(
        id=dialog_id,
        call_id=_token_attribute(element, "call-id", MAX_TOKEN),
        direction=direction,
        state=_dialog_state(state_text),
        remote=remote,
        local=local,
        local_tag=_token_attribute(element, "local-tag", MAX_TOKEN),
        remote_tag=_token_attribute(element, "remote-tag", MAX_TOKEN),
        remote_display=remote_display,
        local_display=local_display,
    )


def _dialog_state(text: str) -> DialogState:
    for state in DIALOG_STATES:
        if state == text:
            return state
    raise DialogInfoError(f"unknown dialog state {text!r}")  # pragma: no cover - checked before


def _participant(element: ET.Element | None) -> tuple[str | None, str | None]:
    """(URI, display name) of a `<local>` or `<remote>`; the identity, else the target."""
    if element is None:
        return None, None
    uri: str | None = None
    display: str | None = None
    identity = element.find(_IDENTITY)
    if identity is not None:
        uri = "".join(identity.itertext()).strip() or None
        display = clean_note(identity.get("display"))
    if uri is None:
        target = element.find(_TARGET)
        if target is not None:
            uri = (target.get("uri") or "").strip() or None
    if uri is not None and not _is_token(uri, MAX_URI):
        raise DialogInfoError(f"participant URI {uri[:40]!r} is too long or has spaces")
    return uri, display


def _token_attribute(element: ET.Element, name: str, limit: int) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not _is_token(value, limit):
        raise DialogInfoError(f"dialog {name} {value[:40]!r} is too long or has spaces")
    return value


def _is_token(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable() and not any(ch.isspace() for ch in value)


# ---------------------------------------------------------------------------
# Building


def build_dialog_info(info: DialogInfo) -> bytes:
    """Serialize a document; raise `DialogInfoError` for values that cannot round-trip."""
    entity = _checked(info.entity, MAX_URI, "entity")
    if isinstance(info.version, bool) or not isinstance(info.version, int):
        raise DialogInfoError(f"version {info.version!r} is not an integer")
    if not 0 <= info.version <= _MAX_VERSION:
        raise DialogInfoError(f"version {info.version} is out of range")
    if info.state not in ("full", "partial"):
        raise DialogInfoError(f"document state {info.state!r} is neither full nor partial")
    if len(info.dialogs) > MAX_DIALOGS:
        raise DialogInfoError(f"more than {MAX_DIALOGS} dialogs")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<dialog-info xmlns="{DIALOG_INFO_NS}" version="{info.version}"'
        f' state="{info.state}" entity="{_attr(entity)}">',
    ]
    seen: set[str] = set()
    for dialog in info.dialogs:
        if dialog.id in seen:
            raise DialogInfoError(f"duplicate dialog id {dialog.id!r}")
        seen.add(dialog.id)
        lines.extend(_dialog_lines(dialog))
    lines.append("</dialog-info>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _dialog_lines(dialog: DialogEntry) -> list[str]:
    attributes = [f'id="{_attr(_checked(dialog.id, MAX_TOKEN, "dialog id"))}"']
    for name, value in (
        ("call-id", dialog.call_id),
        ("local-tag", dialog.local_tag),
        ("remote-tag", dialog.remote_tag),
    ):
        if value is not None:
            attributes.append(f'{name}="{_attr(_checked(value, MAX_TOKEN, name))}"')
    if dialog.direction is not None:
        if dialog.direction not in ("initiator", "recipient"):
            raise DialogInfoError(f"direction {dialog.direction!r} is not initiator/recipient")
        attributes.append(f'direction="{dialog.direction}"')
    if dialog.state not in DIALOG_STATES:
        raise DialogInfoError(f"dialog state {dialog.state!r} is not one of {DIALOG_STATES}")
    lines = [f" <dialog {' '.join(attributes)}>", f"  <state>{dialog.state}</state>"]
    # Schema order (RFC 4235 section 4.1): state, duration... route-set, local, remote.
    lines.extend(_participant_lines("local", dialog.local, dialog.local_display))
    lines.extend(_participant_lines("remote", dialog.remote, dialog.remote_display))
    lines.append(" </dialog>")
    return lines


def _participant_lines(tag: str, uri: str | None, display: str | None) -> list[str]:
    if uri is None:
        if display is not None:
            raise DialogInfoError(f"{tag} display name without a {tag} URI")
        return []
    uri = _checked(uri, MAX_URI, f"{tag} URI")
    display_attr = ""
    if display is not None:
        if clean_note(display) != display or len(display) > MAX_DISPLAY:
            raise DialogInfoError(f"{tag} display name {display[:40]!r} is not clean")
        display_attr = f' display="{_attr(display)}"'
    return [f"  <{tag}><identity{display_attr}>{_text(uri)}</identity></{tag}>"]


def _checked(value: str, limit: int, what: str) -> str:
    if not isinstance(value, str) or not _is_token(value, limit):
        raise DialogInfoError(f"{what} {value!r} must be 1-{limit} characters without whitespace")
    return value


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")


# ---------------------------------------------------------------------------
# Partial notifications


def dialog_changes(
    previous: Sequence[DialogEntry], current: Sequence[DialogEntry]
) -> tuple[DialogEntry, ...]:
    """The dialogs a "partial" notification carries, going from `previous` to `current`.

    New or changed entries of `current` (in its order), then every dialog of
    `previous` that is gone, reported once more as "terminated": in a partial
    notification a dialog that is simply left out is unchanged, not ended.
    """
    before = {dialog.id: dialog for dialog in previous}
    now_ids = {dialog.id for dialog in current}
    changed = [dialog for dialog in current if before.get(dialog.id) != dialog]
    ended = [
        replace(dialog, state="terminated")
        for dialog in previous
        if dialog.id not in now_ids and dialog.state != "terminated"
    ]
    return (*changed, *ended)
