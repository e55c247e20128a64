"""Validator sets that change at epoch boundaries, from registrations and bonded stake."""

from __future__ import annotations

import pytest

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.block import sign_certificate
from focusflow.chain.errors import BlockError, GenesisError
from focusflow.chain.valsets import VALSET_PREFIX, decode_set, encode_set
from focusflow.consensus import ValidatorSet
from focusflow.consensus.validators import Validator
from focusflow.core.encoding import decode
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.staking import UNBOND_PREFIX
from tests.chain.evidence_helpers import BALANCE, double_vote, members

CHAIN_ID = "focusflow-evidence"  # double_vote signs for this chain
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
NEW = KeyPair.from_seed(b"newcomer".ljust(32, b"\0"))
UNIT = 1_000_000
EPOCH = 4
FEE = 1_000_000


def genesis(**params) -> Genesis:
    params = {"epoch_blocks": EPOCH, "power_unit": UNIT, "focus": {"mode": "diffusion"}, **params}
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": params,
            "accounts": [{"address": k.address, "balance": BALANCE, "stake": UNIT} for k in KEYS]
            + [{"address": NEW.address, "balance": BALANCE, "stake": 0}],
            "validators": [
                {"name": f"v{i}", "public_key": k.public_key.hex(), "power": 1}
                for i, k in enumerate(KEYS)
            ],
        }
    )


class Net:
    """A producer chain certified by whoever its current set holds, with nonces."""

    def __init__(self, chain):
        self.chain = chain
        self.nonces: dict[bytes, int] = {}

    def tx(self, key: KeyPair, msg_type: str, body: dict) -> bytes:
        nonce = self.nonces.get(key.public_key, 0)
        self.nonces[key.public_key] = nonce + 1
        return make_tx(key, CHAIN_ID, nonce, FEE, [Msg(msg_type, body)]).encoded

    def step(self, *txs: bytes, signers=None):
        pending = self.chain.propose(list(txs))
        keys = members(self.chain, [*KEYS, NEW]) if signers is None else signers
        cert = sign_certificate(keys, CHAIN_ID, pending.height, pending.hash)
        return self.chain.commit(pending, cert)

    def to_height(self, height: int):
        result = None
        while self.chain.height < height:
            result = self.step()
        return result


def powers(vset: ValidatorSet) -> dict[bytes, int]:
    return {v.public_key: v.power for v in vset.validators}


@pytest.fixture
def net(tmp_path):
    return Net(open_chain(tmp_path / "p", genesis(), KEYS[0]))


def test_a_registered_stake_joins_at_the_next_epoch_boundary(net, tmp_path):
    chain = net.chain
    genesis_set = chain.validators
    r = net.step(net.tx(NEW, "stake", {"amount": 3 * UNIT + 7}))
    r = net.step(net.tx(NEW, "validator.register", {"name": "newcomer"}))
    assert [x.code for x in r.receipts] == ["ok"]
    assert r.receipts[0].events[0]["type"] == "validator_register"
    before = net.to_height(EPOCH - 1)
    assert chain.validators_at(EPOCH) == genesis_set  # no change before the boundary
    assert before.block.header.validators_hash == genesis_set.hash()
    boundary = net.step()
    assert boundary.block.height == EPOCH
    changed = [e for e in boundary.events if e["type"] == "validator_set"]
    assert changed == [
        {
            "type": "validator_set",
            "height": EPOCH + 1,
            "validators": [[v.public_key, v.power] for v in chain.validators.validators],
        }
    ]
    assert powers(chain.validators) == {**{k.public_key: 1 for k in KEYS}, NEW.public_key: 3}
    # A newcomer starts with the lowest proposer priority (CometBFT's rule):
    # it does not propose the first height after joining.
    assert chain.validators.proposer(0).public_key != NEW.public_key
    # The old validators alone (4 of 7) cannot certify the next block any more.
    pending = chain.propose([])
    old_only = sign_certificate(KEYS, CHAIN_ID, pending.height, pending.hash)
    with pytest.raises(BlockError, match="invalid commit"):
        chain.commit(pending, old_only)
    chain.abandon(pending)
    after = net.step()
    assert after.block.header.validators_hash == chain.validators_at(EPOCH + 1).hash()
    assert after.block.header.validators_hash != genesis_set.hash()
    # The record in state is the set of height EPOCH + 1, proposer priorities included.
    with chain.reader() as r:
        records = dict(r.items(VALSET_PREFIX))
    assert [int.from_bytes(k[-8:], "big") for k in records] == [1, EPOCH + 1]
    assert decode_set(records[VALSET_PREFIX + (EPOCH + 1).to_bytes(8, "big")]) == chain.valsets.at(
        EPOCH + 1
    )


def test_followers_and_restarts_derive_the_same_sets(net, tmp_path):
    chain = net.chain
    net.step(net.tx(NEW, "stake", {"amount": 2 * UNIT}), net.tx(NEW, "validator.register", {}))
    net.to_height(EPOCH + 2)
    net.step(net.tx(KEYS[1], "validator.unregister", {}))
    net.to_height(2 * EPOCH + 3)
    assert powers(chain.validators) == {
        KEYS[0].public_key: 1,
        KEYS[2].public_key: 1,
        KEYS[3].public_key: 1,
        NEW.public_key: 2,
    }
    follower = open_chain(tmp_path / "f", genesis())
    for record in chain.records(1):
        follower.apply_block(record.encode())
    assert follower.store.root == chain.store.root
    assert follower.validators == chain.validators  # priorities included
    assert follower.valsets.changes == chain.valsets.changes == [1, EPOCH + 1, 2 * EPOCH + 1]
    path = chain.store.path
    expected = chain.validators
    chain.store.close()
    reopened = open_chain(path, genesis(), KEYS[0])
    assert reopened.validators == expected
    for h in range(1, reopened.height + 2):
        assert reopened.validators_at(h) == follower.validators_at(h)
    # Proposer priorities keep stepping the same way on both.
    reopened_net = Net(reopened)
    reopened_net.step()
    follower.apply_block(reopened.block_record(reopened.height).encode())
    assert follower.validators == reopened.validators


@pytest.mark.parametrize(
    ("key", "msg", "body", "code"),
    [
        (KEYS[1], "validator.register", {}, "validator_registered"),
        (NEW, "validator.register", {}, "insufficient_stake"),
        (NEW, "validator.unregister", {}, "not_validator"),
        (NEW, "validator.register", {"name": "x" * 33}, "malformed_message"),
        (NEW, "validator.register", {"name": "bad\nname"}, "malformed_message"),
        (NEW, "validator.register", {"name": 7}, "malformed_message"),
        (KEYS[1], "validator.unregister", {"why": "bored"}, "malformed_message"),
    ],
)
def test_bad_validator_messages_change_nothing_but_the_fee(net, key, msg, body, code):
    chain = net.chain
    with chain.reader() as r:
        before = dict(r.items(b"/token/validator"))
        account = get_account(r, key.address_raw)
    result = net.step(net.tx(key, msg, body))
    assert [x.code for x in result.receipts] == [code]
    with chain.reader() as r:
        assert dict(r.items(b"/token/validator")) == before
        after = get_account(r, key.address_raw)
    assert after.balance == account.balance - FEE and after.bonded == account.bonded


def test_unstaking_below_one_unit_leaves_the_set_at_once(net):
    r = net.step(net.tx(KEYS[2], "unstake", {"amount": 1}))
    assert r.block.height == 1 and 1 % EPOCH  # not an epoch boundary
    # The set of height 2 already goes without it: no epoch to wait for.
    assert KEYS[2].public_key not in powers(net.chain.validators_at(2))
    assert r.events[-1] == {
        "type": "validator_set",
        "height": 2,
        "validators": [[v.public_key, v.power] for v in net.chain.validators_at(2).validators],
    }
    net.to_height(EPOCH)
    assert KEYS[2].public_key not in powers(net.chain.validators)


def test_an_unstake_lowers_power_from_the_next_height_and_a_stake_waits(net):
    key = KEYS[3]
    net.step(net.tx(key, "stake", {"amount": 5 * UNIT}))  # 6 units: power 1 until the epoch
    assert powers(net.chain.validators)[key.public_key] == 1
    net.to_height(EPOCH)
    assert powers(net.chain.validators)[key.public_key] == 6
    r = net.step(net.tx(key, "unstake", {"amount": 3 * UNIT + 1}))  # 2.99 units left
    assert powers(net.chain.validators_at(r.block.height + 1))[key.public_key] == 2
    assert r.events[-1]["type"] == "validator_set"
    # Staking back raises nothing before the next boundary; unstaking by someone
    # outside the set, or by a member whose power its stake still backs, changes nothing.
    r = net.step(
        net.tx(key, "stake", {"amount": 3 * UNIT}),
        net.tx(NEW, "stake", {"amount": 2 * UNIT}),
        net.tx(NEW, "unstake", {"amount": UNIT}),
    )
    assert [x.code for x in r.receipts] == ["ok", "ok", "ok"]
    assert not [e for e in r.events if e["type"] == "validator_set"]
    assert powers(net.chain.validators)[key.public_key] == 2
    r = net.step(net.tx(key, "unstake", {"amount": 1}))  # 5.99 units back power 2
    assert not [e for e in r.events if e["type"] == "validator_set"]
    net.to_height(2 * EPOCH)
    assert powers(net.chain.validators)[key.public_key] == 5


def test_the_largest_stakes_fill_max_validators(tmp_path):
    net = Net(open_chain(tmp_path, genesis(max_validators=4), KEYS[0]))
    net.step(net.tx(NEW, "stake", {"amount": 5 * UNIT}), net.tx(NEW, "validator.register", {}))
    net.step(net.tx(KEYS[3], "stake", {"amount": UNIT}))
    net.to_height(EPOCH)
    # KEYS[0..2] tie at one unit: the smaller addresses stay.
    tied = sorted(KEYS[:3], key=lambda k: k.address_raw)
    assert powers(net.chain.validators) == {
        NEW.public_key: 5,
        KEYS[3].public_key: 2,
        tied[0].public_key: 1,
        tied[1].public_key: 1,
    }


def test_a_set_never_empties_itself(tmp_path):
    single = Genesis.from_json(
        {**genesis().to_json(), "validators": genesis().to_json()["validators"][:1]}
    )
    net = Net(open_chain(tmp_path, single, KEYS[0]))
    net.step(net.tx(KEYS[0], "validator.unregister", {}))
    r = net.to_height(EPOCH)
    assert powers(net.chain.validators) == {KEYS[0].public_key: 1}
    assert [e["type"] for e in r.events] == ["validator_set_kept"]
    assert "at least one validator" in r.events[0]["reason"]


def test_a_jailed_validator_returns_only_after_its_jail(tmp_path):
    net = Net(open_chain(tmp_path, genesis(jail_blocks=2 * EPOCH), KEYS[0]))
    net.step()
    assert net.chain.add_evidence(double_vote(KEYS[3], 1))
    r = net.step()  # height 2 punishes it: out from height 3
    assert [e["type"] for e in r.events] == ["slash", "jail", "validator_set"]
    assert r.events[1]["until"] == 2 + 2 * EPOCH
    assert KEYS[3].public_key not in powers(net.chain.validators)
    net.step(net.tx(KEYS[3], "stake", {"amount": UNIT}))  # 1.95 units: power 1 again
    net.to_height(2 * EPOCH)  # still jailed at the boundaries of heights 4 and 8
    assert KEYS[3].public_key not in powers(net.chain.validators)
    net.to_height(3 * EPOCH)  # 12 >= 10: back
    assert powers(net.chain.validators)[KEYS[3].public_key] == 1


def test_unbonding_after_the_offence_is_slashed_too(tmp_path):
    net = Net(open_chain(tmp_path, genesis(unbonding_blocks=20, evidence_max_age=10), KEYS[0]))
    net.step(net.tx(KEYS[3], "stake", {"amount": 9 * UNIT}))  # height 1: 10 units bonded
    net.step(net.tx(KEYS[3], "unstake", {"amount": 4 * UNIT}))  # height 2: before the offence
    net.step()
    net.step(net.tx(KEYS[3], "unstake", {"amount": 2 * UNIT}))  # height 4: after it
    offence = double_vote(KEYS[3], 3)
    assert net.chain.add_evidence(offence)
    r = net.step()
    slash = r.events[0]
    assert slash["type"] == "slash"
    assert slash["amount"] == 4 * UNIT * 500 // 10_000 + 2 * UNIT * 500 // 10_000
    assert slash["unbonding"] == 2 * UNIT * 500 // 10_000
    with net.chain.reader() as rd:
        entries = {
            int.from_bytes(k[len(UNBOND_PREFIX) : len(UNBOND_PREFIX) + 8], "big"): v
            for k, v in rd.items(UNBOND_PREFIX)
        }
    assert {h: decode(v, "u") for h, v in entries.items()} == {
        22: 4 * UNIT,  # began before the offence: untouched
        24: 2 * UNIT - 2 * UNIT * 500 // 10_000,
    }


@pytest.mark.parametrize("name", ["epoch_blocks", "power_unit", "max_validators"])
def test_epoch_parameters_must_be_positive(name):
    with pytest.raises(GenesisError, match=f"params.{name} must be at least 1"):
        genesis(**{name: 0})


def test_record_roundtrip():
    keys = [KeyPair.from_seed(bytes([i + 9]) * 32) for i in range(3)]
    vset = ValidatorSet.create(
        [Validator(k.public_key, p) for k, p in zip(keys, (5, 3, 1), strict=True)]
    )
    vset = vset.next_height().update({keys[1].public_key: 0}).next_height()
    assert decode_set(encode_set(vset)) == vset
