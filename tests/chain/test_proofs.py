"""Proofs of state and pins on a real chain (``modules.proofs``): each kind
challenged, proven with the real provers and recorded; a forged proof of each
kind refused with ``bad_proof_of_state``, its sender paying the fee and nothing
else changing; pins paying their reward for proofs of retrievability, and
refusing forged ones, early ones and closes before expiry."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from focusflow.chain import Msg
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.proofs import (
    K_MIN,
    challenge_offset,
    make_plot,
    prove_retrievability,
    prove_space,
    prove_time,
    prove_work,
)
from focusflow.state_schema.proofs import PAID_PREFIX, pin_request, result_of
from focusflow.testing.chains import ALICE, BOB, FEE, account, genesis, new_chain, tx

PARAMS = {
    "proof_space_k_min": K_MIN,
    "proof_time_min_iterations": 5_000,
    "proof_work_bits": 10,
    "proof_window": 5,
    "proof_fee": 777,
    "pin_period": 3,
}


def _high_bits(digest: bytes, bits: int) -> int:
    return int.from_bytes(digest, "big") >> (256 - bits)


class Net:
    def __init__(self, tmp_path) -> None:
        self.chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}, **PARAMS))
        self.nonces: dict[str, int] = {}

    def send(self, key, msg: Msg):
        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        return self.chain.produce_block([tx(key, nonce, msg)]).receipts[0]

    def challenge(self, key, kind: str) -> bytes:
        receipt = self.send(key, Msg("proof.challenge", {"kind": kind}))
        assert receipt.code == "ok", receipt.log
        return receipt.events[0]["challenge"]

    def state(self, key: bytes):
        with self.chain.reader() as r:
            return r.get(key), r.root


@pytest.fixture(scope="module")
def plot(tmp_path_factory):
    return make_plot(tmp_path_factory.mktemp("plots"), ALICE.public_key, K_MIN, seed=b"s" * 32)


def _space_claim(net: Net, plot, key=ALICE) -> dict:
    """A challenge the plot can answer (a new challenge each block until one can)."""
    for _ in range(50):
        challenge = net.challenge(key, "space")
        proofs = prove_space(plot, challenge)
        if proofs:
            return {"kind": "space", "k": K_MIN, "seed": b"s" * 32, "proof": proofs[0]}
    raise AssertionError("the plot answered none of 50 challenges")


def _refused(net: Net, key, msg: Msg, code: str) -> None:
    """The message fails with ``code``; the sender pays the fee; nothing else changes
    but its nonce and balance."""
    before = account(net.chain, key)
    receipt = net.send(key, msg)
    assert receipt.code == code, (receipt.code, receipt.log)
    after = account(net.chain, key)
    assert after.balance == before.balance - FEE and after.bonded == before.bonded


def test_each_kind_of_proof_is_challenged_proven_and_recorded(tmp_path, plot):
    net = Net(tmp_path)
    claim = _space_claim(net, plot)
    before = account(net.chain, ALICE).balance
    receipt = net.send(ALICE, Msg("proof.claim", claim))
    assert receipt.code == "ok", receipt.log
    assert account(net.chain, ALICE).balance == before - FEE - PARAMS["proof_fee"]
    with net.chain.reader() as r:
        height, quality = result_of(r, ALICE.address_raw, "space")
    assert len(quality) == 32 and height == net.chain.height

    challenge = net.challenge(ALICE, "time")
    out = prove_time(challenge, 6_000)
    time_claim = {"kind": "time", "iterations": 6_000, "output": out}
    assert net.send(ALICE, Msg("proof.claim", time_claim)).code == "ok"
    challenge = net.challenge(ALICE, "work")
    nonce = prove_work(challenge, PARAMS["proof_work_bits"])
    assert net.send(ALICE, Msg("proof.claim", {"kind": "work", "nonce": nonce})).code == "ok"
    net.challenge(ALICE, "stake")
    assert net.send(ALICE, Msg("proof.claim", {"kind": "stake"})).code == "ok"
    with net.chain.reader() as r:
        assert result_of(r, ALICE.address_raw, "time")[1] == 6_000
        assert result_of(r, ALICE.address_raw, "work")[1] == PARAMS["proof_work_bits"]
        assert result_of(r, ALICE.address_raw, "stake")[1] == account(net.chain, ALICE).bonded > 0
    # a challenge is answered once
    _refused(net, ALICE, Msg("proof.claim", {"kind": "stake"}), "no_challenge")


def test_forged_proofs_of_each_kind_are_refused_and_change_nothing(tmp_path, plot):
    net = Net(tmp_path)
    claim = _space_claim(net, plot)
    flipped = bytearray(claim["proof"])
    flipped[0] ^= 0x40
    key = b"/kv/proofs/of/" + ALICE.address_raw + b"space"
    for forged in (
        {**claim, "proof": bytes(flipped)},
        {**claim, "seed": b"t" * 32},  # another plot id
    ):
        _refused(net, ALICE, Msg("proof.claim", forged), "bad_proof_of_state")
        assert net.state(key)[0] is None
    # BOB cannot claim ALICE's plot: its id is bound to her key
    net.challenge(BOB, "space")
    _refused(net, BOB, Msg("proof.claim", claim), "bad_proof_of_state")
    # below the chain's minimum plot size: refused before it is checked
    _refused(net, ALICE, Msg("proof.claim", {**claim, "k": K_MIN - 1}), "malformed_message")

    challenge = net.challenge(ALICE, "time")
    out = prove_time(challenge, 6_000)
    for forged in (
        {"kind": "time", "iterations": 6_001, "output": out},
        {"kind": "time", "iterations": 6_000, "output": out[:100] + bytes(100)},
        {"kind": "time", "iterations": 6_000, "output": prove_time(bytes(32), 6_000)},
    ):
        _refused(net, ALICE, Msg("proof.claim", forged), "bad_proof_of_state")
    _refused(net, ALICE, Msg("proof.claim", {"kind": "time", "iterations": 10, "output": out}),
             "malformed_message")  # fmt: skip

    challenge = net.challenge(ALICE, "work")
    nonce = prove_work(challenge, PARAMS["proof_work_bits"])
    bits = PARAMS["proof_work_bits"]
    weak = next(
        n.to_bytes(8, "big")
        for n in range(10_000)
        if _high_bits(hashlib.sha256(challenge + n.to_bytes(8, "big")).digest(), bits) != 0
    )
    _refused(net, ALICE, Msg("proof.claim", {"kind": "work", "nonce": weak}), "bad_proof_of_state")
    assert net.send(ALICE, Msg("proof.claim", {"kind": "work", "nonce": nonce})).code == "ok"
    # a claim without its challenge, and one past the window
    _refused(net, BOB, Msg("proof.claim", {"kind": "work", "nonce": nonce}), "no_challenge")
    net.challenge(BOB, "stake")
    for _ in range(PARAMS["proof_window"]):
        net.chain.produce_block([])
    _refused(net, BOB, Msg("proof.claim", {"kind": "stake"}), "no_challenge")


def test_a_pin_pays_pinners_that_prove_they_hold_the_blob(tmp_path):
    net = Net(tmp_path)
    data = np.random.default_rng(5).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    store = ChunkStore(tmp_path / "pinner")
    root = store.put(io.BytesIO(data)).cid
    body = {"cid": root, "size": len(data), "reward": 1_000, "bounty": 2_500, "blocks": 40}
    before = account(net.chain, ALICE).balance
    receipt = net.send(ALICE, Msg("pin.request", body))
    assert receipt.code == "ok", receipt.log
    request = receipt.events[0]["request"]
    assert account(net.chain, ALICE).balance == before - FEE - 2_500

    def prove(pinner, path_of=None):
        r = net.send(pinner, Msg("pin.challenge", {"request": request}))
        assert r.code == "ok", r.log
        offset = challenge_offset(r.events[0]["challenge"], len(data))
        path = (path_of or (lambda o: prove_retrievability(store, root, o)))(offset)
        return Msg("pin.prove", {"request": request, "path": path})

    bob = account(net.chain, BOB).balance
    msg = prove(BOB)
    assert net.send(BOB, msg).code == "ok"
    assert account(net.chain, BOB).balance == bob - 2 * FEE + 1_000 - PARAMS["proof_fee"]
    with net.chain.reader() as r:
        assert pin_request(r, request)[4] == 1_500
        assert r.get(PAID_PREFIX + request + BOB.address_raw) is not None
    # too soon for BOB's next paid proof
    _refused(net, BOB, prove(BOB), "pin_refused")
    # a forged path: the chunk of another offset, or a flipped byte
    for forge in (
        lambda o: prove_retrievability(store, root, (o + (1 << 20)) % len(data)),
        lambda o: [*prove_retrievability(store, root, o)[:-1], b"x" * 1000],
    ):
        _refused(net, ALICE, prove(ALICE, forge), "bad_proof_of_state")
    assert net.send(ALICE, prove(ALICE)).code == "ok"  # the requester may pin too
    with net.chain.reader() as r:
        assert pin_request(r, request)[4] == 500  # less than a reward left: spent
    _refused(net, BOB, Msg("pin.challenge", {"request": request}), "pin_refused")
    # closed by its requester after expiry: the rest of the escrow comes back
    _refused(net, BOB, Msg("pin.close", {"request": request}), "pin_refused")
    _refused(net, ALICE, Msg("pin.close", {"request": request}), "pin_refused")  # not expired
    with net.chain.reader() as r:
        expires = pin_request(r, request)[5]
    while net.chain.height <= expires:
        net.chain.produce_block([])
    alice = account(net.chain, ALICE).balance
    assert net.send(ALICE, Msg("pin.close", {"request": request})).code == "ok"
    assert account(net.chain, ALICE).balance == alice - FEE + 500
    _refused(net, ALICE, Msg("pin.close", {"request": request}), "unknown_pin")
