"""``focusflow devnet --anvil``: the devnet as hardhat and foundry users know anvil.

What it adds to a devnet (docs/evm.md, *Anvil mode*):

* its genesis grants the dev powers (``evm_dev_powers`` 1, written when the home
  is made with ``--anvil``; a home made without it refuses the flag, so a
  chain's rules never change under it);
* blocks on demand: one as soon as a transaction is ready, or as many as
  ``evm_mine``/``anvil_mine`` ask, none while idle (``chain.devmode``);
* the test mnemonic's ten accounts unlocked for ``eth_sendTransaction`` and, on
  the first start, topped up to ``ANVIL_BALANCE`` (10,000 ether) each by an
  ``evm.set_balance`` transaction of the dev key: a genesis balance is a 63-bit
  integer, so 10^22 wei can only come in a block;
* opcode traces of the transactions it runs (``vm.evm_trace``) for
  ``debug_traceTransaction``;
* its clock, which ``evm_increaseTime`` and ``evm_setNextBlockTimestamp`` move.

Each change of state comes in a block consensus decides and the store commits,
as on any chain.
"""

from __future__ import annotations

import json
import logging

from focusflow.chain.devmode import DevMode
from focusflow.chain.genesis import Genesis
from focusflow.chain.tx import Msg, Tx
from focusflow.core.keys import KeyPair
from focusflow.modules.evm import SET_BALANCE, dev_powers
from focusflow.node.home import Home, HomeError, eth_dev_accounts
from focusflow.node.runtime import NodeRuntime
from focusflow.vm import evm_trace
from focusflow.vm.evm import FOCUS_ADDRESS, KARMA_ADDRESS, ROUTER_ADDRESS, TWAP_ADDRESS
from focusflow.vm.evm_trace import TraceStore

log = logging.getLogger("focusflow.node")

#: What each of the test mnemonic's accounts holds on an anvil devnet: 10,000
#: ether, anvil's funding.
ANVIL_BALANCE = 10_000 * 10**18


def grant_dev_powers(home: Home) -> None:
    """Write ``evm_dev_powers`` 1 into a home's new genesis (before it first starts)."""
    raw = json.loads(home.genesis.read_text())
    raw.setdefault("params", {})["evm_dev_powers"] = 1
    home.genesis.write_text(json.dumps(raw, indent=2) + "\n")


def check_dev_powers(home: Home, genesis: Genesis) -> None:
    """``--anvil`` on a home whose genesis did not grant the dev powers is refused."""
    if not dev_powers(genesis.params):
        raise HomeError(
            f"{home.path} was made without --anvil (its genesis does not set "
            "evm_dev_powers): start it without --anvil, or make a new home with it"
        )


def start_dev_mode(runtime: NodeRuntime, created: bool, validator: bytes) -> DevMode:
    """Give ``runtime`` the anvil powers; on a new home, admit the transaction that
    tops the ten accounts up to ``ANVIL_BALANCE`` (the first block carries it).
    ``validator``: the validator's account address, which earns the blocks' fees."""
    dev_key = runtime.faucet_key
    if dev_key is None:
        raise HomeError("an anvil devnet needs its dev key, unencrypted, in keys/dev")
    key: KeyPair = dev_key

    def submit(msgs: list[Msg]) -> Tx:
        return runtime.submit_as(key, msgs)

    dev = DevMode(dict(eth_dev_accounts()), submit, own=frozenset({key.address_raw, validator}))
    runtime.dev = dev
    evm_trace.install(TraceStore())
    if created:
        balance = ANVIL_BALANCE.to_bytes(32, "big")
        submit(
            [Msg(SET_BALANCE, {"address": a, "balance": balance}) for a, _ in eth_dev_accounts()]
        )
    return dev


def precompile_notes() -> list[str]:
    """The precompiles' addresses, EIP-55 checksummed as web3.py and Solidity want them."""
    from eth_utils import to_checksum_address

    named = (
        ("focus", FOCUS_ADDRESS),
        ("router", ROUTER_ADDRESS),
        ("karma", KARMA_ADDRESS),
        ("twap", TWAP_ADDRESS),
    )
    return ["precompiles: " + ", ".join(f"{n} {to_checksum_address(a)}" for n, a in named)]
