"""Small builders for tests of chains in one process: keys, a genesis, chains
(``open_chain`` over a test's directory, this process the validator),
particles, links and signed transactions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.keys import KeyPair
from focusflow.modules.accounts import get_account
from focusflow.node import open_chain

if TYPE_CHECKING:
    from focusflow.chain.account import Account
    from focusflow.chain.chain import Chain

CHAIN_ID = "focusflow-test"
FEE = 1_000_000
BALANCE = 10**12
STAKE = 10**6

VALIDATOR = KeyPair.from_seed(b"validator".ljust(32, b"\0"))
ALICE = KeyPair.from_seed(b"alice".ljust(32, b"\0"))
BOB = KeyPair.from_seed(b"bob".ljust(32, b"\0"))
CAROL = KeyPair.from_seed(b"carol".ljust(32, b"\0"))


def genesis(**params: Any) -> Genesis:
    params.setdefault("focus", {"mode": "tri"})
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": params,
            "accounts": [
                {"address": k.address, "balance": BALANCE, "stake": STAKE}
                for k in (ALICE, BOB, CAROL)
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def new_chain(path: Path | str, gen: Genesis | None = None, producer: bool = True) -> Chain:
    chain: Chain = open_chain(path, gen or genesis(), VALIDATOR if producer else None)
    return chain


def particle(name: str) -> bytes:
    return raw_cid_bytes(name.encode())


def tx(key: KeyPair, nonce: int, *msgs: Msg, fee: int = FEE, chain_id: str = CHAIN_ID) -> bytes:
    return make_tx(key, chain_id, nonce, fee, msgs).encoded


def link(*pairs: tuple[str, str]) -> Msg:
    return Msg("link", {"links": [[particle(a), particle(b)] for a, b in pairs]})


def many_links(prefix: str, n: int) -> Msg:
    """A ``link`` message of the ``n`` links ``prefix{i} -> prefix{i + 1}``."""
    return link(*[(f"{prefix}{i}", f"{prefix}{i + 1}") for i in range(n)])


def diffusion_genesis() -> Genesis:
    """A genesis whose focus is diffusion alone (cheap blocks, for data tests)."""
    return genesis(focus={"mode": "diffusion"})


#: celestia-app's minimal data availability header: the data root of a block
#: without transactions (``pkg/da/data_availability_header_test.go``, "min DAH").
MIN_DAH = "3d96b7d238e7e0456f6af8e7cdf0a67bd6cf9c2089ecb559c659dcaa1f880353"


def account(chain: Chain, key: KeyPair) -> Account:
    """The committed account of ``key`` on ``chain``."""
    with chain.reader() as r:
        return get_account(r, key.address_raw)
