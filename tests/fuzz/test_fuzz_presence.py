"""Fuzzing presence documents: PIDF with RPID (RFC 3863/4480) from phones'
PUBLISH requests, and dialog-info (RFC 4235).

Beyond the generic mutations, XML has its own ways to hurt a parser, which
the seeds and tokens here provide: DTDs with entity expansion ("billion
laughs") and external entities, deep nesting, many repeated elements, CDATA,
character references XML forbids, encodings declared and not used (UTF-16,
Latin-1) and byte-order marks.

The property, within the per-example deadline: `parse_pidf` returns a document
or raises `PidfError`, `parse_dialog_info` returns one or raises
`DialogInfoError`, and nothing else escapes. A parsed document means something
(`presence_of`) and, when it can be written (`build_*` raises only its own
error), reads back as itself.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from teleoffice.sip.dialog_info import (
    DialogInfoError,
    build_dialog_info,
    parse_dialog_info,
)
from teleoffice.sip.pidf import (
    PRESENCE_STATES,
    PidfError,
    build_pidf,
    clean_note,
    document_for,
    parse_pidf,
    presence_of,
)
from tests.fuzz.mutate import fuzzing, mutants

_ENTITY = "sip:201@pbx.example"

PIDF_SEEDS = [
    *(
        build_pidf(document_for(_ENTITY, state, 'Back at 3 <ish> & "later"', on_the_phone=p))
        for state in PRESENCE_STATES
        for p in (False, True)
    ),
    # linphone: prefixes for everything, notes in several places and languages.
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf"'
    b' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
    b' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.org">\n'
    b' <tuple id="qoica9"><status><basic>closed</basic></status>'
    b'<contact priority="0.8">sip:alice@192.0.2.3</contact>'
    b"<timestamp>2024-01-01T10:00:00Z</timestamp>"
    b"</tuple>\n"
    b' <dm:person id="sip:alice@example.org"><rpid:activities><rpid:lunch/>'
    b'<rpid:note xml:lang="fr">D\xc3\xa9jeuner</rpid:note></rpid:activities>'
    b'<dm:note xml:lang="en">Lunch</dm:note></dm:person>\n'
    b" <note>Document note</note>\n</presence>\n",
    # baresip before registering, and an old RPID draft person.
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n<presence xmlns="urn:ietf:params:xml:ns:pidf"'
    b' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:202@pbx.example">\r\n'
    b'<tuple id="t1"><status><basic>unknown</basic></status></tuple>\r\n'
    b"<rpid:person><rpid:activities><rpid:other>Do Not Disturb</rpid:other></rpid:activities>"
    b"</rpid:person>\r\n</presence>\r\n",
    # Latin-1 declared, with a Latin-1 note; an extension marked mustUnderstand.
    b'<?xml version="1.0" encoding="ISO-8859-1"?><p:presence xmlns:p="urn:ietf:params:xml:ns:pidf"'
    b' xmlns:x="urn:x" entity="pres:203@pbx.example"><p:tuple id="a"><p:status>'
    b'<p:basic>open</p:basic><x:mood mustUnderstand="false">ok</x:mood></p:status>'
    b"<p:note>Caf\xe9</p:note></p:tuple></p:presence>",
]

DIALOG_SEEDS = [
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="7" state="full"'
    b' entity="sip:201@pbx.example">\n'
    b' <dialog id="d1" call-id="a84b4c76e66710@pbx.example" local-tag="1928301774"'
    b' remote-tag="a6c85cf" direction="recipient">\n  <state>early</state>\n'
    b'  <local><identity display="Alice">sip:201@pbx.example</identity></local>\n'
    b'  <remote><identity display="Bob &amp; Co">sip:202@pbx.example</identity>'
    b'<target uri="sip:202@192.0.2.20"/></remote>\n </dialog>\n'
    b' <dialog id="d2" direction="initiator"><state event="replaced">terminated</state>'
    b"<duration>30</duration></dialog>\n</dialog-info>\n",
    # RFC 4235 section 4.2's own example: no entity, a target only.
    b'<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"'
    b' version="0" state="partial">\n<dialog id="as7d900as8">'
    b'<state>confirmed</state><remote><target uri="sip:bob@example.com"/></remote>'
    b"</dialog>\n</dialog-info>\n",
]

XML_TOKENS = (
    b"<",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x1;",
    b"&#xD800;",
    b"&#x10FFFF;",
    b"&#99999999999999999999;",
    b"&undefined;",
    b"<![CDATA[<note>x</note>]]>",
    b"]]>",
    b"<!-- comment -->",
    b"<?pi data?>",
    b'<!DOCTYPE presence [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE x SYSTEM "file:///etc/passwd">',
    b'<!ENTITY e SYSTEM "http://192.0.2.1/">',
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.1" encoding="latin-1"?>',
    b"<?xml version='1.0' encoding='EBCDIC-CP-US'?>",
    b'xmlns="urn:x"',
    b'xmlns:rpid="urn:x"',
    b' mustUnderstand="true"',
    b' xml:lang="de"',
    b' id="t1"',
    b' entity=""',
    b' version="18446744073709551616"',
    b' state="partial"',
    b'<tuple id="t"><status><basic>open</basic></status></tuple>',
    b'<dialog id="x"><state>early</state></dialog>',
    b"<a>" * 40 + b"</a>" * 40,
    b"\xef\xbb\xbf",
    b"\xff\xfe",
)


def check_pidf(data: bytes) -> None:
    try:
        document = parse_pidf(data)
    except PidfError:
        return
    state, note = presence_of(document)
    assert state in PRESENCE_STATES
    assert note is None or note == clean_note(note)
    try:
        body = build_pidf(document)
    except PidfError:
        return
    assert parse_pidf(body) == document


def check_dialog_info(data: bytes) -> None:
    try:
        info = parse_dialog_info(data)
    except DialogInfoError:
        return
    try:
        body = build_dialog_info(info)
    except DialogInfoError:
        return
    assert parse_dialog_info(body) == info


@fuzzing(scale=2)
@given(mutants(PIDF_SEEDS + DIALOG_SEEDS, XML_TOKENS, max_steps=5))
def test_pidf_returns_or_raises_pidf_error(data: bytes) -> None:
    check_pidf(data)


@fuzzing(scale=2)
@given(mutants(DIALOG_SEEDS + PIDF_SEEDS[:2], XML_TOKENS, max_steps=5))
def test_dialog_info_returns_or_raises_dialog_info_error(data: bytes) -> None:
    check_dialog_info(data)


@fuzzing(scale=0.5)
@given(st.binary(max_size=600))
def test_presence_parsers_on_noise(data: bytes) -> None:
    check_pidf(data)
    check_dialog_info(data)
