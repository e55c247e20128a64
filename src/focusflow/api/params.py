"""The path and query parameters the routes share, as the OpenAPI schema states them.

The schema is the API's contract: a client (or a fuzzer) that sends what it
allows must get an answer, not a 400, and what it forbids must be refused.
So each parameter here carries what the server checks, in JSON Schema terms:

- a CID's ``pattern`` admits only strings that decode, in the two spellings
  nearly every particle has: CIDv0 (``Qm`` and 44 base58 digits, third
  character inside the range of ``0x12 0x20`` multihashes) and base32 CIDv1 of
  a sha2-256 raw, dag-pb or dag-cbor block (the last character carries two
  zero padding bits). The node accepts every other spelling of a CID too
  (``focusflow.core.cid``): the pattern is the part a schema can promise.
- an address is bech32 ``focus1`` and 38 data characters; its checksum is
  beyond a pattern, so it carries ``format: bech32`` as well.
- integers are bounded within int64 and exported as integers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

#: Largest value of a signed 64-bit integer: heights, offsets, amounts.
INT64_MAX = 2**63 - 1

_B58 = "1-9A-HJ-NP-Za-km-z"
#: Strings that are CIDs (see the module docstring).
CID_PATTERN = rf"^(Qm[P-Za-e][{_B58}]{{43}}|b(afkrei|afybei|afyrei)[a-h][a-z2-7]{{50}}[aeimquy4])$"
#: An account in either spelling: bech32 (``focus1``, 32 characters of 20 bytes
#: and 6 of checksum), or the same 20 bytes as ``0x`` hex (EIP-55 checksummed
#: when mixed case; core.keys.parse_account).
ACCOUNT_PATTERN = r"^(focus1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{38}|(0[xX])?[0-9a-fA-F]{40})$"
#: A SHA-256 hash in hex.
HEX64 = r"^[0-9a-fA-F]{64}$"

_CID_SCHEMA = {"pattern": CID_PATTERN, "maxLength": 256}
_ADDRESS_SCHEMA = {"pattern": ACCOUNT_PATTERN}

CidPath = Annotated[str, Path(description="a particle's CID", json_schema_extra=_CID_SCHEMA)]
AddressPath = Annotated[
    str,
    Path(
        description="an account: bech32 focus1..., or the same 20 bytes as 0x hex",
        json_schema_extra=_ADDRESS_SCHEMA,
    ),
]
HeightPath = Annotated[int, Path(ge=0, le=INT64_MAX, description="block height")]
Direction = Annotated[Literal["in", "out"], Query(description="links into or out of it")]


def _text_key(chars: int) -> str:
    """A key of 1 to ``chars`` characters that does not begin with ``hex:``."""
    return (
        rf"[^h][\s\S]{{0,{chars - 1}}}|h([^e][\s\S]{{0,{chars - 2}}})?"
        rf"|he([^x][\s\S]{{0,{chars - 3}}})?|hex([^:][\s\S]{{0,{chars - 4}}})?"
    )


#: Longest state key, in bytes (``hex:``) or characters (text), a proof route takes.
MAX_KEY = 1024
#: A state key: UTF-8 text, or ``hex:`` and the bytes in hex.
KEY_PATTERN = rf"^(hex:([0-9a-fA-F]{{2}}){{1,{MAX_KEY}}}|{_text_key(MAX_KEY)})$"
StateKey = Annotated[
    str,
    Query(
        min_length=1,
        max_length=2 * MAX_KEY + 4,
        pattern=KEY_PATTERN,
        description=f"UTF-8 key of 1 to {MAX_KEY} characters, or hex:<1 to {MAX_KEY} bytes>",
    ),
]


def state_key(key: str) -> bytes:
    """The bytes of a :data:`StateKey` (FastAPI has checked its pattern)."""
    return bytes.fromhex(key[4:]) if key.startswith("hex:") else key.encode("utf-8")
