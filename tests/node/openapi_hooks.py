"""What the OpenAPI schema cannot state, for the schemathesis run of test_openapi.

Loaded by schemathesis (``SCHEMATHESIS_HOOKS``) in its own process. The
schema gives every field its shape; two things valid data needs lie beyond
JSON Schema, and the generator gets them here:

- an address's checksum: a positive case's bech32 address keeps its
  generated data with the checksum made right, a ``0x`` one is sent in one
  case (mixed case is an EIP-55 checksum);
- a particle text's bound in UTF-8 bytes (the schema counts characters): a
  positive case's texts are cut to 4096 bytes of valid UTF-8;
- the meaning of a body: a transaction is accepted only when signed with the
  sender's next nonce, a Datalog program only when it parses and defines its
  ``output``, a login only with an operator's password. A positive case of
  those operations carries, before it is sent, a transaction the devnet's
  funded key signs now, a program that does, or the operator's credentials.
  The time limit is left out of a positive query: any program can run out of
  one millisecond. Negative cases are sent as generated.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import bech32
import httpx
import schemathesis

from focusflow.chain import make_tx
from focusflow.core.encoding import encode
from focusflow.core.keys import HRP
from focusflow.core.keystore import Keystore
from focusflow.testing.devnet import link_msg

HOME = Path(os.environ["FOCUSFLOW_OPENAPI_HOME"])
API = os.environ["FOCUSFLOW_OPENAPI_API"]
#: The operator test_openapi creates: a positive login case logs in as them
#: (random credentials would be refused, and their failures close the client).
LOGIN = {
    "user": os.environ["FOCUSFLOW_OPENAPI_USER"],
    "password": os.environ["FOCUSFLOW_OPENAPI_PASSWORD"],
}
_serial = itertools.count()


def _checksummed(address: str) -> str:
    """``address`` (which matches the schema's pattern) with a valid checksum."""
    if not address.startswith(HRP + "1"):
        return address.lower()
    data = [bech32.CHARSET.index(c) for c in address[len(HRP) + 1 : -6]]
    return bech32.bech32_encode(HRP, data)


def _utf8_text(text: str) -> str:
    """``text`` as at most 4096 bytes of valid UTF-8, never empty."""
    raw = text.encode("utf-8", "ignore")[:4096]
    return raw.decode("utf-8", "ignore") or "x"


def _signed_tx() -> bytes:
    """A link the devnet's funded key signs with its next nonce (pending ones counted)."""
    key = Keystore(HOME / "keys").load("dev")
    with httpx.Client(base_url=API, timeout=10) as c:
        chain_id = c.get("/v1/status").json()["chain_id"]
        nonce = c.get(f"/v1/accounts/{key.address}").json()["pending_nonce"]
    n = next(_serial)
    return make_tx(key, chain_id, nonce, 10_000, [link_msg((f"fuzz {n}", f"fuzz {n + 1}"))]).encoded


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if case.operation.path == "/v1/particles/texts" and isinstance(case.body, dict):
        case.body["texts"] = [_utf8_text(t) for t in case.body.get("texts", [])]
    if "address" in (case.path_parameters or {}):
        case.path_parameters["address"] = _checksummed(case.path_parameters["address"])
    if case.path == "/v1/admin/faucet" and isinstance(case.body, dict) and "address" in case.body:
        case.body["address"] = _checksummed(case.body["address"])
    cbor = (case.media_type or "").startswith("application/cbor")
    if case.path == "/v1/txs":
        case.body = _signed_tx() if cbor else {"tx": _signed_tx().hex()}
    elif case.path == "/v1/txs/batch" and cbor:
        case.body = encode([_signed_tx()])
    elif case.path == "/v1/auth/login" and isinstance(case.body, dict):
        case.body = {**case.body, **LOGIN}
    elif case.path == "/v1/query" and isinstance(case.body, dict):
        case.body = {
            **{k: v for k, v in case.body.items() if k != "timeout_s"},
            "program": "r(x, y) :- link(x, y).",
            "output": "r",
        }
