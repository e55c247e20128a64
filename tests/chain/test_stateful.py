"""Random transaction sequences against a producer and a follower node.

A hypothesis state machine queues sends, stakes, unstakes, links, names and
blobs from three funded neurons (and, now and then, a transaction with a
replayed or skipped nonce), and seals them into blocks that one node produces
and another applies. After every block:

- the token supply (liquid + bonded + unbonding, over all accounts) equals the
  genesis supply minus what the chain burns: ``link_burn`` per kept link,
  ``name_fee`` per registered name, ``blob_credit_per_byte`` per stored byte
  (fees move to the proposer, matured unbonding back to its owner: neither
  changes the supply);
- each sender's included transactions carry its nonces 0, 1, 2, ... with no
  gap or repeat, and its account's nonce is the next one;
- a transaction whose nonce is not the account's next is left out of the block
  with ``bad_nonce`` and changes nothing (its sender's account is untouched);
- both nodes have the same head (state, focus and data roots) and the same
  store root.

Unbonding is short here (6 blocks), so matured stake returns during a run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from focusflow.chain import Msg, decode_tx
from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.chain.params import ChainParams
from focusflow.core.encoding import decode
from focusflow.core.keys import KeyPair
from focusflow.modules.names import name_fee
from focusflow.node import open_chain
from focusflow.state_schema.accounts import ACCOUNT_PREFIX, get_account
from focusflow.state_schema.staking import UNBOND_PREFIX
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BALANCE, BOB, CAROL, STAKE, VALIDATOR, genesis
from focusflow.testing.chains import particle as cid
from focusflow.testing.chains import tx as make_tx

T0 = 1_700_000_000_000
NEURONS = [ALICE, BOB, CAROL]
BY_KEY = {k.public_key: k for k in [*NEURONS, VALIDATOR]}
#: Short windows, so that unstaked tokens mature within a run (unbonding must
#: exceed evidence_max_age + epoch_blocks).
#: The focus a genesis written now names (exact arithmetic): the algorithm
#: chains run, on the tiny graphs where exact-v1 once cycled to its cap.
PARAMS = {
    "evidence_max_age": 2,
    "epoch_blocks": 3,
    "unbonding_blocks": 6,
    "focus": dict(NEW_CHAIN_FOCUS),
}
#: Transactions per block at most: a full batch is sealed at once, so a run
#: has many blocks (a block may also be sealed early, or empty, by ``produce``).
BATCH = 3

neurons = st.sampled_from(NEURONS)
amounts = st.integers(min_value=0, max_value=BALANCE // 4)
particles = st.integers(min_value=0, max_value=11).map(lambda i: cid(f"s{i}"))
pairs = st.lists(st.tuples(particles, particles), min_size=1, max_size=6)
names = st.text(alphabet="abc", min_size=3, max_size=6)


def supply(chain) -> int:
    """Liquid + bonded over all accounts, plus every unbonding entry."""
    total = 0
    with chain.reader() as r:
        for _, raw in r.items(ACCOUNT_PREFIX):
            balance, _, bonded = decode(raw, "account")
            total += balance + bonded
        for _, raw in r.items(UNBOND_PREFIX):
            total += decode(raw, "unbonding")
    return total


def burned(params: ChainParams, msgs) -> int:
    """What a successful transaction's messages burn (docs/chain.md, *Messages*)."""
    out = 0
    for msg in msgs:
        if msg.type == "link":
            out += len(msg.body["links"]) * params.link_burn
        elif msg.type == "name.register":
            out += name_fee(msg.body["name"], params.name_fee)
        elif msg.type == "blob.put":
            out += len(msg.body["data"]) * params.blob_credit_per_byte
    return out


class ChainMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="stateful-chain-"))
        gen = genesis(**PARAMS)
        # No fsync: durability is not under test, and it dominates a block's time.
        self.producer = open_chain(Store(self.dir / "a", sync=False), gen, VALIDATOR)
        self.follower = open_chain(Store(self.dir / "b", sync=False), gen)
        self.params = self.producer.params
        self.expected_supply = supply(self.producer)
        assert self.expected_supply == 3 * (BALANCE + STAKE)
        #: Each neuron's next nonce as the model counts it (included transactions).
        self.nonce = {k.public_key: 0 for k in NEURONS}
        #: Nonces handed out to queued transactions (ahead of ``nonce``).
        self.queued_nonce = dict(self.nonce)
        self.batch: list[bytes] = []
        self.height = 0

    def teardown(self) -> None:
        self.producer.store.close()
        self.follower.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- transactions ---------------------------------------------------------
    def queue(self, key: KeyPair, *msgs: Msg) -> None:
        nonce = self.queued_nonce[key.public_key]
        self.batch.append(make_tx(key, nonce, *msgs))
        self.queued_nonce[key.public_key] = nonce + 1
        if len(self.batch) >= BATCH:
            self.produce()

    @rule(key=neurons, to=st.sampled_from([*NEURONS, VALIDATOR]), amount=amounts)
    def send(self, key, to, amount):
        self.queue(key, Msg("send", {"to": to.address_raw, "amount": amount}))

    @rule(key=neurons, amount=st.integers(min_value=0, max_value=3 * STAKE))
    def stake(self, key, amount):
        self.queue(key, Msg("stake", {"amount": amount}))

    @rule(key=neurons, amount=st.integers(min_value=0, max_value=2 * STAKE))
    def unstake(self, key, amount):
        self.queue(key, Msg("unstake", {"amount": amount}))

    @rule(key=neurons, links=pairs)
    def link(self, key, links):
        # Self-links among the pairs make the message fail: that path is kept.
        self.queue(key, Msg("link", {"links": [[a, b] for a, b in links]}))

    @rule(key=neurons, name=names)
    def register_name(self, key, name):
        self.queue(key, Msg("name.register", {"name": name, "cid": cid(name)}))

    @rule(key=neurons, name=names, to=neurons)
    def transfer_name(self, key, name, to):
        self.queue(key, Msg("name.transfer", {"name": name, "to": to.address_raw}))

    @rule(key=neurons, data=st.binary(max_size=64))
    def put_blob(self, key, data):
        self.queue(key, Msg("blob.put", {"data": data}))

    @rule(key=neurons, amount=amounts, links=pairs)
    def two_messages(self, key, amount, links):
        """A send and a link in one transaction: all or nothing."""
        self.queue(
            key,
            Msg("send", {"to": VALIDATOR.address_raw, "amount": amount}),
            Msg("link", {"links": [[a, b] for a, b in links]}),
        )

    # --- blocks -----------------------------------------------------------------
    def seal(self, txs: list[bytes]):
        """Produce a block on one node, apply it on the other, check both agree."""
        self.height += 1
        result = self.producer.produce_block(txs, time_ms=T0 + 1000 * self.height)
        followed = self.follower.apply_block(result.record.encode())
        assert self.follower.head == self.producer.head
        assert self.follower.store.root == self.producer.store.root
        assert [r.code for r in followed.receipts] == [r.code for r in result.receipts]
        return result

    @rule()
    def produce(self):
        result = self.seal(self.batch)
        self.batch = []
        included = result.block.txs
        assert len(included) == len(result.receipts)
        for raw, receipt in zip(included, result.receipts, strict=True):
            tx = decode_tx(raw)
            assert tx.nonce == self.nonce[tx.sender], "an included nonce skips or repeats"
            self.nonce[tx.sender] += 1
            if receipt.ok:
                self.expected_supply -= burned(self.params, tx.msgs)
        for rejected in result.rejected:
            # Left out: a fee it cannot pay, or a nonce broken by such a one before it.
            assert rejected.error.code in ("insufficient_funds", "bad_nonce")
            if rejected.tx.nonce != self.nonce[rejected.tx.sender]:
                assert rejected.error.code == "bad_nonce"
        self.queued_nonce = dict(self.nonce)

    @rule(key=neurons, offset=st.sampled_from([-3, -2, -1, 1, 2, 5]))
    def wrong_nonce(self, key, offset):
        """A replayed (used) or skipped nonce is left out with ``bad_nonce``."""
        if self.batch:
            self.produce()
        nonce = self.nonce[key.public_key] + offset
        if nonce < 0:  # nothing to replay yet: skip ahead instead
            nonce = self.nonce[key.public_key] - offset
        raw = make_tx(key, nonce, Msg("send", {"to": VALIDATOR.address_raw, "amount": 1}))
        # The end of the block may release stake this neuron unbonded earlier;
        # that is all that may change on its account.
        release = UNBOND_PREFIX + (self.height + 1).to_bytes(8, "big") + key.address_raw
        with self.producer.reader() as r:
            before = get_account(r, key.address_raw)
            matured = r.get(release)
        result = self.seal([raw])
        assert not result.block.txs and not result.receipts
        assert [r.error.code for r in result.rejected] == ["bad_nonce"]
        if matured is not None:
            before.balance += decode(matured, "unbonding")
        with self.producer.reader() as r:
            assert get_account(r, key.address_raw) == before

    # --- invariants ---------------------------------------------------------------
    @invariant()
    def supply_is_conserved(self):
        assert supply(self.producer) == self.expected_supply
        assert supply(self.follower) == self.expected_supply

    @invariant()
    def nonces_match_the_model(self):
        with self.producer.reader() as r:
            for pub, nonce in self.nonce.items():
                assert get_account(r, BY_KEY[pub].address_raw).nonce == nonce


TestChainMachine = ChainMachine.TestCase
TestChainMachine.settings = settings(
    max_examples=6,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
