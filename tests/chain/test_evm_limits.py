"""The EVM's size limits and static refusals, through the mempool and real blocks.

A create transaction's initcode is at most 49,152 bytes and its words cost
intrinsic gas (EIP-3860); deployed code is at most 24,576 bytes (EIP-170).
What can be known from the transaction alone is refused before it reaches a
block, with the same code the block would give it, and py-evm never sees an
input it raises on.
"""

from __future__ import annotations

import itertools
import time

import pytest
from eth_account import Account

from focusflow.chain import Genesis
from focusflow.chain.errors import TxError
from focusflow.chain.eth_tx import (
    INITCODE_WORD_GAS,
    MAX_CODE_SIZE,
    MAX_INITCODE_SIZE,
    decode_eth_tx,
    evm_chain_id,
)
from focusflow.chain.mempool import Mempool
from focusflow.chain.state import PendingState
from focusflow.core.keys import encode_address
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account
from focusflow.testing.chains import CHAIN_ID, VALIDATOR
from focusflow.vm import evm
from focusflow.vm.evm_keys import code_key

T0 = 1_700_000_000_000
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
SENDER = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
FUNDS = 10**18


def _genesis() -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}},
            "accounts": [{"address": encode_address(SENDER), "balance": FUNDS, "stake": 0}],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def eth(nonce: int = 0, to: bytes | None = None, data: bytes = b"", **kw) -> bytes:
    fields = {
        "chainId": evm_chain_id(CHAIN_ID),
        "nonce": nonce,
        "maxFeePerGas": 10,
        "maxPriorityFeePerGas": 2,
        "gas": 2_000_000,
        "to": to,
        "value": 0,
        "data": data,
        "type": 2,
        **kw,
    }
    return bytes(Account.sign_transaction(fields, KEY).raw_transaction)


def returning(size: int) -> bytes:
    """Initcode that deploys ``size`` zero bytes (``RETURN(0, size)``)."""
    return bytes([0x61]) + size.to_bytes(2, "big") + bytes.fromhex("60 00 f3".replace(" ", ""))


def _admit(chain, raw: bytes):
    """Admit ``raw`` into a fresh mempool of ``chain`` (what the node does first)."""
    pool = Mempool(CHAIN_ID, chain.params)
    with chain.reader() as r:
        return pool.add(raw, lambda address: get_account(r, address))


def _refused_everywhere(tmp_path, raw: bytes, code: str) -> str:
    """The refusal's message: a block refuses ``raw`` with ``code`` (and is still
    made, empty, the state unchanged), and so does the mempool, in the same words."""
    chain = open_chain(tmp_path / "c", _genesis(), VALIDATOR)
    before = chain.head.state_root
    result = chain.produce_block([raw], time_ms=T0 + 1000)
    assert [r.error.code for r in result.rejected] == [code] and result.receipts == []
    assert chain.head.height == 1 and chain.head.state_root == before
    with chain.reader() as r:
        assert get_account(r, SENDER).balance == FUNDS
    with pytest.raises(TxError) as admission:
        _admit(chain, raw)
    assert admission.value.code == code
    assert result.rejected[0].error.message == admission.value.message
    return admission.value.message


def test_initcode_over_49152_bytes_is_refused_before_any_block(tmp_path):
    raw = eth(data=returning(1).ljust(MAX_INITCODE_SIZE + 1, b"\0"), gas=3_000_000)
    message = _refused_everywhere(tmp_path, raw, "evm_invalid")
    assert "initcode of 49153 bytes" in message and "49152" in message and "EIP-3860" in message


def test_initcode_of_49152_bytes_deploys_and_pays_its_words(tmp_path):
    chain = open_chain(tmp_path / "c", _genesis(), VALIDATOR)
    init = returning(1).ljust(MAX_INITCODE_SIZE, b"\0")
    result = chain.produce_block([eth(data=init, gas=3_000_000)], time_ms=T0 + 1000)
    (receipt,) = result.receipts
    assert receipt.code == "ok", receipt.log
    tx = decode_eth_tx(eth(data=init))
    words = MAX_INITCODE_SIZE // 32
    floor = tx.eth.intrinsic_gas + INITCODE_WORD_GAS * words
    assert receipt.events[0]["gas_used"] > floor


def test_initcode_words_are_intrinsic_gas(tmp_path):
    """A create whose gas covers py-evm's intrinsic cost but not its initcode's
    words (2 gas each) cannot run at all: refused, not a paid failure."""
    init = returning(1).ljust(32 * 1000, b"\0")
    bare = decode_eth_tx(eth(data=init)).eth.intrinsic_gas
    raw = eth(data=init, gas=bare + INITCODE_WORD_GAS * 1000 - 1)
    message = _refused_everywhere(tmp_path, raw, "evm_invalid")
    assert f"intrinsic gas {bare + 2000}" in message and "2 per initcode word" in message


@pytest.mark.parametrize(
    "fields, code, words",
    [
        ({"maxFeePerGas": 5, "maxPriorityFeePerGas": 6}, "evm_invalid", "exceeds the max fee"),
        ({"gas": 30_000_001}, "over_limit", "block gas limit 30000000"),
        ({"gas": 20_000}, "evm_invalid", "intrinsic gas 21000"),
    ],
)
def test_what_a_block_would_refuse_the_mempool_refuses(tmp_path, fields, code, words):
    raw = eth(to=b"\x11" * 20, **fields)
    assert words in _refused_everywhere(tmp_path, raw, code)


def test_deployed_code_is_at_most_24576_bytes(tmp_path):
    chain = open_chain(tmp_path / "c", _genesis(), VALIDATOR)
    gas = 6_000_000  # 200 a deployed byte
    txs = [eth(0, data=returning(MAX_CODE_SIZE), gas=gas),
           eth(1, data=returning(MAX_CODE_SIZE + 1), gas=gas)]  # fmt: skip
    fits, over = chain.produce_block(txs, time_ms=T0 + 1000).receipts
    assert fits.code == "ok" and over.code == "evm_reverted"
    assert "EIP170" in over.log and over.events[0]["contract"] is None
    with chain.reader() as r:
        assert r.get(code_key(fits.events[0]["contract"])) == bytes(MAX_CODE_SIZE)
        assert get_account(r, SENDER).nonce == 2  # the failed one is paid for


def _plane() -> tuple[PendingState, evm.EvmBlock]:
    from focusflow.core.encoding import encode
    from focusflow.vm.evm_keys import ACCOUNT_PREFIX

    state = PendingState({ACCOUNT_PREFIX + SENDER: encode([FUNDS, 0, 0])}.get)
    block = evm.EvmBlock(evm_chain_id(CHAIN_ID), 1, T0 // 1000, b"\1" * 20, 30_000_000, 1)
    return state, block


def test_the_plane_refuses_oversized_initcode_in_every_entry_point():
    """``apply_transaction``, ``call`` and ``estimate_gas`` (eth_call,
    eth_estimateGas) answer EvmValidationError, py-evm never raising its own."""
    state, block = _plane()
    big = returning(1).ljust(MAX_INITCODE_SIZE + 1, b"\0")
    tx = decode_eth_tx(eth(data=big, gas=3_000_000)).eth
    runs = [
        lambda: evm.apply_transaction(state, block, tx),
        lambda: evm.call(state, block, sender=SENDER, to=None, data=big, gas=3_000_000),
        lambda: evm.estimate_gas(state, block, sender=SENDER, to=None, data=big),
    ]
    for run in runs:
        with pytest.raises(evm.EvmValidationError, match="initcode of 49153 bytes"):
            run()
    assert state.get(code_key(b"\0" * 20)) is None
    with pytest.raises(evm.EvmValidationError, match="intrinsic gas"):
        evm.call(state, block, sender=SENDER, to=None, data=returning(1), gas=53_000)


def _pairing_input(pairs: int) -> bytes:
    """ECPAIRING input of ``pairs`` times (G1, G2), (-G1, G2): its product is 1."""
    from py_ecc import bn128

    (x_r, x_i), (y_r, y_i) = (c.coeffs for c in bn128.G2)
    g2 = b"".join(int(v).to_bytes(32, "big") for v in (x_i, x_r, y_i, y_r))
    g1 = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    minus_g1 = (1).to_bytes(32, "big") + (bn128.field_modulus - 2).to_bytes(32, "big")
    return (g1 + g2 + minus_g1 + g2) * pairs


def test_an_rpc_run_stops_inside_a_long_pairing_and_otherwise_answers_as_a_block():
    """A call at the cap may pair some 28 points in one precompile call, seconds
    of Python between two gas charges: an RPC run checks its stop between
    points, with the same gas and answer as a block's run."""
    state, block = _plane()
    two = _pairing_input(1)
    run = {"sender": SENDER, "to": evm.ECPAIRING_ADDRESS, "gas": 3_000_000}
    plain = evm.call(state, block, data=two, **run)
    allowed = evm.call(state, block, data=two, allowance=evm.Allowance(10**7, 1), **run)
    assert plain.output == allowed.output == bytes(31) + b"\x01"
    assert plain.gas_used == allowed.gas_used
    asked = itertools.count()
    stop = evm.Allowance(25 * 10**6, 1, stop=lambda: next(asked) >= 3)
    t0 = time.monotonic()
    with pytest.raises(evm.EvmStoppedError):
        evm.call(
            state, block, data=_pairing_input(12), allowance=stop, **{**run, "gas": 25 * 10**6}
        )
    assert time.monotonic() - t0 < 5


def test_an_rpc_run_stops_in_a_loop_and_spends_its_allowance():
    state, block = _plane()
    loop = bytes.fromhex("5b600056")
    deadline = time.monotonic() + 0.5
    t0 = time.monotonic()
    with pytest.raises(evm.EvmStoppedError):
        evm.call(
            state, block, sender=SENDER, to=None, data=loop, gas=10**7,
            allowance=evm.Allowance(10**7, 1, stop=lambda: time.monotonic() > deadline),
        )  # fmt: skip
    assert time.monotonic() - t0 < 3
    allowance = evm.Allowance(gas=100_000, runs=2)
    with pytest.raises(evm.EvmStoppedError, match="gas budget"):
        evm.call(state, block, sender=SENDER, to=None, data=loop, gas=10**7, allowance=allowance)
    assert allowance.gas <= 0 and allowance.runs == 1


def test_the_slow_curve_precompiles_cost_this_chains_gas_and_answer_as_ethereums():
    """ECMUL and ECPAIRING run in pure Python, 10x and 26x slower per gas than
    plain code, so this chain scales their gas (``vm.evm``): a block filled
    with them runs about as long as one of plain code. Their answers stay
    Ethereum's; a gas of either is still paid whatever the input."""
    state, block = _plane()
    g1 = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    run = {"sender": SENDER, "gas": 10**7}
    doubling = g1 + (2).to_bytes(32, "big")
    mul = evm.call(state, block, to=evm.ECMUL_ADDRESS, data=doubling, **run)
    add = evm.call(state, block, to=bytes(19) + b"\x06", data=g1 + g1, **run)
    assert mul.status == add.status == 1 and mul.output == add.output  # 2·G = G + G
    intrinsic = 21_000 + sum(16 if b else 4 for b in doubling)
    assert mul.gas_used == intrinsic + evm.ECMUL_GAS == intrinsic + 60_000
    pair = evm.call(state, block, to=evm.ECPAIRING_ADDRESS, data=_pairing_input(1), **run)
    assert pair.output == bytes(31) + b"\x01"
    assert evm.ECPAIRING_BASE_GAS + 2 * evm.ECPAIRING_POINT_GAS == 25 * (45_000 + 2 * 34_000)
    assert pair.gas_used > evm.ECPAIRING_BASE_GAS + 2 * evm.ECPAIRING_POINT_GAS
    short = evm.call(state, block, to=evm.ECPAIRING_ADDRESS, data=_pairing_input(1),
                     sender=SENDER, gas=21_000 + 200_000)  # fmt: skip
    assert short.status == 0  # Ethereum's 181,000 gas no longer pays for two points


def test_blake2f_runs_natively_and_answers_as_the_pure_python_reference():
    """BLAKE2F (EIP-152) runs through blake2b-py, which py-evm uses when it is
    installed (the pure-Python compression ran 10-37x slower per gas than plain
    code); every answer equals py-evm's own Python compression, and EIP-152's
    fifth test vector."""
    import random

    import blake2b
    from eth._utils.blake2.compression import blake2b_compress as reference
    from eth.precompiles import blake2

    assert blake2.blake2b_compress is blake2b.compress
    rng = random.Random(152)
    for _ in range(200):
        rounds = rng.choice([0, 1, 12, rng.randrange(64)])
        h = tuple(rng.getrandbits(64) for _ in range(8))
        m = tuple(rng.getrandbits(64) for _ in range(16))
        t = (rng.getrandbits(64), rng.getrandbits(64))
        f = rng.random() < 0.5
        assert blake2b.compress(rounds, h, m, t, f) == reference(rounds, h, m, t, f)
    # EIP-152, test vector 5 (12 rounds, "abc", final block).
    vector = bytes.fromhex(
        "0000000c"
        "48c9bdf267e6096a3ba7ca8485ae67bb2bf894fe72f36e3cf1361d5f3af54fa5"
        "d182e6ad7f520e511f6c3e2b8c68059b6bbd41fbabd9831f79217e1319cde05b"
        + "616263".ljust(256, "0")
        + "0300000000000000"
        + "0000000000000000"
        + "01"
    )
    assert len(vector) == 213
    state, block = _plane()
    out = evm.call(state, block, sender=SENDER, to=bytes(19) + b"\x09", data=vector, gas=10**6)
    assert out.output.hex() == (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
