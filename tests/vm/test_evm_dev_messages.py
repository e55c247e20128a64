"""The dev messages (``evm.set_balance``, ``evm.restore``, ``evm.call_as``) in real
blocks: they run only where the genesis grants the dev powers and one validator
decides; a chain of two validators refuses them whatever its genesis says."""

from __future__ import annotations

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account
from focusflow.testing.chains import ALICE, BALANCE, BOB, CHAIN_ID, STAKE, VALIDATOR, tx

TARGET = bytes.fromhex("11" * 20)


def _chain(tmp_path, powers: int, validators: int):
    keys = [VALIDATOR, BOB][:validators]
    genesis = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": {"focus": {"mode": "tri"}, "evm_dev_powers": powers},
            "accounts": [{"address": ALICE.address, "balance": BALANCE, "stake": STAKE}],
            "validators": [
                {"name": f"v{i}", "public_key": k.public_key.hex(), "power": 1}
                for i, k in enumerate(keys)
            ],
        }
    )
    return open_chain(tmp_path / "chain", genesis, VALIDATOR)


def _messages() -> list[Msg]:
    return [
        Msg("evm.set_balance", {"address": TARGET, "balance": (10**22).to_bytes(32, "big")}),
        Msg("evm.restore", {"writes": [[b"/token/acct/" + TARGET, None]]}),
        Msg(
            "evm.call_as",
            {
                "from": TARGET,
                "to": b"",
                "value": bytes(32),
                "data": bytes.fromhex("6005600155"),
                "gas": 100_000,
            },
        ),
    ]


@pytest.mark.parametrize(("powers", "validators"), [(0, 1), (1, 2)])
def test_refused_without_the_powers_or_with_more_than_one_validator(tmp_path, powers, validators):
    chain = _chain(tmp_path, powers, validators)
    try:
        txs = [tx(ALICE, n, msg) for n, msg in enumerate(_messages())]
        # Executed as the block proposal (a set of two commits only with both).
        pending = chain.propose(txs, time_ms=1_700_000_001_000)
        assert [r.code for r in pending.receipts] == ["dev_only"] * 3
        assert not any(key.endswith(TARGET) for key in pending.writes)
    finally:
        chain.close()


def test_run_on_a_devnet_that_grants_them(tmp_path):
    chain = _chain(tmp_path, 1, 1)
    try:
        set_balance, restore, call_as = _messages()
        result = chain.produce_block([tx(ALICE, 0, set_balance)], time_ms=1_700_000_001_000)
        assert [r.code for r in result.receipts] == ["ok"]
        with chain.reader() as r:
            assert get_account(r, TARGET).balance == 10**22
        result = chain.produce_block([tx(ALICE, 1, call_as)], time_ms=1_700_000_002_000)
        assert [r.code for r in result.receipts] == ["ok"]
        with chain.reader() as r:
            after = get_account(r, TARGET)
        assert after.nonce == 1 and 0 < 10**22 - after.balance < 100_000  # gas at the base fee
        result = chain.produce_block([tx(ALICE, 2, restore)], time_ms=1_700_000_003_000)
        assert [r.code for r in result.receipts] == ["ok"]
        with chain.reader() as r:
            assert get_account(r, TARGET).balance == 0
        bad = Msg("evm.restore", {"writes": [[b"/graph/x", b"1"]]})
        result = chain.produce_block([tx(ALICE, 3, bad)], time_ms=1_700_000_004_000)
        assert [r.code for r in result.receipts] == ["malformed_message"]
    finally:
        chain.close()


@pytest.mark.parametrize(
    "write",
    [
        [b"/token/acct/" + ALICE.address_raw, b"\x01"],  # an int, not a record
        [b"/token/acct/" + ALICE.address_raw, b"\xff\x00"],  # not CBOR at all
        [b"/token/acct/" + ALICE.address_raw, bytes.fromhex("83010203") + b"\x00"],  # trailing
        [b"/token/acct/" + ALICE.address_raw + b"x", bytes.fromhex("83000000")],  # key too long
        [b"/vm/evm/store/" + TARGET + bytes(32), b"\x00\x01"],  # not a minimal word
        [b"/vm/evm/code/" + TARGET, bytes(24_577)],  # past EIP-170
    ],
)
def test_a_restore_of_what_the_evm_could_not_have_written_fails_its_message(tmp_path, write):
    """evm.restore writes back only records the EVM itself writes: a garbage
    account record would be read by every later block (the next transaction of
    that sender failed its block, not its receipt)."""
    chain = _chain(tmp_path, powers=1, validators=1)
    try:
        result = chain.produce_block([tx(ALICE, 0, Msg("evm.restore", {"writes": [write]}))])
        assert [r.code for r in result.receipts] == ["malformed_message"]
        after = chain.produce_block([tx(ALICE, 1, Msg("evm.set_balance", {
            "address": TARGET, "balance": (5).to_bytes(32, "big")}))])  # fmt: skip
        assert [r.code for r in after.receipts] == ["ok"]
    finally:
        chain.close()


def test_a_restore_keeps_the_bonded_stake(tmp_path):
    """An account's balance and nonce come back; its bonded stake is the staking
    module's (with records of its own the snapshot does not hold) and stays."""
    chain = _chain(tmp_path, powers=1, validators=1)
    try:
        record = [[b"/token/acct/" + ALICE.address_raw, bytes.fromhex("83050000")]]
        result = chain.produce_block([tx(ALICE, 0, Msg("evm.restore", {"writes": record}))])
        assert [r.code for r in result.receipts] == ["ok"]
        with chain.reader() as r:
            account = get_account(r, ALICE.address_raw)
        assert (account.balance, account.nonce, account.bonded) == (5, 0, STAKE)
    finally:
        chain.close()
