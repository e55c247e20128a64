"""A byzantine validator process for the fault-and-attack tests (tests only).

``python -m tests.adversarial.byzantine_node --home DIR --attack NAME`` runs the
validator of a testnet home exactly as ``focusflow node start`` does (same key,
addresses, peers, QUIC and API), except that it attacks as NAME says:

- ``future_time``: each block it proposes carries ``time_ms = 2^64 - 1``, built
  through the chain's execution pipeline below its time checks, so the block is
  otherwise well formed (parent certificate, every root).
- ``double_proposal``: with each proposal it signs a second one for the same
  height and round, a different valid block (empty, 1 ms later), and gossips
  both.
- ``vanish_after_polka``: it serves the shares of its proposals to every
  validator but one (the victim: the lowest other public key), and at the first
  block of its own that gets a polka it exits instead of precommitting (a block
  it proposed with every other validator connected, not one re-sent from its
  WAL at a restart). The two
  validators that sampled the block saw the polka and are locked on it; the
  victim refused it; the three left must still finish the height.
- ``hostile_txs``: each block it proposes carries, beside the transactions it
  executed, one transaction of the execution-plane attacks that it never ran
  itself, in turn: an Ethereum creation with 49,153 bytes of initcode (over
  EIP-3860's limit), and a ``wasm.store`` of a module whose ``instantiate``
  returns nothing followed by its ``wasm.instantiate``. The header's
  transaction and data roots cover it, so the honest validators must execute
  it to judge the block; a crash there would halt them. Before its first
  attack it funds the Ethereum sender through an honest block (the dev key's
  send), and it writes ``kind height tx-hash`` per attack to
  ``DIR/hostile.log``.

Each attack appends one line per malicious act to ``DIR/attack.log`` (``NAME
height``), so a test can check the attack really happened.

An attack is a validator runtime whose proposals part (what it proposes) or
consensus driver (what it does with the state machine's actions) is its own
subclass of the honest one (``ValidatorRuntime.proposals_type`` and
``driver_type``); everything else is the honest node's code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from eth_account import Account

from focusflow.chain import Msg, Tx, decode_tx, make_tx
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.consensus import Broadcast, Proposal, Step, Vote, encode_message
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.da.errors import ShareUnavailableError
from focusflow.modules.accounts import get_account
from focusflow.net import BLOCK_PARTS
from focusflow.node import logs, network
from focusflow.node.consensus_driver import ConsensusDriver
from focusflow.node.da_net import SHARES
from focusflow.node.home import DEV_KEY_NAME, Home, eth_dev_accounts
from focusflow.node.proposals import Proposals, decode_value
from focusflow.node.validator import ValidatorRuntime

#: The largest uint64: no block after it could have a larger time.
FAR_FUTURE_MS = 2**64 - 1

log = logging.getLogger("focusflow.node")


class FutureTimeProposals(Proposals):
    """Proposes blocks stamped ``FAR_FUTURE_MS``."""

    def get_value(self, height: int) -> bytes:
        """The honest proposal path, with the chain's ``propose`` swapped for one
        that stamps the block ``FAR_FUTURE_MS`` below the chain's time checks."""
        chain = self.chain

        def far_future_propose(txs, time_ms=None, *, verified=False):
            t0 = time.perf_counter()
            proposer = chain.validator_key.address_raw
            executed = chain.pipeline.execute(
                height=chain.height + 1, time_ms=FAR_FUTURE_MS, proposer=proposer, txs=[],
                verified=True, evidence=[], strict=False,
            )  # fmt: skip
            return chain.pipeline.build(executed, started=t0)

        chain.propose = far_future_propose  # type: ignore[method-assign]
        try:
            value = super().get_value(height)
        finally:
            del chain.propose
        with open(self.node.attack_log, "a") as out:
            out.write(f"future_time {height}\n")
        log.warning("byzantine: proposed a block from the far future", extra={"fields": {}})
        return value


class FutureTimeRuntime(ValidatorRuntime):
    """Proposes blocks stamped ``FAR_FUTURE_MS``; otherwise an honest validator."""

    attack_log: Path
    proposals_type = FutureTimeProposals


class DoubleProposalDriver(ConsensusDriver):
    """Signs and gossips a second valid proposal for each round it leads."""

    async def act(self, actions: list) -> None:
        firsts = [
            a.message
            for a in actions
            if isinstance(a, Broadcast) and isinstance(a.message, Proposal)
        ]
        await super().act(actions)
        for first in firsts:
            raw = await asyncio.to_thread(self._second, first)
            await self.publish(BLOCK_PARTS, raw)
            with open(self.node.attack_log, "a") as out:
                out.write(f"double_proposal {first.height}\n")
            log.warning("byzantine: sent a second proposal", extra={"fields": {}})

    def _second(self, first: Proposal) -> bytes:
        """Another valid block for ``first``'s height and round, signed and encoded."""
        stamp = decode_value(first.value).block.header.time_ms + 1
        pending = self.chain.propose([], stamp, verified=True)
        value = pending.proposal_value()
        second = Proposal.sign(
            self.node.key,
            self.chain.chain_id,
            first.height,
            first.round,
            first.valid_round,
            value,
            pending.hash,
        )
        return encode_message(second)


class DoubleProposalRuntime(ValidatorRuntime):
    """Signs and gossips a second valid proposal for each round it leads."""

    attack_log: Path
    driver_type = DoubleProposalDriver


class VanishAfterPolkaProposals(Proposals):
    """Notes the value ids of the proposals it may vanish after."""

    def get_value(self, height: int) -> bytes:
        """The honest proposal; it is attacked only when made in this process
        (not re-sent from the WAL at a restart) with every other validator
        connected, so the one it is withheld from is up to miss the polka."""
        value = super().get_value(height)
        node = self.node
        assert node.net is not None
        if len(node.net.connected_peers()) >= len(node.vset.validators) - 1:
            node._mine.add(self.value_id(value))
        return value


class VanishAfterPolkaDriver(ConsensusDriver):
    """Exits instead of precommitting a block of its own."""

    async def act(self, actions: list) -> None:
        for action in actions:
            message = action.message if isinstance(action, Broadcast) else None
            if (
                isinstance(message, Vote)
                and message.step == Step.PRECOMMIT
                and message.value_id in self.node._mine
            ):
                with open(self.node.attack_log, "a") as out:
                    out.write(f"vanish_after_polka {message.height}\n")
                log.warning("byzantine: vanishing instead of precommitting", extra={"fields": {}})
                logging.shutdown()
                os._exit(0)
        await super().act(actions)


class VanishAfterPolkaRuntime(ValidatorRuntime):
    """Withholds its proposals' shares from one validator and exits when it would
    precommit a block of its own (see the module docstring)."""

    attack_log: Path
    _mine: set[bytes]
    proposals_type = VanishAfterPolkaProposals
    driver_type = VanishAfterPolkaDriver

    async def start_async(self) -> None:
        self._mine = set()
        await super().start_async()
        assert self.net is not None
        honest = self.net.handlers.get(SHARES)
        assert honest is not None
        victim = min(v.public_key for v in self.vset.validators if v.public_key != self.net.id)

        async def withholding(peer: bytes, payload: bytes) -> bytes:
            if peer == victim:
                raise ShareUnavailableError("withheld from this validator")
            return await honest(peer, payload)

        self.net.handlers._handlers[SHARES] = withholding


#: A module with every export the WASM ABI names, whose ``instantiate`` returns
#: no result: the call expects an i64 (``vm.wasm``).
MISTYPED_WASM = """(module
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "instantiate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))"""
#: What the dev key gives the Ethereum sender before the first attack.
ETH_FUNDS = 10**12


class HostileTxsProposals(Proposals):
    """Proposes blocks carrying attack transactions it did not execute (see
    the module docstring)."""

    #: Attacks made so far: the next one's kind is the other one.
    made = 0

    def get_value(self, height: int) -> bytes:
        chain = self.chain
        honest_propose = chain.propose
        attack: list = []

        def hostile_propose(txs, time_ms=None, *, verified=False):
            extra = self._funding()
            if extra:
                return honest_propose([*extra, *txs], time_ms, verified=verified)
            kind, hostile = self._hostile()
            attack.append((kind, hostile))
            t0 = time.perf_counter()
            now = max(int(time.time() * 1000), chain.head.time_ms + 1)
            decoded = [t if isinstance(t, Tx) else decode_tx(t) for t in txs]
            executed = chain.pipeline.execute(
                height=chain.height + 1, time_ms=now, proposer=chain.validator_key.address_raw,
                txs=decoded, verified=verified, evidence=chain.evidence.pending(), strict=False,
            )  # fmt: skip
            executed = replace(executed, included=[*executed.included, hostile])
            return chain.pipeline.build(executed, started=t0)

        chain.propose = hostile_propose  # type: ignore[method-assign]
        try:
            value = super().get_value(height)
        finally:
            del chain.propose
        for kind, hostile in attack:
            self.made += 1
            with open(self.node.attack_log, "a") as out:
                out.write(f"hostile_txs {height}\n")
            with open(self.node.attack_log.parent / "hostile.log", "a") as out:
                out.write(f"{kind} {height} {hostile.hash.hex()}\n")
            log.warning(
                "byzantine: proposed a block with an unexecuted attack", extra={"fields": {}}
            )
        return value

    def _dev(self) -> KeyPair:
        return Keystore(Home(self.node.attack_log.parent).keys).load(DEV_KEY_NAME)

    def _funding(self) -> list[Tx]:
        """The dev key's send to the Ethereum sender, while it has nothing."""
        eth_sender, _ = eth_dev_accounts()[0]
        with self.chain.reader() as r:
            if get_account(r, eth_sender).balance:
                return []
            dev = self._dev()
            nonce = get_account(r, dev.address_raw).nonce
        send = Msg("send", {"to": eth_sender, "amount": ETH_FUNDS})
        return [make_tx(dev, self.chain.chain_id, nonce, 10**6, [send])]

    def _hostile(self) -> tuple[str, Tx]:
        """The attack for this proposal: the kinds in turn."""
        chain = self.chain
        if self.made % 2 == 0:
            eth_sender, eth_key = eth_dev_accounts()[0]
            with chain.reader() as r:
                nonce = get_account(r, eth_sender).nonce
            fields = {
                "chainId": evm_chain_id(chain.chain_id), "nonce": nonce, "maxFeePerGas": 10,
                "maxPriorityFeePerGas": 1, "gas": 10_000_000, "to": None, "value": 0,
                "data": bytes(49_153), "type": 2,
            }  # fmt: skip
            raw = bytes(Account.sign_transaction(fields, eth_key).raw_transaction)
            return "evm_initcode", decode_tx(raw)
        import wasmtime

        dev = self._dev()
        code = wasmtime.wat2wasm(MISTYPED_WASM)
        with chain.reader() as r:
            nonce = get_account(r, dev.address_raw).nonce
        msgs = [
            Msg("wasm.store", {"code": code}),
            Msg(
                "wasm.instantiate", {"code": sha256(code), "msg": b"{}", "label": "x", "gas": 10**6}
            ),
        ]
        return "wasm_mistyped", make_tx(dev, chain.chain_id, nonce, 10**8, msgs)


class HostileTxsRuntime(ValidatorRuntime):
    """Proposes blocks carrying attack transactions it did not execute (see
    the module docstring); otherwise an honest validator."""

    attack_log: Path
    proposals_type = HostileTxsProposals


ATTACKS: dict[str, type[ValidatorRuntime]] = {
    "future_time": FutureTimeRuntime,
    "double_proposal": DoubleProposalRuntime,
    "vanish_after_polka": VanishAfterPolkaRuntime,
    "hostile_txs": HostileTxsRuntime,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--attack", choices=sorted(ATTACKS), required=True)
    args = parser.parse_args()
    runtime_class = ATTACKS[args.attack]
    runtime_class.attack_log = args.home / "attack.log"  # type: ignore[attr-defined]
    logs.setup(False)
    # run_validator builds the runtime through this module attribute: point it at
    # the attacker's class, and everything else stays the honest node's code.
    network.ValidatorRuntime = runtime_class  # type: ignore[misc]
    network.run_validator(args.home)


if __name__ == "__main__":
    main()
