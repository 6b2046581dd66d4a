"""The RFC 4475 torture messages and the handling ../shared/conformance/rfc4475 expects."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


# Messages that must parse (requests answered by normal rules, responses dropped as stray).
VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
    "transports", "mpart01", "unreason", "noreason",
    "badbranch", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "zeromf",
    "cparam01", "cparam02", "regescrt", "sdp01", "inv2543", "bcast",
]  # fmt: skip
# Requests with invalid syntax: 400 when the answer can be addressed, else dropped.
INVALID_400 = [
    "badinv01", "clerr", "ncl", "scalar02", "quotbal", "ltgtruri", "lwsruri", "lwsstart",
    "trws", "escruri", "baddate", "regbadct", "badaspec", "baddn", "mismatch01", "mismatch02",
    "insuf", "multi01", "mcl01",
]  # fmt: skip
# Responses that must be rejected by the parser (and so dropped).
INVALID_RESPONSES = ["scalarlg", "bigcode"]

# What a running teleoffice answers to each request over UDP (None: no answer).
# Foreign domains (example.com) get a normal rejection.  REGISTERs and INVITEs are
# challenged (401) before anything else, so nobody learns which numbers exist.
EXPECTED_STATUS: dict[str, int | None] = {
    "wsinv": 481, "intmeth": 501, "esc01": 401, "escnull": 401, "esc02": 501, "lwsdisp": 200,
    "longreq": 401, "dblreq": 401, "semiuri": 200, "transports": 200, "mpart01": 405,
    "badbranch": 200, "unkscm": 416, "novelsc": 416, "unksm2": 401, "bext01": 420,
    "invut": 415, "regaut01": 401, "zeromf": 200, "cparam01": 401, "cparam02": 401,
    "regescrt": 401, "sdp01": 406, "inv2543": 401,
    "badinv01": None, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400,
    "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400,
    "baddate": 400, "regbadct": 400, "badaspec": 400, "baddn": 400, "mismatch01": 400,
    "mismatch02": 400, "insuf": 400, "multi01": 400, "mcl01": 400, "badvers": 505,
    "unreason": None, "noreason": None, "bcast": None, "scalarlg": None, "bigcode": None,
}  # fmt: skip
