"""Presence documents: PIDF (RFC 3863) with RPID activities (RFC 4480).

Sans-IO and pure: bytes in, frozen dataclasses out, and back to bytes.

Theory of operation
-------------------
A PIDF body arrives from the network (a phone's PUBLISH, RFC 3903) and is parsed
as hostile input.  `load_untrusted_xml` is the one gate every XML body of the
SIP core passes through: the size is bounded first, the encoding must be UTF-8
(or declared ISO-8859-1/US-ASCII, which Zoiper and FreeSWITCH use), DTDs are
refused outright through defusedxml, so entity expansion ("billion laughs") and
external entities cannot happen, and the element depth is bounded while
parsing, before a deep tree is built.  What comes out is an ElementTree whose
tags carry resolved namespaces, so any prefix (or a default namespace) works.

Interpretation is deliberately narrow.  From each `<tuple>` the model keeps the
id, `<basic>` open/closed, `<contact>` and one `<note>`; from the RFC 4479
`<dm:person>` it keeps the RPID activities and one note.  Everything else
(timestamps, devices, capabilities, unknown extensions) is ignored, except an
extension marked `mustUnderstand`, which by RFC 3863 makes the whole document
unusable to a reader that does not know it.  Phones are sloppy in known ways and
are met halfway:

- baresip publishes `<basic>unknown</basic>` before it has registered; a tuple
  whose basic status is missing or not open/closed says nothing and is skipped.
- linphone writes `<rpid:lunch/>` (not in RFC 4480), read as "meal", and puts
  notes on the person, on the activities (`<rpid:note>`) or on the document.
- Notes may come in several languages (`xml:lang`): the first note without a
  language wins, else the first one.  Every note is cleaned by `clean_note`
  (control characters removed, whitespace collapsed, at most `MAX_NOTE`
  characters), so a status message can be shown anywhere without escaping
  surprises.

Do not disturb
--------------
RPID has no do-not-disturb activity.  Clients encode it in two ways, and both
are understood:

- linphone's consolidated presence calls a document DND when its basic status
  is closed *and* it names an activity; so a closed `<rpid:busy/>` (or meeting,
  on-the-phone...) reads as "dnd".
- RFC 4480 `<rpid:other>` with the text "do-not-disturb" (or "dnd", "do not
  disturb", any case): the explicit marker, kept in the model as the pseudo
  activity `DND_ACTIVITY`.

We publish DND as closed + `<rpid:busy/>` + `<rpid:other>do-not-disturb</...>`:
linphone shows DND, baresip (which greps for `<rpid:busy/>`) shows busy, and
any other watcher sees a closed, busy presentity.

Building writes the exact shape baresip's subscriber greps for (`<basic>open</basic>`
on one line, `<rpid:away/>` with no space), with the PIDF namespace as the default
and the `dm` and `rpid` prefixes of RFC 4479/4480.  `parse_pidf(build_pidf(d)) == d`
holds for every document `build_pidf` accepts.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeVar, get_args

import defusedxml  # type: ignore[import-untyped]
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

__all__ = [
    "CONTENT_TYPE",
    "DATA_MODEL_NS",
    "DND_ACTIVITY",
    "MAX_DEPTH",
    "MAX_NOTE",
    "MAX_SIZE",
    "PIDF_NS",
    "PRESENCE_STATES",
    "RPID_ACTIVITIES",
    "RPID_NS",
    "Basic",
    "PersonInfo",
    "PidfError",
    "PresenceDocument",
    "PresenceState",
    "PresenceTuple",
    "XmlBodyError",
    "build_pidf",
    "clean_note",
    "document_for",
    "load_untrusted_xml",
    "parse_pidf",
    "pick_note",
    "presence_of",
]

CONTENT_TYPE: Final = "application/pidf+xml"
PIDF_NS: Final = "urn:ietf:params:xml:ns:pidf"
DATA_MODEL_NS: Final = "urn:ietf:params:xml:ns:pidf:data-model"  # RFC 4479
RPID_NS: Final = "urn:ietf:params:xml:ns:pidf:rpid"  # RFC 4480
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"

# Bounds on untrusted input.  A phone's PIDF body is well under 2 KiB and a few
# elements deep; these limits are generous for that and cheap to enforce.
MAX_SIZE: Final = 65536
MAX_DEPTH: Final = 32
MAX_TUPLES: Final = 64
MAX_NOTE: Final = 200  # characters of a status message, in any script
MAX_URI: Final = 1024
MAX_ID: Final = 128

Basic = Literal["open", "closed"]
PresenceState = Literal["available", "away", "busy", "dnd", "offline"]
PRESENCE_STATES: Final[tuple[PresenceState, ...]] = get_args(PresenceState)

# RFC 4480 section 3.2: the activity elements of <rpid:activities>.
RPID_ACTIVITIES: Final = frozenset(
    {
        "appointment",
        "away",
        "breakfast",
        "busy",
        "dinner",
        "holiday",
        "in-transit",
        "looking-for-work",
        "meal",
        "meeting",
        "on-the-phone",
        "other",
        "performance",
        "permanent-absence",
        "playing",
        "presentation",
        "shopping",
        "sleeping",
        "spectator",
        "steering",
        "travel",
        "tv",
        "unknown",
        "vacation",
        "working",
        "worship",
    }
)
# Not an RFC 4480 activity: our name for <rpid:other>do-not-disturb</rpid:other>.
DND_ACTIVITY: Final = "do-not-disturb"
_DND_WORDS: Final = frozenset({"do-not-disturb", "dnd"})
# Activities written by clients under names RFC 4480 does not have.
_ACTIVITY_ALIASES: Final = {"lunch": "meal"}  # linphone

# How activities map onto the five states.  Someone busy cannot take a call now;
# someone away is not at the phone.  Everything else (working, other, unknown...)
# says nothing about availability.
_BUSY_ACTIVITIES: Final = frozenset(
    {"busy", "on-the-phone", "meeting", "appointment", "presentation", "performance", "worship"}
)
_AWAY_ACTIVITIES: Final = frozenset(
    {
        "away",
        "vacation",
        "holiday",
        "permanent-absence",
        "breakfast",
        "dinner",
        "meal",
        "sleeping",
        "in-transit",
        "travel",
        "steering",
    }
)

# What `document_for` publishes for each state: basic status and activities.
_STATE_SHAPES: Final[dict[PresenceState, tuple[Basic, frozenset[str]]]] = {
    "available": ("open", frozenset()),
    "away": ("open", frozenset({"away"})),
    "busy": ("open", frozenset({"busy"})),
    "dnd": ("closed", frozenset({"busy", DND_ACTIVITY})),
    "offline": ("closed", frozenset()),
}
_TUPLE_ID: Final = "teleoffice"

# Characters that end a line: a note is one line, so they become spaces.
_LINE_BREAKS: Final = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


class XmlBodyError(ValueError):
    """An XML message body is malformed, hostile or not what was expected."""


class PidfError(XmlBodyError):
    """A PIDF document is malformed or hostile, or cannot be built as asked."""


@dataclass(frozen=True, slots=True)
class PresenceTuple:
    """One `<tuple>`: a way to reach the presentity (RFC 3863 section 4.1.2)."""

    id: str
    basic: Basic
    contact: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """The `<dm:person>` of RFC 4479: RPID activities (RFC 4480) and a note.

    `activities` holds RFC 4480 element names (`RPID_ACTIVITIES`) and possibly
    `DND_ACTIVITY`.
    """

    activities: frozenset[str] = frozenset()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceDocument:
    """A PIDF document as the PBX understands it."""

    entity: str
    tuples: tuple[PresenceTuple, ...] = ()
    person: PersonInfo | None = None


# ---------------------------------------------------------------------------
# Text hygiene


def clean_note(text: str | None) -> str | None:
    """A status message fit to store and show: one line, printable, bounded.

    Line breaks and tabs become spaces, other control characters (and lone
    surrogates, and the XML-forbidden U+FFFE/U+FFFF) are dropped, runs of
    whitespace collapse to one space, and the result is cut to `MAX_NOTE`
    characters.  Letters of every script, emoji and format characters such as
    the zero-width joiner are kept.  Returns None for nothing left.  Idempotent.
    """
    if text is None:
        return None
    kept: list[str] = []
    for ch in text:
        if ch in _LINE_BREAKS:
            kept.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in "\ufffe\uffff":
            continue
        else:
            kept.append(ch)
    collapsed = " ".join("".join(kept).split())
    result = collapsed[:MAX_NOTE].rstrip()
    return result or None


def _is_clean_token(value: str, limit: int) -> bool:
    """An identifier or URI: non-empty, bounded, no whitespace or control characters."""
    return (
        0 < len(value) <= limit
        and not any(ch.isspace() for ch in value)
        and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)
        and "\ufffe" not in value
        and "\uffff" not in value
    )


# ---------------------------------------------------------------------------
# Safe XML loading (shared with dialog_info)

_E = TypeVar("_E", bound=XmlBodyError)

_XML_DECLARATION = re.compile(rb"<\?xml\s[^>]*?\?>")
_DECLARED_ENCODING = re.compile(rb"""\sencoding\s*=\s*(["'])([A-Za-z0-9._-]*)\1""")
# Encodings expat decodes itself and that are ASCII-compatible, so the checks
# made on the raw bytes mean the same thing in the decoded text.
_LATIN_ENCODINGS: Final = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"})
_UTF8_ENCODINGS: Final = frozenset({"utf-8", "utf8"})


class _TooDeep(Exception):
    """Raised from inside the tree builder to stop a too-deep document early."""


class _BoundedTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder that refuses to nest elements deeper than `max_depth`."""

    def __init__(self, max_depth: int) -> None:
        super().__init__()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: str, attrs: dict[str, str], /) -> ET.Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag: str, /) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def load_untrusted_xml(
    data: bytes, error: type[_E], *, max_size: int = MAX_SIZE, max_depth: int = MAX_DEPTH
) -> ET.Element:
    """Parse an XML body from the network, or raise `error` saying why not.

    Refuses: empty or oversized bodies, encodings other than UTF-8 (ISO-8859-1
    and US-ASCII are accepted when declared), any DTD (and with it every entity
    declaration, so no entity expansion and no external references), and
    elements nested deeper than `max_depth`.  Comments and processing
    instructions are dropped.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"an XML body is bytes, not {type(data).__name__}")
    body = bytes(data)
    if not body.strip():
        raise error("empty XML body")
    if len(body) > max_size:
        raise error(f"XML body of {len(body)} bytes is over the limit of {max_size}")
    _check_encoding(body, error)
    builder = _BoundedTreeBuilder(max_depth)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    try:
        parser.feed(body)
        root: ET.Element = parser.close()
    except _TooDeep:
        raise error(f"XML elements nested deeper than {max_depth}") from None
    except defusedxml.DTDForbidden:
        raise error("XML body has a DTD (document type declaration), refused") from None
    except defusedxml.DefusedXmlException as exc:
        # Entities or external references; unreachable while DTDs are refused,
        # kept so that relaxing forbid_dtd can never open the door silently.
        raise error(f"XML body refused: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise error(f"malformed XML: {exc}") from None
    except (LookupError, ValueError) as exc:
        # An encoding expat asked Python for and could not get (unknown, or
        # multi-byte); `_check_encoding` should have refused it already.
        raise error(f"XML encoding not usable: {exc}") from None
    return root


def _check_encoding(body: bytes, error: type[XmlBodyError]) -> None:
    """UTF-8 unless an ASCII-compatible single-byte encoding is declared."""
    # XML never holds U+0000, so neither UTF-8 nor Latin-1 text has a 0x00
    # byte. One means UTF-16 or UTF-32 without a byte-order mark: expat would
    # detect it by itself and read the body (and its declared encoding, even
    # one Python does not know) behind the declaration check below.
    if b"\x00" in body:
        raise error("malformed XML: NUL bytes in the body (UTF-16 or UTF-32?); use UTF-8")
    start = body.removeprefix(b"\xef\xbb\xbf")
    declared = "utf-8"
    if start.startswith(b"<?xml"):
        declaration = _XML_DECLARATION.match(start)
        if declaration is None:
            raise error("malformed XML declaration")
        found = _DECLARED_ENCODING.search(declaration.group())
        if found is not None:
            declared = found.group(2).decode("ascii").lower()
    if declared in _LATIN_ENCODINGS:
        if body.startswith(b"\xef\xbb\xbf"):
            raise error(f"UTF-8 byte order mark on a document declared {declared}")
        return
    if declared not in _UTF8_ENCODINGS:
        raise error(f"XML encoding {declared!r} not supported (use UTF-8)")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"XML body is not valid UTF-8 (byte {exc.start})") from None


def pick_note(elements: Iterable[ET.Element]) -> str | None:
    """The note to keep among alternatives in several languages, cleaned.

    The first note without `xml:lang` wins (it is the default text), else the
    first note; notes that are empty once cleaned do not count.
    """
    fallback: str | None = None
    for element in elements:
        text = clean_note("".join(element.itertext()))
        if text is None:
            continue
        if element.get(_XML_LANG) is None:
            return text
        if fallback is None:
            fallback = text
    return fallback


# ---------------------------------------------------------------------------
# Parsing


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _namespace_of(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_PRESENCE: Final = _q(PIDF_NS, "presence")
_TUPLE: Final = _q(PIDF_NS, "tuple")
_STATUS: Final = _q(PIDF_NS, "status")
_BASIC: Final = _q(PIDF_NS, "basic")
_CONTACT: Final = _q(PIDF_NS, "contact")
_NOTE: Final = _q(PIDF_NS, "note")
_DM_PERSON: Final = _q(DATA_MODEL_NS, "person")
_DM_NOTE: Final = _q(DATA_MODEL_NS, "note")
# Drafts of RPID, still spoken by older clients, had the person in RPID's namespace.
_RPID_PERSON: Final = _q(RPID_NS, "person")
_ACTIVITIES: Final = _q(RPID_NS, "activities")
_RPID_NOTE: Final = _q(RPID_NS, "note")
_UNDERSTOOD_NAMESPACES: Final = frozenset({PIDF_NS, DATA_MODEL_NS, RPID_NS})
_MUST_UNDERSTAND: Final = ("mustUnderstand", _q(PIDF_NS, "mustUnderstand"))


def parse_pidf(data: bytes) -> PresenceDocument:
    """Parse an application/pidf+xml body; raise `PidfError` for anything wrong."""
    root = load_untrusted_xml(data, PidfError)
    if root.tag != _PRESENCE:
        raise PidfError(
            f"not a PIDF document: root element {_describe(root.tag)}, "
            f"expected presence in {PIDF_NS}"
        )
    _refuse_must_understand(root)
    entity = _uri_attribute(root, "entity", "presence")
    if entity is None:
        raise PidfError("presence element without the entity attribute (RFC 3863 4.1.1)")

    tuples: list[PresenceTuple] = []
    seen_ids: set[str] = set()
    for element in root.iterfind(_TUPLE):
        if len(tuples) >= MAX_TUPLES:
            raise PidfError(f"more than {MAX_TUPLES} tuples")
        parsed = _parse_tuple(element)
        if parsed is None:
            continue
        if parsed.id in seen_ids:
            raise PidfError(f"duplicate tuple id {parsed.id!r}")
        seen_ids.add(parsed.id)
        tuples.append(parsed)

    persons = [child for child in root if child.tag in (_DM_PERSON, _RPID_PERSON)]
    document_note = pick_note(root.iterfind(_NOTE))
    person: PersonInfo | None = None
    if persons or document_note is not None:
        activities: set[str] = set()
        person_note: str | None = None
        for element in persons:
            activities |= _parse_activities(element)
            if person_note is None:
                person_note = _person_note(element)
        person = PersonInfo(frozenset(activities), person_note or document_note)
    return PresenceDocument(entity=entity, tuples=tuple(tuples), person=person)


def _describe(tag: str) -> str:
    namespace = _namespace_of(tag)
    where = f"in {namespace}" if namespace else "without a namespace"
    return f"{_local_name(tag)} {where}"


def _refuse_must_understand(root: ET.Element) -> None:
    """RFC 3863: an extension marked mustUnderstand that we do not know voids the document."""
    for element in root.iter():
        if _namespace_of(element.tag) in _UNDERSTOOD_NAMESPACES:
            continue
        for name in _MUST_UNDERSTAND:
            if (element.get(name) or "").strip().lower() in ("true", "1"):
                raise PidfError(f"extension {_describe(element.tag)} is marked mustUnderstand")


def _uri_attribute(element: ET.Element, name: str, owner: str) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    value = value.strip()
    if not _is_clean_token(value, MAX_URI):
        raise PidfError(f"{owner} {name} {value[:40]!r} is empty, too long or has spaces")
    return value


def _parse_tuple(element: ET.Element) -> PresenceTuple | None:
    raw_id = element.get("id")
    if raw_id is None:
        raise PidfError("tuple without the id attribute (RFC 3863 4.1.2)")
    tuple_id = raw_id.strip()
    if not _is_clean_token(tuple_id, MAX_ID):
        raise PidfError(f"tuple id {tuple_id[:40]!r} is empty, too long or has spaces")
    basic_text = element.findtext(f"{_STATUS}/{_BASIC}")
    basic = (basic_text or "").strip().lower()
    if basic not in ("open", "closed"):
        # RFC 3863 4.1.4 makes <basic> optional; a tuple without a usable one
        # (baresip says "unknown" before registering) tells nothing.
        return None
    contact_text = (element.findtext(_CONTACT) or "").strip()
    contact: str | None = None
    if contact_text:
        if not _is_clean_token(contact_text, MAX_URI):
            raise PidfError(f"tuple contact {contact_text[:40]!r} is too long or has spaces")
        contact = contact_text
    return PresenceTuple(
        id=tuple_id,
        basic="open" if basic == "open" else "closed",
        contact=contact,
        note=pick_note(element.iterfind(_NOTE)),
    )


def _parse_activities(person: ET.Element) -> set[str]:
    found: set[str] = set()
    for activities in person.iterfind(_ACTIVITIES):
        for child in activities:
            if _namespace_of(child.tag) != RPID_NS:
                continue
            name = _local_name(child.tag)
            name = _ACTIVITY_ALIASES.get(name, name)
            if name == "other" and _is_dnd_text("".join(child.itertext())):
                found.add(DND_ACTIVITY)
            elif name in RPID_ACTIVITIES:
                found.add(name)
    return found


def _is_dnd_text(text: str) -> bool:
    words = re.sub(r"[\s_]+", "-", text.strip().lower())
    return words in _DND_WORDS


def _person_note(person: ET.Element) -> str | None:
    note = pick_note(person.iterfind(_DM_NOTE))
    if note is None:
        # linphone also puts notes on the activities; old RPID drafts on the person.
        note = pick_note(person.iterfind(f"{_ACTIVITIES}/{_RPID_NOTE}"))
    if note is None:
        note = pick_note(person.iterfind(_RPID_NOTE))
    return note


# ---------------------------------------------------------------------------
# Building


def build_pidf(doc: PresenceDocument) -> bytes:
    """Serialize a document; raise `PidfError` for values that cannot round-trip.

    Notes must already be clean (`clean_note(n) == n`), identifiers and URIs
    non-empty without whitespace, activities known (`RPID_ACTIVITIES` or
    `DND_ACTIVITY`), tuple ids unique.
    """
    entity = _checked_token(doc.entity, MAX_URI, "entity")
    ids: set[str] = set()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<presence xmlns="{PIDF_NS}" xmlns:dm="{DATA_MODEL_NS}" xmlns:rpid="{RPID_NS}"'
        f' entity="{_attr(entity)}">',
    ]
    if len(doc.tuples) > MAX_TUPLES:
        raise PidfError(f"more than {MAX_TUPLES} tuples")
    for item in doc.tuples:
        tuple_id = _checked_token(item.id, MAX_ID, "tuple id")
        if tuple_id in ids:
            raise PidfError(f"duplicate tuple id {tuple_id!r}")
        ids.add(tuple_id)
        if item.basic not in ("open", "closed"):
            raise PidfError(f"basic status {item.basic!r} is neither open nor closed")
        lines.append(f' <tuple id="{_attr(tuple_id)}">')
        # One line, no spaces: baresip's subscriber matches <basic>[^<]+</basic>.
        lines.append(f"  <status><basic>{item.basic}</basic></status>")
        if item.contact is not None:
            contact = _checked_token(item.contact, MAX_URI, "contact")
            lines.append(f"  <contact>{_text(contact)}</contact>")
        if item.note is not None:
            lines.append(f"  <note>{_text(_checked_note(item.note))}</note>")
        lines.append(" </tuple>")
    if doc.person is not None:
        lines.extend(_person_lines(doc.person, _free_person_id(ids)))
    lines.append("</presence>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _person_lines(person: PersonInfo, person_id: str) -> list[str]:
    unknown = {a for a in person.activities if a not in RPID_ACTIVITIES and a != DND_ACTIVITY}
    if unknown:
        raise PidfError(f"unknown RPID activities {sorted(unknown)}")
    lines = [f' <dm:person id="{person_id}">']
    if person.activities:
        lines.append("  <rpid:activities>")
        # Real activities first (clients such as linphone show the first one),
        # the "other" marker last; sorted for a stable body.
        for activity in sorted(person.activities, key=lambda a: (a in ("other", DND_ACTIVITY), a)):
            if activity == DND_ACTIVITY:
                lines.append(f"   <rpid:other>{DND_ACTIVITY}</rpid:other>")
            else:
                # No space before "/>": baresip greps for "<rpid:away/>" literally.
                lines.append(f"   <rpid:{activity}/>")
        lines.append("  </rpid:activities>")
    if person.note is not None:
        lines.append(f"  <dm:note>{_text(_checked_note(person.note))}</dm:note>")
    lines.append(" </dm:person>")
    return lines


def _free_person_id(taken: set[str]) -> str:
    """An XML ID for the person element that no tuple uses (ids share one space)."""
    candidate, n = "person", 1
    while candidate in taken:
        n += 1
        candidate = f"person-{n}"
    return candidate


def _checked_token(value: str, limit: int, what: str) -> str:
    if not isinstance(value, str) or not _is_clean_token(value, limit):
        raise PidfError(f"{what} {value!r} must be 1-{limit} characters without whitespace")
    return value


def _checked_note(note: str) -> str:
    if not isinstance(note, str) or clean_note(note) != note:
        raise PidfError(f"note {note[:40]!r} is not clean: pass it through clean_note()")
    return note


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")


# ---------------------------------------------------------------------------
# Meaning


def presence_of(doc: PresenceDocument) -> tuple[PresenceState, str | None]:
    """The PBX's view of a document: one of `PRESENCE_STATES` and a note.

    In order: the DND marker means "dnd"; a busy-like activity means "busy",
    or "dnd" when every tuple is closed (linphone's convention, see the module
    docstring); an away-like activity means "away"; otherwise any open tuple
    means "available" and anything else (all closed, or no usable tuple)
    "offline".  The note is the person's, else the first tuple note.
    """
    activities = doc.person.activities if doc.person is not None else frozenset()
    any_open = any(t.basic == "open" for t in doc.tuples)
    all_closed = bool(doc.tuples) and not any_open
    state: PresenceState
    if DND_ACTIVITY in activities:
        state = "dnd"
    elif activities & _BUSY_ACTIVITIES:
        state = "dnd" if all_closed else "busy"
    elif activities & _AWAY_ACTIVITIES:
        state = "away"
    else:
        state = "available" if any_open else "offline"
    note = doc.person.note if doc.person is not None else None
    if note is None:
        note = next((t.note for t in doc.tuples if t.note is not None), None)
    return state, note


def document_for(
    entity: str,
    state: PresenceState,
    note: str | None,
    *,
    on_the_phone: bool = False,
    contact: str | None = None,
) -> PresenceDocument:
    """The document to NOTIFY watchers with; the inverse of `presence_of`.

    The note is cleaned and carried both on the person (RFC 4479 readers) and
    on the tuple (older clients read only tuple notes).  `on_the_phone` adds the
    RPID on-the-phone activity, which makes watchers see "busy" (rule T9)
    unless the state is "dnd" (still DND) or "offline" (an offline presentity
    shows no activity).  `contact` defaults to the entity when it is a SIP URI.
    So `presence_of(document_for(e, s, n, on_the_phone=p))` is
    `(s if not p or s in ("dnd", "offline") else "busy", clean_note(n))`.
    """
    if state not in _STATE_SHAPES:
        raise PidfError(f"unknown presence state {state!r}")
    basic, activities = _STATE_SHAPES[state]
    if on_the_phone and state != "offline":
        activities = activities | {"on-the-phone"}
    cleaned = clean_note(note)
    if contact is None and entity.lower().startswith(("sip:", "sips:")):
        contact = entity
    return PresenceDocument(
        entity=entity,
        tuples=(PresenceTuple(id=_TUPLE_ID, basic=basic, contact=contact, note=cleaned),),
        person=PersonInfo(activities=activities, note=cleaned),
    )
