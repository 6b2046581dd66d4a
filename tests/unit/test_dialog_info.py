"""Dialog state documents (RFC 4235) for busy-lamp fields: what we build, what
phones read from it, and what a hostile peer cannot make the parser do."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip.dialog_info import (
    DIALOG_INFO_NS,
    DIALOG_STATES,
    MAX_DIALOGS,
    DialogEntry,
    DialogInfo,
    DialogInfoError,
    build_dialog_info,
    dialog_changes,
    parse_dialog_info,
)
from teleoffice.sip.pidf import MAX_DEPTH, MAX_SIZE, clean_note

ENTITY = "sip:201@pbx.example"

RINGING = DialogEntry(
    id="d1",
    call_id="a84b4c76e66710@pbx.example",
    direction="recipient",
    state="early",
    remote="sip:202@pbx.example",
    local=ENTITY,
    local_tag="1928301774",
    remote_tag="456887766",
    remote_display="Bob Builder",
    local_display="Alice",
)


def test_a_call_seen_by_a_busy_lamp_full_then_partial() -> None:
    """Idle, ringing, answered, hung up: versions grow by one per notification."""
    answered = DialogEntry(
        "d1", RINGING.call_id, "recipient", "confirmed", RINGING.remote, ENTITY, "1928301774"
    )
    steps = [
        DialogInfo(ENTITY, 0, "full", ()),
        DialogInfo(ENTITY, 1, "partial", (RINGING,)),
        DialogInfo(ENTITY, 2, "partial", dialog_changes([RINGING], [answered])),
        DialogInfo(ENTITY, 3, "partial", dialog_changes([answered], [])),
        DialogInfo(ENTITY, 4, "full", ()),
    ]
    parsed = [parse_dialog_info(build_dialog_info(step)) for step in steps]
    assert parsed == steps
    assert [p.version for p in parsed] == [0, 1, 2, 3, 4]
    assert [d.state for p in parsed for d in p.dialogs] == ["early", "confirmed", "terminated"]


def test_built_document_reads_like_a_phone_reads_it() -> None:
    """Phones use XPath-like rules (Snom's NotifyParsingRules) on the plain elements."""
    body = build_dialog_info(DialogInfo(ENTITY, 7, "full", (RINGING,)))
    root = ET.fromstring(body)
    ns = {"d": DIALOG_INFO_NS}
    assert root.tag == f"{{{DIALOG_INFO_NS}}}dialog-info"
    assert root.get("entity") == ENTITY  # Snom matches it against the subscribed URI
    assert root.get("version") == "7"
    assert root.get("state") == "full"
    dialog = root.find("d:dialog", ns)
    assert dialog is not None
    assert dialog.get("call-id") == "a84b4c76e66710@pbx.example"  # for directed pickup
    assert dialog.get("local-tag") == "1928301774"
    assert dialog.get("remote-tag") == "456887766"
    assert dialog.get("direction") == "recipient"
    assert dialog.findtext("d:state", namespaces=ns) == "early"
    identity = dialog.find("d:remote/d:identity", ns)
    assert identity is not None
    assert identity.text == "sip:202@pbx.example"
    assert identity.get("display") == "Bob Builder"
    assert b"<state>early</state>" in body


def test_empty_full_document_means_idle() -> None:
    body = build_dialog_info(DialogInfo(ENTITY, 0, "full"))
    assert ET.fromstring(body).find(f"{{{DIALOG_INFO_NS}}}dialog") is None
    assert parse_dialog_info(body) == DialogInfo(ENTITY, 0, "full", ())


def test_special_characters_are_escaped() -> None:
    entry = DialogEntry(
        'x"<&>',
        "c&d@host",
        None,
        "confirmed",
        remote="sip:o'neil&co@pbx.example",
        remote_display='"Quoted" <Name> & Co',
    )
    info = DialogInfo("sip:a&b@pbx.example", 2**40, "partial", (entry,))
    assert parse_dialog_info(build_dialog_info(info)) == info


# -- dialog_changes --------------------------------------------------------------------------


def test_dialog_changes() -> None:
    other = DialogEntry("d2", "c2", "initiator", "trying")
    proceeding = DialogEntry("d2", "c2", "initiator", "proceeding")
    ended = DialogEntry("d3", "c3", None, "terminated")
    assert dialog_changes([], []) == ()
    assert dialog_changes([RINGING], [RINGING]) == ()
    assert dialog_changes([], [RINGING, other]) == (RINGING, other)
    assert dialog_changes([RINGING, other], [RINGING, proceeding]) == (proceeding,)
    gone = replace(RINGING, state="terminated")
    assert dialog_changes([RINGING, other], [other]) == (gone,)
    # A dialog already reported as terminated is not reported again when it goes.
    assert dialog_changes([ended], []) == ()


# -- RFC 4235's examples and what phones send ---------------------------------------------

# RFC 4235 section 4.2, the sample notification body.  It has no entity
# attribute although the schema requires one.
RFC4235_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:dialog-info"
  version="1" state="full">
  <dialog id="123456">
     <state>confirmed</state>
     <duration>274</duration>
     <local>
       <identity display="Alice">sip:alice@example.com</identity>
       <target uri="sip:alice@pc33.example.com">
         <param pname="isfocus" pval="true"/>
         <param pname="class" pval="personal"/>
       </target>
     </local>
     <remote>
       <identity display="Bob">sip:bob@example.org</identity>
       <target uri="sip:bobster@phone21.example.org"/>
     </remote>
  </dialog>
</dialog-info>
"""

# RFC 4235 section 5 style: an early dialog with the SIP dialog identifiers.
RFC4235_EARLY = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
             version="1"
             state="full"
             entity="sip:alice@example.com">
    <dialog id="as7d900as8"
            call-id="a84b4c76e66710"
            local-tag="1928301774"
            remote-tag="456887766"
            direction="initiator">
        <state>early</state>
    </dialog>
</dialog-info>
"""


def test_rfc4235_sample_notification_body() -> None:
    assert parse_dialog_info(RFC4235_SAMPLE) == DialogInfo(
        entity="",
        version=1,
        state="full",
        dialogs=(
            DialogEntry(
                id="123456",
                call_id=None,
                direction=None,
                state="confirmed",
                remote="sip:bob@example.org",
                local="sip:alice@example.com",
                remote_display="Bob",
                local_display="Alice",
            ),
        ),
    )


def test_rfc4235_early_dialog() -> None:
    assert parse_dialog_info(RFC4235_EARLY) == DialogInfo(
        entity="sip:alice@example.com",
        version=1,
        state="full",
        dialogs=(
            DialogEntry(
                id="as7d900as8",
                call_id="a84b4c76e66710",
                direction="initiator",
                state="early",
                local_tag="1928301774",
                remote_tag="456887766",
            ),
        ),
    )


def test_phone_style_documents() -> None:
    # A partial update ending one dialog, the way desk phones send them, with a
    # prefixed namespace, a terminated state carrying event/code attributes, a
    # participant known only by its target, and an unknown extension.
    body = b"""<?xml version="1.0"?>
<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" xmlns:x="urn:x"
  version="4" state="partial" entity="sip:1000@10.2.1.48:5060">
  <d:dialog id="65644" direction="recipient" call-id="0_3138@10.10.20.31">
    <d:state event="remote-bye" code="200">Terminated</d:state>
    <d:remote><d:target uri="sip:1@10.2.1.48:5060"/></d:remote>
    <x:line>2</x:line>
  </d:dialog>
  <d:dialog id="65645" direction="sideways"><d:state>trying</d:state></d:dialog>
</d:dialog-info>"""
    assert parse_dialog_info(body) == DialogInfo(
        "sip:1000@10.2.1.48:5060",
        4,
        "partial",
        (
            DialogEntry(
                "65644", "0_3138@10.10.20.31", "recipient", "terminated", "sip:1@10.2.1.48:5060"
            ),
            DialogEntry("65645", None, None, "trying"),
        ),
    )


def test_display_names_are_cleaned() -> None:
    body = (
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"'
        b' entity="sip:a@b"><dialog id="1"><state>early</state><remote>'
        b'<identity display="  Bob\n\tthe&#x7f;Builder ">sip:bob@b</identity>'
        b"</remote></dialog></dialog-info>"
    )
    (dialog,) = parse_dialog_info(body).dialogs
    assert dialog.remote_display == "Bob theBuilder"


# -- what we refuse --------------------------------------------------------------------------

HEAD = (
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="e">'
)
VALID = HEAD + b"</dialog-info>"


def dialogs(body: bytes) -> bytes:
    return HEAD + body + b"</dialog-info>"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE dialog-info [
 <!ENTITY a "aaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="&c;"/>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE dialog-info [<!ENTITY x SYSTEM "file:///etc/shadow">]>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="&x;"/>"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (BILLION_LAUGHS, "DTD"),
        (EXTERNAL_ENTITY, "DTD"),
        (VALID + b"\n" * (MAX_SIZE - len(VALID) + 1), "over the limit"),
        (b"<dialog-info version='0' state='full'/>", "not a dialog-info document"),
        (
            b'<dialog-info xmlns="urn:ietf:params:xml:ns:pidf" version="0" state="full"/>',
            "not a dialog-info",
        ),
        (VALID.replace(b' version="0"', b""), "version"),
        (VALID.replace(b'version="0"', b'version="-1"'), "version"),
        (VALID.replace(b'version="0"', b'version="1e3"'), "version"),
        (VALID.replace(b'version="0"', b'version="' + b"9" * 20 + b'"'), "version"),
        (VALID.replace(b'version="0"', b'version="9223372036854775808"'), "out of range"),
        (VALID.replace(b' state="full"', b""), "state"),
        (VALID.replace(b'state="full"', b'state="some"'), "state"),
        (VALID.replace(b'entity="e"', b'entity="a b"'), "entity"),
        (dialogs(b"<dialog><state>early</state></dialog>"), "id attribute"),
        (dialogs(b'<dialog id=""><state>early</state></dialog>'), "id attribute"),
        (dialogs(b'<dialog id="1"/>'), "state"),
        (dialogs(b'<dialog id="1"><state>ringing</state></dialog>'), "state"),
        (dialogs(b'<dialog id="1" call-id="a b"><state>early</state></dialog>'), "call-id"),
        (
            dialogs(
                b'<dialog id="1"><state>early</state>'
                b"<local><identity>sip:a b</identity></local></dialog>"
            ),
            "URI",
        ),
        (
            dialogs(b'<dialog id="d"><state>early</state></dialog>' * (MAX_DIALOGS + 1)),
            "more than",
        ),
        (HEAD + b"<x>" * MAX_DEPTH + b"</x>" * MAX_DEPTH + b"</dialog-info>", "deeper"),
        (VALID.replace(b'entity="e"', "entity='\xe9'".encode("latin-1")), "UTF-8"),
        (VALID[:-3], "malformed"),
    ],
)
def test_refused(body: bytes, reason: str) -> None:
    with pytest.raises(DialogInfoError, match=reason):
        parse_dialog_info(body)


@pytest.mark.parametrize(
    "info",
    [
        DialogInfo("", 0, "full"),
        DialogInfo("sip:a b", 0, "full"),
        DialogInfo(ENTITY, -1, "full"),
        DialogInfo(ENTITY, 2**63, "full"),
        DialogInfo(ENTITY, True, "full"),
        DialogInfo(ENTITY, 0, "some"),  # type: ignore[arg-type]
        DialogInfo(ENTITY, 0, "full", (RINGING, RINGING)),
        DialogInfo(ENTITY, 0, "full", (DialogEntry("", None, None, "early"),)),
        DialogInfo(ENTITY, 0, "full", (DialogEntry("d", None, None, "ringing"),)),  # type: ignore[arg-type]
        DialogInfo(ENTITY, 0, "full", (DialogEntry("d", None, "sideways", "early"),)),  # type: ignore[arg-type]
        DialogInfo(ENTITY, 0, "full", (DialogEntry("d", "a b", None, "early"),)),
        DialogInfo(ENTITY, 0, "full", (DialogEntry("d", None, None, "early", remote="x y"),)),
        DialogInfo(
            ENTITY, 0, "full", (DialogEntry("d", None, None, "early", remote_display="Bob"),)
        ),
        DialogInfo(
            ENTITY,
            0,
            "full",
            (DialogEntry("d", None, None, "early", remote="sip:b@c", remote_display=" Bob"),),
        ),
        DialogInfo(
            ENTITY,
            0,
            "full",
            tuple(DialogEntry(str(n), None, None, "early") for n in range(MAX_DIALOGS + 1)),
        ),
    ],
)
def test_build_refuses_what_would_not_round_trip(info: DialogInfo) -> None:
    with pytest.raises(DialogInfoError):
        build_dialog_info(info)


# -- properties ---------------------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Z", "Cf", "Co", "Cn"]),
    min_size=1,
    max_size=24,
).filter(lambda s: s.isprintable() and not any(ch.isspace() for ch in s))
_display = st.text(max_size=60).map(clean_note)


@st.composite
def _entries(draw: st.DrawFn) -> DialogEntry:
    remote = draw(st.none() | _token)
    local = draw(st.none() | _token)
    return DialogEntry(
        id=draw(_token),
        call_id=draw(st.none() | _token),
        direction=draw(st.sampled_from([None, "initiator", "recipient"])),
        state=draw(st.sampled_from(DIALOG_STATES)),
        remote=remote,
        local=local,
        local_tag=draw(st.none() | _token),
        remote_tag=draw(st.none() | _token),
        remote_display=None if remote is None else draw(_display),
        local_display=None if local is None else draw(_display),
    )


_infos = st.builds(
    DialogInfo,
    entity=_token,
    version=st.integers(0, 2**63 - 1),
    state=st.sampled_from(["full", "partial"]),
    dialogs=st.lists(_entries(), max_size=4, unique_by=lambda d: d.id).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(_infos)
def test_generated_documents_round_trip(info: DialogInfo) -> None:
    assert parse_dialog_info(build_dialog_info(info)) == info


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_entries(), max_size=4, unique_by=lambda d: d.id),
    st.lists(_entries(), max_size=4, unique_by=lambda d: d.id),
)
def test_partial_updates_rebuild_the_full_view(
    before: list[DialogEntry], after: list[DialogEntry]
) -> None:
    """Applying the partial update to the old view gives the new view (plus ended dialogs)."""
    view = {d.id: d for d in before}
    for changed in dialog_changes(before, after):
        view[changed.id] = changed
    live = {key: d for key, d in view.items() if d.state != "terminated"}
    assert live == {d.id: d for d in after if d.state != "terminated"}


_CHILDREN = {
    "dialog-info": ["dialog"],
    "dialog": ["state", "state", "local", "remote", "duration"],
    "local": ["identity", "target"],
    "remote": ["identity", "target"],
}
_ATTRIBUTES = ['id="d"', 'id="e"', 'id=""', 'call-id="c"', 'direction="initiator"']
_ATTRIBUTES += ['uri="sip:a"', 'display="&#9;A"', 'local-tag="x y"', "event='replaced'"]
_TEXTS = ["", "early", " confirmed ", "trying", "Terminated", "sip:x", "&amp;", "sip:a b"]


@st.composite
def _xmlish(draw: st.DrawFn) -> bytes:
    """Random XML in dialog-info's vocabulary, often well-formed."""
    broken = draw(st.integers(0, 3)) == 0
    texts = [*_TEXTS, "&", "<", "&#0;"] if broken else _TEXTS

    def element(parent: str, depth: int) -> str:
        name = draw(st.sampled_from([*_CHILDREN.get(parent, ["x"]) * 4, "dialog", "x"]))
        attributes = draw(
            st.lists(st.sampled_from(_ATTRIBUTES), max_size=3, unique_by=lambda a: a.split("=")[0])
        )
        if name == "dialog" and draw(st.booleans()):
            attributes = [f'id="d{depth}{draw(st.integers(0, 9))}"']
        text = draw(st.sampled_from([*DIALOG_STATES * 2, *texts] if name == "state" else texts))
        count = draw(st.integers(0, 3)) if depth < 5 else 0
        children = "".join(element(name, depth + 1) for _ in range(count))
        return f"<{name} {' '.join(attributes)}>{text}{children}</{name}>"

    namespace = draw(st.sampled_from([DIALOG_INFO_NS] * 6 + ["urn:x", ""]))
    version = draw(st.sampled_from(["0", "1", "17", "-1", "", "x"]))
    body = "".join(element("dialog-info", 1) for _ in range(draw(st.integers(0, 3))))
    return (
        f'<dialog-info xmlns="{namespace}" version="{version}" state="partial">{body}</dialog-info>'
    ).encode()


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        _xmlish(),
        st.tuples(_infos.map(build_dialog_info), st.integers(0, 1500), st.binary(max_size=4)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
    )
)
def test_parse_raises_only_dialog_info_error(data: bytes) -> None:
    try:
        info = parse_dialog_info(data)
    except DialogInfoError:
        return
    assert info.state in ("full", "partial")
    assert all(d.state in DIALOG_STATES for d in info.dialogs)
