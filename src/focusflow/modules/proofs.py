"""Proofs of state on the chain, and pins paid for by proofs of retrievability.

Every proof answers a challenge the chain draws from the hash of the block a
``*.challenge`` message lands in (``BlockContext.parent_hash``: the hash of the
block it builds on, unknown to anyone who signed before it), so nothing can be
computed ahead; a challenge is answered in a later block, within
``proof_window`` blocks, once. Every proof is checked by every validator with
``services.storage.proofs`` (Chia's verifiers for space and time); one that does
not verify fails its message (``bad_proof_of_state``): its sender pays the fee
and changes nothing else. Each claim and pin proof burns ``proof_fee`` for the
verification it costs.

Messages
    ``proof.challenge`` ``{"kind": "space" | "time" | "work" | "stake"}``
        Opens the sender's challenge of that kind (one at a time: a new one
        replaces it): ``SHA-256("focusflow/proof/" || kind || parent hash ||
        sender)``, kept under ``/kv/proofs/ch/<sender><kind>`` with its height.
    ``proof.claim`` ``{"kind": ..., ...}``
        Answers it. ``space``: ``{"k", "seed", "proof"}``, a proof from a plot
        whose id is ``SHA-256("focusflow/plot/" || sender key || seed)`` (so no
        one claims another's plot) with ``k >= proof_space_k_min``; ``time``:
        ``{"iterations", "output"}``, at least ``proof_time_min_iterations``
        squarings; ``work``: ``{"nonce"}`` meeting ``proof_work_bits``;
        ``stake``: ``{}``, the sender's bonded stake as the state holds it (the
        state is the SMT every header commits; off the chain, ``focusflow light
        query account`` proves the same against a verified header). The
        result is kept under ``/kv/proofs/of/<sender><kind>``: ``[height,
        value]``, the value the quality (space), iterations (time), bits (work)
        or bonded stake.

    ``pin.request`` ``{"cid", "size", "reward", "bounty", "blocks"}``
        Asks the network to keep a blob (its root CID and size, ``storage.dag``)
        for ``blocks`` blocks; ``bounty`` is taken from the sender into escrow,
        and each proof pays ``reward`` of it. Kept under ``/kv/pins/req/<id>``
        (id: the first 16 bytes of SHA-256 of the transaction hash and message
        index).
    ``pin.challenge`` ``{"request": id}``
        A pinner opens its challenge for the request (``/kv/pins/ch/<id><sender>``).
    ``pin.prove`` ``{"request": id, "path": [block, ...]}``
        The chunk holding the byte the challenge picks, with the DAG nodes from
        the root down to it (``proofs.verify_retrievability``); pays ``reward``
        while the escrow lasts, at most once per ``pin_period`` blocks per pinner.
    ``pin.close`` ``{"request": id}``
        From the requester once the request expired: what is left of the
        escrow comes back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from focusflow.chain.errors import MalformedMessageError, TxError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.module_params import ModuleParams, param_section
from focusflow.chain.state import PendingState
from focusflow.core.cid import check_cid_bytes
from focusflow.core.encoding import decode, encode
from focusflow.modules.accounts import credit, debit, field, only_fields
from focusflow.services.storage import dag
from focusflow.services.storage.proofs import (
    K_MAX,
    MAX_ITERATIONS,
    challenge_offset,
    plot_id,
    verify_retrievability,
    verify_space,
    verify_time,
    verify_work,
)
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.proofs import (
    CHALLENGE_PREFIX,
    PAID_PREFIX,
    PIN_CHALLENGE_PREFIX,
    REQUEST_PREFIX,
    RESULT_PREFIX,
    pin_request,
)

KINDS = ("space", "time", "work", "stake")
#: Longest a pin request may run, and the most blocks a pin proof may hold.
MAX_PIN_BLOCKS = 10_000_000
MAX_PATH = dag.MAX_DEPTH + 1
REQUEST_ID_BYTES = 16


_NAMES = frozenset(
    {
        "proof_space_k_min",
        "proof_time_min_iterations",
        "proof_work_bits",
        "proof_window",
        "proof_fee",
        "pin_period",
    }
)


@param_section
@dataclass(frozen=True)
class ProofParams(ModuleParams):
    """The proofs' and pins' parameters: the genesis's ``proof_*`` and
    ``pin_period``, added after chains were started (each left out of the
    genesis hash at its default)."""

    SECTION = "proofs"
    OMITTED_AT_DEFAULT = _NAMES
    POSITIVE = frozenset({"proof_window", "pin_period"})

    #: The smallest plot a proof of space may come from (Chia's mainnet size),
    #: the fewest squarings a proof of time may claim, the leading zero bits of
    #: a proof of work, the blocks a challenge stays open, and the fee burned
    #: by each claim and pin proof (it pays for the verification every
    #: validator runs).
    proof_space_k_min: int = 32
    proof_time_min_iterations: int = 100_000
    proof_work_bits: int = 20
    proof_window: int = 20
    proof_fee: int = 1_000
    #: Blocks between two paid proofs of one pinner for one pin request.
    pin_period: int = 10


class ChallengeError(TxError):
    """No open challenge to answer, one answered in its own block, or one past
    ``proof_window``."""

    code = "no_challenge"


class UnknownPinError(TxError):
    code = "unknown_pin"


class PinClosedError(TxError):
    """A pin request expired or spent (a proof), or not expired yet (a close),
    or a pinner's proof within ``pin_period`` of its last paid one."""

    code = "pin_refused"


def _challenge(parent_hash: bytes, label: bytes, who: bytes) -> bytes:
    return hashlib.sha256(b"focusflow/proof/" + label + parent_hash + who).digest()


def _open(ctx: TxContext, key: bytes) -> bytes:
    """The challenge under ``key``, answerable now (and then closed)."""
    raw = ctx.state.get(key)
    if raw is None:
        raise ChallengeError("no open challenge: send the challenge message first")
    height, challenge = decode(raw, "challenge")
    if height >= ctx.height:
        raise ChallengeError("a challenge is answered in a later block than its own")
    if ctx.height - height > ProofParams.of(ctx.params).proof_window:
        raise ChallengeError(f"the challenge of height {height} is past its window")
    ctx.state.delete(key)
    return bytes(challenge)


class Proofs:
    name = "proofs"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "proof.challenge": self.challenge,
            "proof.claim": self.claim,
            "pin.request": self.request,
            "pin.challenge": self.pin_challenge,
            "pin.prove": self.prove,
            "pin.close": self.close,
        }

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        return None

    def end_block(self, ctx: BlockContext) -> None:
        return None

    # --- proofs of state ---------------------------------------------------

    def challenge(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "kind")
        kind = field(body, "kind", str)
        if kind not in KINDS:
            raise MalformedMessageError(f"kind is one of {', '.join(KINDS)}")
        challenge = _challenge(ctx.block.parent_hash, kind.encode(), ctx.sender)
        key = CHALLENGE_PREFIX + ctx.sender + kind.encode()
        ctx.state.put(key, encode([ctx.height, challenge]))
        ctx.emit("proof.challenge", proof=kind, challenge=challenge)

    def claim(self, ctx: TxContext, body: MessageBody) -> None:
        kind = field(body, "kind", str)
        if kind not in KINDS:
            raise MalformedMessageError(f"kind is one of {', '.join(KINDS)}")
        params = ProofParams.of(ctx.params)
        value: Any
        if kind == "space":
            only_fields(body, "kind", "k", "seed", "proof")
            k = field(body, "k", int)
            seed = field(body, "seed", bytes, size=32)
            proof = field(body, "proof", bytes)
            if not params.proof_space_k_min <= k <= K_MAX:
                raise MalformedMessageError(f"k is {params.proof_space_k_min}..{K_MAX}")
            challenge = _open(ctx, CHALLENGE_PREFIX + ctx.sender + b"space")
            value = verify_space(plot_id(ctx.sender_key, seed), k, challenge, proof)
        elif kind == "time":
            only_fields(body, "kind", "iterations", "output")
            iterations = field(body, "iterations", int)
            output = field(body, "output", bytes)
            if not params.proof_time_min_iterations <= iterations <= MAX_ITERATIONS:
                raise MalformedMessageError(
                    f"iterations are {params.proof_time_min_iterations}..{MAX_ITERATIONS}"
                )
            challenge = _open(ctx, CHALLENGE_PREFIX + ctx.sender + b"time")
            verify_time(challenge, iterations, output)
            value = iterations
        elif kind == "work":
            only_fields(body, "kind", "nonce")
            nonce = field(body, "nonce", bytes, size=8)
            challenge = _open(ctx, CHALLENGE_PREFIX + ctx.sender + b"work")
            verify_work(challenge, nonce, params.proof_work_bits)
            value = params.proof_work_bits
        else:
            only_fields(body, "kind")
            _open(ctx, CHALLENGE_PREFIX + ctx.sender + b"stake")
            value = get_account(ctx.state, ctx.sender).bonded
        debit(ctx.state, ctx.sender, params.proof_fee, f"a {kind} claim")
        ctx.state.put(RESULT_PREFIX + ctx.sender + kind.encode(), encode([ctx.height, value]))
        ctx.emit("proof.claim", proof=kind, value=value)

    # --- pins ----------------------------------------------------------------

    def request(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "cid", "size", "reward", "bounty", "blocks")
        cid = field(body, "cid", bytes)
        size, reward = field(body, "size", int), field(body, "reward", int)
        bounty, blocks = field(body, "bounty", int), field(body, "blocks", int)
        check_cid_bytes(cid)
        try:
            dag.codec_of(cid)
        except dag.BlobError:
            raise MalformedMessageError("cid is a blob's root (CIDv1 raw or dag-cbor)") from None
        if not 0 < size <= dag.MAX_BLOB_BYTES:
            raise MalformedMessageError(f"size is 1..{dag.MAX_BLOB_BYTES}")
        if not 0 < reward <= bounty or not 0 < blocks <= MAX_PIN_BLOCKS:
            raise MalformedMessageError(f"0 < reward <= bounty, and blocks 1..{MAX_PIN_BLOCKS}")
        debit(ctx.state, ctx.sender, bounty, "a pin bounty")
        request = hashlib.sha256(ctx.tx.hash + ctx.msg_index.to_bytes(4, "big")).digest()
        request = request[:REQUEST_ID_BYTES]
        doc = [cid, size, ctx.sender, reward, bounty, ctx.height + blocks]
        ctx.state.put(REQUEST_PREFIX + request, encode(doc))
        ctx.emit("pin.request", request=request, cid=cid, size=size, bounty=bounty)

    def _request(self, ctx: TxContext, body: MessageBody, *names: str) -> tuple[bytes, list[Any]]:
        only_fields(body, "request", *names)
        request = field(body, "request", bytes, size=REQUEST_ID_BYTES)
        doc = pin_request(ctx.state, request)
        if doc is None:
            raise UnknownPinError(f"no pin request {request.hex()}")
        return request, doc

    def pin_challenge(self, ctx: TxContext, body: MessageBody) -> None:
        request, doc = self._request(ctx, body)
        if ctx.height > doc[5] or doc[4] < doc[3]:
            raise PinClosedError(f"pin request {request.hex()} expired or is spent")
        challenge = _challenge(ctx.block.parent_hash, b"pin" + request, ctx.sender)
        key = PIN_CHALLENGE_PREFIX + request + ctx.sender
        ctx.state.put(key, encode([ctx.height, challenge]))
        ctx.emit("pin.challenge", request=request, challenge=challenge)

    def prove(self, ctx: TxContext, body: MessageBody) -> None:
        request, doc = self._request(ctx, body, "path")
        path = field(body, "path", list)
        if not 0 < len(path) <= MAX_PATH or not all(isinstance(b, bytes) for b in path):
            raise MalformedMessageError(f"path is 1..{MAX_PATH} blocks")
        cid, size, _owner, reward, escrow, expires = doc
        if ctx.height > expires or escrow < reward:
            raise PinClosedError(f"pin request {request.hex()} expired or is spent")
        paid_key = PAID_PREFIX + request + ctx.sender
        last = ctx.state.get(paid_key)
        period = ProofParams.of(ctx.params).pin_period
        if last is not None and ctx.height - decode(last, "pin paid") < period:
            raise PinClosedError(f"one paid proof per {period} blocks a pinner")
        challenge = _open(ctx, PIN_CHALLENGE_PREFIX + request + ctx.sender)
        verify_retrievability(cid, size, challenge_offset(challenge, size), path)
        debit(ctx.state, ctx.sender, ProofParams.of(ctx.params).proof_fee, "a pin proof")
        credit(ctx.state, ctx.sender, reward)
        doc[4] = escrow - reward
        ctx.state.put(REQUEST_PREFIX + request, encode(doc))
        ctx.state.put(paid_key, encode(ctx.height))
        ctx.emit("pin.proved", request=request, pinner=ctx.sender, reward=reward)

    def close(self, ctx: TxContext, body: MessageBody) -> None:
        request, doc = self._request(ctx, body)
        owner, escrow, expires = doc[2], doc[4], doc[5]
        if owner != ctx.sender:
            raise PinClosedError("a pin request is closed by the account that made it")
        if ctx.height <= expires:
            raise PinClosedError(f"pin request {request.hex()} runs until height {expires}")
        ctx.state.delete(REQUEST_PREFIX + request)
        credit(ctx.state, ctx.sender, escrow)
        ctx.emit("pin.close", request=request, refund=escrow)


__all__ = ["KINDS", "ProofParams", "Proofs"]
