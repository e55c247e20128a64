"""Data availability on the network: shares over QUIC, sampling before a prevote,
bad-encoding fraud proofs gossiped and acted on.

A :class:`DANet` is a node extension (``focusflow.node.extensions``). Attached to
a validator or a full node it

* serves, over QUIC request/response, the squares this node holds: committed
  blocks' (``DAStore``) and those of proposals it made or validated
  (``chain.da_commit.recent_squares``), keyed by height and data root:
  ``da_roots`` -> the ``2k`` row and ``2k`` column roots, ``da_shares`` ->
  up to ``MAX_BATCH`` shares with their proofs (``None`` for one not served),
  ``da_axis`` -> every share of one row or column;
* samples every proposal it receives from its signer's node (the proposer of a
  fresh block, the validator that re-proposes a locked one) before this node
  prevotes for it (a proposal check, ``ExtensionHost.add_proposal_check``): ``samples`` distinct
  random coordinates, one request, every proof verified against the header's
  data root; a sample missing, late or wrong refuses the proposal (prevote
  nil: the proposer loses its round, the chain its next round's time only). A
  full node samples too, and logs what it finds (it does not vote);
* when block sync refuses a block a quorum certified because its transactions
  do not hash to its data root (``ExtensionHost.on_refused_block``), fetches the
  committed square row by row from its peers (each row checked against its
  committed root), finds the badly encoded row or column, builds and verifies
  the fraud proof, gossips it on ``da_fraud``, keeps it for
  ``GET /v1/da/{height}/fraud``, and stops following the chain
  (``ExtensionHost.halt``);
* verifies every fraud proof gossiped to it against a header that a quorum of
  its validator set certified (or that it committed itself): a valid one halts
  it and is passed on; an invalid one costs its sender.

Everything a peer sends is bounded before it is decoded and verified before it
is used; a peer that serves a proof that does not verify, roots that do not hash
to the data root, or a row that does not hash to its root is reported
(``net.report``).

Parameters come from the node's config.json (:class:`DAConfig`): ``da_sampling``
(default true), ``da_samples`` (16), ``da_sample_timeout`` (seconds, 2.0). A
test's fault plan (``node.faults.FaultPlan``, read from the host) may make the
node withhold its proposals' shares (``da_withhold_proposals``, applied by the
host's ``DAStore``) or build squares with a corrupted parity share
(``da_bad_encoding``: a producer that commits a bad encoding; turned on when
this extension attaches).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

import numpy as np

from focusflow.chain.block import BlockRecord, Header
from focusflow.chain.da_commit import (
    FraudRecord,
    block_square,
    recent_squares,
    set_bad_encoding,
)
from focusflow.chain.errors import BlockError
from focusflow.consensus.certificate import (
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError, InvalidParameterError
from focusflow.core.keys import address_bytes
from focusflow.da import (
    SHARE_SIZE,
    BadEncodingProof,
    ExtendedSquare,
    Sampler,
    SamplingResult,
    ShareUnavailableError,
    axis_root_of,
    befp_from_cbor,
    befp_to_cbor,
    find_bad_encoding_committed,
    share_proof_from_cbor,
    share_proof_to_cbor,
    verify_bad_encoding_proof,
)
from focusflow.da.merkle import merkle_root
from focusflow.da.wire import MAX_WIDTH, NMT_NODE_SIZE
from focusflow.net import Offence, Verdict
from focusflow.net.errors import (
    InvalidMessageError,
    NetError,
    PeerUnavailableError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from focusflow.net import Node
    from focusflow.node.extensions import ExtensionHost

log = logging.getLogger("focusflow.node.da")

_T = TypeVar("_T")
_Args = TypeVarTuple("_Args")

#: Gossip topic of bad-encoding fraud proofs.
FRAUD_TOPIC = "da_fraud"
#: Request names.
ROOTS = "da_roots"
SHARES = "da_shares"
AXIS = "da_axis"
#: Shares one ``da_shares`` request may ask for.
MAX_BATCH = 64
#: Largest request payload served (a batch of MAX_BATCH coordinates is ~450 bytes).
MAX_REQUEST_BYTES = 1024
#: Largest answers accepted, checked before decoding: roots of the widest
#: square; a batch of share proofs; one row of the widest square; a fraud proof
#: (k share proofs of the widest square, a header and a certificate).
MAX_ROOTS_BYTES = 4 * MAX_WIDTH * (NMT_NODE_SIZE + 3) + 64
MAX_SHARES_BYTES = MAX_BATCH * 4096
MAX_AXIS_BYTES = MAX_WIDTH * (SHARE_SIZE + 3) + 64
MAX_FRAUD_BYTES = 4 << 20
#: Rows of a square fetched at once from one peer (its in-flight cap is 32).
AXIS_CONCURRENCY = 8
#: Seconds one row (or the roots) may take to arrive when building a fraud proof.
FETCH_TIMEOUT = 5.0
#: Blocks investigated for a bad encoding at most (per node run).
MAX_INVESTIGATED = 64
#: Fraud proofs held for heights this node has not reached yet, and how far ahead.
MAX_HELD_FRAUD = 8
HOLD_AHEAD = 64

#: Shares with proofs one peer may be served per second (bursts of twice that),
#: and DA requests worked on in threads at once (all peers together): serving
#: shares must not take the cores and worker threads consensus needs.
SHARES_PER_SECOND = 2000
SERVE_THREADS = 2

DEFAULT_SAMPLES = 16
DEFAULT_SAMPLE_TIMEOUT = 2.0


@dataclass(frozen=True)
class DAConfig:
    """Data-availability settings of a node (its config.json keys in brackets)."""

    #: Sample every proposal before prevoting for it (``da_sampling``).
    sampling: bool = True
    #: Shares sampled per proposal (``da_samples``, 1..MAX_BATCH).
    samples: int = DEFAULT_SAMPLES
    #: Seconds the proposer has to serve them all (``da_sample_timeout``, 0.05..30).
    timeout: float = DEFAULT_SAMPLE_TIMEOUT

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> DAConfig:
        """The settings in ``config`` (defaults for keys absent); InvalidParameterError
        for a value of the wrong type or out of range."""
        flags = {}
        for key, name in (("da_sampling", "sampling"),):
            value = config.get(key, getattr(cls, name))
            if not isinstance(value, bool):
                raise InvalidParameterError(f"config.json: {key} must be true or false")
            flags[name] = value
        samples = config.get("da_samples", DEFAULT_SAMPLES)
        if (
            isinstance(samples, bool)
            or not isinstance(samples, int)
            or not 1 <= samples <= MAX_BATCH
        ):
            raise InvalidParameterError(
                f"config.json: da_samples must be an integer from 1 to {MAX_BATCH}, not {samples!r}"
            )
        timeout = config.get("da_sample_timeout", DEFAULT_SAMPLE_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0.05 <= timeout <= 30
        ):
            raise InvalidParameterError(
                f"config.json: da_sample_timeout must be 0.05 to 30 seconds, not {timeout!r}"
            )
        return cls(samples=samples, timeout=float(timeout), **flags)


class BadAnswerError(FocusflowError):
    """A peer answered with something that does not verify (it is reported)."""

    code = "da_bad_answer"


# --- requests: the client side (also used by the benchmark) ----------------------


def _check_size(raw: bytes, limit: int, what: str) -> bytes:
    if len(raw) > limit:
        raise BadAnswerError(f"{what} of {len(raw)} bytes exceeds {limit}")
    return raw


async def fetch_roots(
    net: Node, peer: bytes, height: int, data_root: bytes, timeout: float
) -> tuple[list[bytes], list[bytes]]:
    """The row and column roots of the square under ``data_root``, from ``peer``,
    checked: ``2k`` of each (k a power of two) whose Merkle root is ``data_root``.
    BadAnswerError if they are not; NetError if the request fails."""
    raw = await net.request(peer, ROOTS, encode([height, data_root]), timeout=timeout)
    try:
        value = decode(_check_size(raw, MAX_ROOTS_BYTES, "roots answer"), "da roots")
    except DecodeError as exc:
        raise BadAnswerError(str(exc)) from None
    if not (
        isinstance(value, list) and len(value) == 2 and all(isinstance(v, list) for v in value)
    ):
        raise BadAnswerError("roots answer is not [row roots, column roots]")
    rows, cols = value
    width = len(rows)
    if len(cols) != width or width < 2 or width > MAX_WIDTH or width & (width - 1):
        raise BadAnswerError(f"roots answer has {len(rows)} row and {len(cols)} column roots")
    if not all(isinstance(r, bytes) and len(r) == NMT_NODE_SIZE for r in rows + cols):
        raise BadAnswerError("roots answer holds a root that is not 90 bytes")
    if merkle_root(rows + cols) != data_root:
        raise BadAnswerError("roots do not hash to the data root")
    return rows, cols


async def sample_peer(
    net: Node,
    peer: bytes,
    height: int,
    data_root: bytes,
    width: int,
    samples: int,
    timeout: float,
    rng: random.Random | None = None,
) -> SamplingResult:
    """Sample ``samples`` distinct random shares of the square under ``data_root``
    from ``peer`` in one request, verifying each proof. A share not served, a
    timeout or a failed request counts as missing; a proof that does not verify
    (or a malformed answer) also reports the peer."""
    sampler = Sampler(data_root, width, height, samples, rng=rng or random.SystemRandom())
    requests = sampler.requests()
    coords = [[r.row, r.col] for r in requests]
    try:
        raw = await _request_within(net, peer, encode([height, data_root, coords]), timeout)
        answers = _decode_shares_answer(raw, len(requests))
    except BadAnswerError as exc:
        net.report(peer, Offence.INVALID, f"da_shares answer: {exc}")
        answers = [None] * len(requests)
    except NetError:
        answers = [None] * len(requests)
    bad = 0
    for request, answer in zip(requests, answers, strict=True):
        proof = None
        if answer is not None:
            try:
                proof = share_proof_from_cbor(answer)
            except DecodeError:
                bad += 1
        ok = sampler.receive(request, proof)
        if proof is not None and not ok:
            bad += 1
    if bad:
        net.report(peer, Offence.INVALID, f"served {bad} share proofs that do not verify")
    return sampler.result()


#: Seconds between tries while the proposer is not connected (see _request_within).
RECONNECT_POLL = 0.05


async def _request_within(net: Node, peer: bytes, payload: bytes, timeout: float) -> bytes:
    """One ``da_shares`` request, asked again while the peer is not connected,
    all within ``timeout``.

    A peer that restarted, or that we restarted, is reconnecting for about a
    second (the dead connection is dropped first, see ``Node.adopt``): a
    request meanwhile fails at once, which is no sign of withheld data. An
    answer, an error it sends, or silence until the deadline end the wait as
    before.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return await net.request(peer, SHARES, payload, timeout=max(left, 1e-3))
        except PeerUnavailableError:
            if left <= RECONNECT_POLL:
                raise
            await asyncio.sleep(RECONNECT_POLL)


def _decode_shares_answer(raw: bytes, count: int) -> list[Any]:
    try:
        value = decode(_check_size(raw, MAX_SHARES_BYTES, "shares answer"), "da shares")
    except DecodeError as exc:
        raise BadAnswerError(str(exc)) from None
    if not isinstance(value, list) or len(value) != count:
        raise BadAnswerError(f"shares answer is not a list of {count}")
    return value


async def fetch_square(
    net: Node,
    peer: bytes,
    height: int,
    data_root: bytes,
    timeout: float = FETCH_TIMEOUT,
) -> tuple[ExtendedSquare, list[bytes], list[bytes]]:
    """The whole committed square under ``data_root`` from ``peer``, row by row,
    each row checked against its committed root; with the committed roots.
    BadAnswerError if anything does not verify; NetError if a request fails."""
    rows, cols = await fetch_roots(net, peer, height, data_root, timeout)
    width = len(rows)
    data = np.empty((width, width, SHARE_SIZE), dtype=np.uint8)
    gate = asyncio.Semaphore(AXIS_CONCURRENCY)

    async def one(index: int) -> None:
        async with gate:
            raw = await net.request(
                peer, AXIS, encode([height, data_root, "row", index]), timeout=timeout
            )
        try:
            shares = decode(_check_size(raw, MAX_AXIS_BYTES, "row answer"), "da axis")
        except DecodeError as exc:
            raise BadAnswerError(str(exc)) from None
        if not (
            isinstance(shares, list)
            and len(shares) == width
            and all(isinstance(s, bytes) and len(s) == SHARE_SIZE for s in shares)
        ):
            raise BadAnswerError(f"row {index} is not {width} shares of {SHARE_SIZE} bytes")
        if axis_root_of(shares, "row", index) != rows[index]:
            raise BadAnswerError(f"row {index} does not hash to its committed root")
        data[index] = np.frombuffer(b"".join(shares), dtype=np.uint8).reshape(width, SHARE_SIZE)

    await asyncio.gather(*(one(i) for i in range(width)))
    return ExtendedSquare(data), rows, cols


# --- fraud proof messages ---------------------------------------------------------


def encode_fraud(record: FraudRecord) -> bytes:
    """The ``da_fraud`` gossip payload: ``[header, certificate or null, proof]``."""
    cert = None if record.certificate is None else encode_certificate(record.certificate)
    return encode([record.header.to_cbor(), cert, befp_to_cbor(record.proof)])


def decode_fraud(payload: bytes) -> FraudRecord:
    """Parse a ``da_fraud`` payload within bounds; DecodeError if malformed."""
    if len(payload) > MAX_FRAUD_BYTES:
        raise DecodeError(f"malformed fraud proof: {len(payload)} bytes exceed {MAX_FRAUD_BYTES}")
    value = decode(payload, "fraud proof")
    if not isinstance(value, list) or len(value) != 3:
        raise DecodeError("malformed fraud proof: expected [header, certificate, proof]")
    header_v, cert_v, proof_v = value
    header = Header.from_cbor(header_v)
    if cert_v is not None and not isinstance(cert_v, bytes):
        raise DecodeError("malformed fraud proof: certificate must be bytes or null")
    cert = None if cert_v is None else decode_certificate(cert_v)
    return FraudRecord(header, cert, befp_from_cbor(proof_v))


class ShareBudget:
    """A token bucket per peer, in shares: ``rate`` a second, bursts of ``2 * rate``."""

    PRUNE_AT = 1024

    def __init__(self, rate: float = SHARES_PER_SECOND) -> None:
        self.rate, self.burst = rate, 2 * rate
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def take(self, peer: bytes, count: int) -> bool:
        """Spend ``count`` of ``peer``'s tokens; False (nothing spent) if it lacks them."""
        now = time.monotonic()
        if len(self._buckets) >= self.PRUNE_AT:
            self._buckets = {p: v for p, v in self._buckets.items() if now - v[1] < 60}
        tokens, at = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < count:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - count, now)
        return True


# --- the extension ----------------------------------------------------------------


class DANet:
    """Serves shares, samples proposals, proves and acts on bad encodings; see the
    module docstring."""

    def __init__(self, config: DAConfig | None = None) -> None:
        self.config = config or DAConfig()
        self.host: ExtensionHost | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._investigated: set[tuple[int, bytes]] = set()
        self._ids: tuple[object, dict[bytes, bytes]] = (None, {})
        self._held: dict[int, FraudRecord] = {}
        self._held_lock = threading.Lock()
        self._budget = ShareBudget()
        self._work = asyncio.Semaphore(SERVE_THREADS)
        #: Counters for logs and tests.
        self.stats = {
            "sampled": 0,
            "sampling_failed": 0,
            "served_shares": 0,
            "fraud_built": 0,
            "fraud_accepted": 0,
            "fraud_rejected": 0,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> DANet:
        """The extension as a node's config.json sets it up (:class:`DAConfig`)."""
        return cls(DAConfig.from_config(config))

    # --- attach / stop -----------------------------------------------------------
    def attach(self, host: ExtensionHost) -> None:
        self.host = host
        if host.faults is not None and host.faults.da_bad_encoding:
            set_bad_encoding(True)  # process-wide: see node.faults
        if host.net is None:
            return  # the devnet: no peers to serve or sample
        host.register(ROOTS, self._serve_roots)
        host.register(SHARES, self._serve_shares)
        host.register(AXIS, self._serve_axis)
        host.subscribe(FRAUD_TOPIC, self._on_fraud)
        host.on_commit(self._after_commit)
        if self.config.sampling:
            host.add_proposal_check(self.check_proposal)
        host.on_refused_block(self._on_refused)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- serving -------------------------------------------------------------------
    def _request(self, payload: bytes, fields: int, what: str) -> list[Any]:
        """A request's CBOR array of ``fields`` items starting ``[height, data_root]``;
        InvalidMessageError (the asker is penalised) if malformed."""
        if len(payload) > MAX_REQUEST_BYTES:
            raise InvalidMessageError(f"{what} request of {len(payload)} bytes")
        try:
            value = decode(payload, f"{what} request")
        except DecodeError as exc:
            raise InvalidMessageError(str(exc)) from None
        if not (
            isinstance(value, list)
            and len(value) == fields
            and isinstance(value[0], int)
            and not isinstance(value[0], bool)
            and 0 <= value[0] < 2**63
            and isinstance(value[1], bytes)
            and len(value[1]) == 32
        ):
            raise InvalidMessageError(f"malformed {what} request")
        return value

    async def _in_thread(self, fn: Callable[[*_Args], _T], *args: *_Args) -> _T:
        """``fn(*args)`` in a worker thread, at most SERVE_THREADS at once."""
        async with self._work:
            return await asyncio.to_thread(fn, *args)

    async def _servable(self, height: int, data_root: bytes) -> ExtendedSquare:
        assert self.host is not None
        return await self._in_thread(self.host.da.servable, height, data_root)

    async def _serve_roots(self, peer: bytes, payload: bytes) -> bytes:
        """``[height, data_root]`` -> ``[row roots, column roots]`` (served even by a
        node that withholds shares, as a header is published)."""
        height, data_root = self._request(payload, 2, ROOTS)
        assert self.host is not None
        square, _ = await self._in_thread(self.host.da.square_for, height, data_root)
        return encode([square.row_roots(), square.col_roots()])

    async def _serve_shares(self, peer: bytes, payload: bytes) -> bytes:
        """``[height, data_root, [[row, col]...]]`` -> a share proof (CBOR form) or
        null per coordinate. unknown_block, share_unavailable, invalid_parameter."""
        height, data_root, coords = self._request(payload, 3, SHARES)
        if not isinstance(coords, list) or not 1 <= len(coords) <= MAX_BATCH:
            raise InvalidMessageError(f"a {SHARES} request names 1 to {MAX_BATCH} coordinates")
        if not self._budget.take(peer, len(coords)):
            raise RateLimitedError(f"at most {SHARES_PER_SECOND} shares a second are served")
        square = await self._servable(height, data_root)
        width = square.width
        for c in coords:
            if not (
                isinstance(c, list)
                and len(c) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in c)
            ):
                raise InvalidMessageError(f"malformed {SHARES} coordinate")
            if not (0 <= c[0] < width and 0 <= c[1] < width):
                raise InvalidParameterError(f"({c[0]}, {c[1]}) is outside the {width}-wide square")
        assert self.host is not None
        withheld = self.host.da.withheld(height, width)

        def prove() -> bytes:
            return encode(
                [
                    None if (r, c) in withheld else share_proof_to_cbor(square.proof(r, c))
                    for r, c in coords
                ]
            )

        self.stats["served_shares"] += len(coords)
        return await self._in_thread(prove)

    async def _serve_axis(self, peer: bytes, payload: bytes) -> bytes:
        """``[height, data_root, "row" | "col", index]`` -> its ``2k`` shares."""
        height, data_root, axis, index = self._request(payload, 4, AXIS)
        if axis not in ("row", "col") or not isinstance(index, int) or isinstance(index, bool):
            raise InvalidMessageError(f"malformed {AXIS} request")
        square = await self._servable(height, data_root)
        if not 0 <= index < square.width:
            raise InvalidParameterError(f"{axis} {index} is outside the {square.width}-wide square")
        assert self.host is not None
        withheld = self.host.da.withheld(height, square.width)
        if any(
            (index, j) in withheld if axis == "row" else (j, index) in withheld
            for j in range(square.width)
        ):
            raise ShareUnavailableError(f"{axis} {index} of block {height} is not served")
        return encode(square.row(index) if axis == "row" else square.col(index))

    # --- sampling proposals ----------------------------------------------------------
    def _node_id_of(self, address: bytes) -> bytes | None:
        """The node id (public key) of the validator whose address is ``address``."""
        assert self.host is not None
        vset = self.host.vset
        known, ids = self._ids
        if known is not vset:
            ids = {address_bytes(v.public_key): v.public_key for v in vset.validators}
            self._ids = (vset, ids)
        return ids.get(address)

    def check_proposal(self, record: BlockRecord, signer: bytes | None = None) -> str | None:
        """The proposal check (a worker thread): sample the proposal's square from
        the proposal's ``signer`` (its block's maker when None); why it is
        refused, or None. A full node only logs.

        The signer of a re-proposal holds the block (it prevoted it, or saw
        more than 2/3 do so and fetched it); its maker may have gone since. A
        validator that sampled the maker instead would refuse the block in every
        later round while others stay locked on it, and the height would stall.
        """
        host = self.host
        assert host is not None and host.net is not None
        header = record.block.header
        proposer = signer if signer is not None else self._node_id_of(header.proposer)
        if proposer is None or proposer == host.net.id:
            return None  # our own block (we hold its data), or a proposer-less block
        square = recent_squares.get(header.data_root) or block_square(record.block.txs)
        t0 = time.perf_counter()
        future = host.run_soon(
            sample_peer(
                host.net,
                proposer,
                header.height,
                header.data_root,
                square.width,
                self.config.samples,
                self.config.timeout,
            )
        )
        try:
            result = future.result(self.config.timeout + 1.0)
        except (TimeoutError, concurrent.futures.CancelledError) as exc:
            # The bound passed, or the loop stopped.
            future.cancel()
            return self._refuse(header.height, f"sampling did not finish: {exc!r}")
        except Exception as exc:
            # A bug in sampling: logged with its traceback; the proposal is
            # still refused (unchecked data is never voted for).
            log.exception("sampling failed", extra={"fields": {"height": header.height}})
            return self._refuse(header.height, f"sampling failed: {exc!r}")
        self.stats["sampled"] += 1
        ms = (time.perf_counter() - t0) * 1000
        if result.available:
            log.debug(
                "proposal sampled",
                extra={
                    "fields": {
                        "height": header.height,
                        "samples": len(result.samples),
                        "ms": round(ms, 1),
                    }
                },
            )
            return None
        maker = signer is None or signer == self._node_id_of(header.proposer)
        return self._refuse(
            header.height,
            f"data availability sampling failed: {len(result.failed)} of "
            f"{len(result.samples)} shares missing or wrong from "
            f"{'the proposer' if maker else 'the re-proposer'}",
        )

    def _refuse(self, height: int, reason: str) -> str | None:
        self.stats["sampling_failed"] += 1
        assert self.host is not None
        if self.host.follow_only:
            log.warning(
                "proposal not available", extra={"fields": {"height": height, "reason": reason}}
            )
            return None  # a full node does not vote; block sync still checks the block
        return reason

    # --- bad encodings: proving ---------------------------------------------------------
    def _on_refused(self, raw: bytes, error: BlockError) -> None:
        """A certified block did not apply here (on the loop): look into it."""
        assert self.host is not None
        if self.host.halted is None and len(self._investigated) < MAX_INVESTIGATED:
            self._spawn(self._investigate(raw))

    async def _investigate(self, raw: bytes) -> None:
        host = self.host
        assert host is not None and host.net is not None
        try:
            record = await asyncio.to_thread(BlockRecord.decode, raw)
        except DecodeError:
            return
        header, cert = record.block.header, record.commit
        key = (header.height, header.hash)
        if cert is None or key in self._investigated or header.height != host.chain.height + 1:
            return
        self._investigated.add(key)
        chain = host.chain
        try:
            verify_certificate(
                cert, chain.validators, chain.chain_id, height=header.height, value_id=header.hash
            )
        except FocusflowError:
            return  # not certified by our set: nothing a fraud proof could stand on
        mine = await asyncio.to_thread(lambda: block_square(record.block.txs).data_root())
        if mine == header.data_root:
            return  # refused for another reason than its data square
        proof = await self._prove(header)
        if proof is None:
            return
        fraud = FraudRecord(header, cert, proof)
        self.stats["fraud_built"] += 1
        await self._act_on(fraud, publish=True)

    async def _prove(self, header: Header) -> BadEncodingProof | None:
        """Fetch the committed square from the proposer, then any other peer, and
        prove its bad encoding; None if no peer serves it or it is a valid
        encoding (of other data)."""
        host = self.host
        assert host is not None and host.net is not None
        net = host.net
        proposer = self._node_id_of(header.proposer)
        peers = net.connected_peers()
        peers.sort(key=lambda p: p != proposer)
        for peer in peers:
            try:
                square, rows, cols = await fetch_square(net, peer, header.height, header.data_root)
            except BadAnswerError as exc:
                net.report(peer, Offence.INVALID, f"served a square that does not verify: {exc}")
                continue
            except (NetError, FocusflowError) as exc:
                log.info(
                    "square not fetched",
                    extra={"fields": {"height": header.height, "error": str(exc)}},
                )
                continue
            proof = await asyncio.to_thread(find_bad_encoding_committed, square, rows, cols)
            if proof is None:
                log.warning(
                    "block's data root covers a valid square of other data: no fraud proof",
                    extra={"fields": {"height": header.height}},
                )
            return proof
        log.warning(
            "no peer served the square of a refused block",
            extra={"fields": {"height": header.height}},
        )
        return None

    async def _act_on(self, fraud: FraudRecord, *, publish: bool) -> None:
        """Keep a verified proof, pass it on (ours), stop following the chain."""
        host = self.host
        assert host is not None
        host.da.record_fraud(fraud)
        if publish and host.net is not None:
            with contextlib.suppress(NetError):
                await host.net.publish(FRAUD_TOPIC, encode_fraud(fraud))
        proof = fraud.proof
        host.halt(
            f"block {fraud.header.height} is badly encoded ({proof.axis} {proof.index} of its "
            f"data square): verified fraud proof"
        )

    # --- bad encodings: hearing of one ---------------------------------------------------
    async def _on_fraud(self, sender: bytes, payload: bytes) -> Verdict:
        try:
            fraud = decode_fraud(payload)
        except DecodeError:
            self.stats["fraud_rejected"] += 1
            return Verdict.REJECT
        verdict = await asyncio.to_thread(self._judge, fraud)
        if verdict is Verdict.ACCEPT:
            await self._accept(fraud)
        elif verdict is Verdict.REJECT:
            self.stats["fraud_rejected"] += 1
        return verdict

    async def _accept(self, fraud: FraudRecord) -> None:
        self.stats["fraud_accepted"] += 1
        await self._act_on(fraud, publish=False)

    def _hold(self, fraud: FraudRecord) -> None:
        """Keep a proof for a height this node has not reached (the first one per
        height, at most MAX_HELD_FRAUD, HOLD_AHEAD heights ahead at most)."""
        assert self.host is not None
        height = fraud.header.height
        with self._held_lock:
            if height - self.host.chain.height > HOLD_AHEAD or height in self._held:
                return
            if len(self._held) >= MAX_HELD_FRAUD:
                return
            self._held[height] = fraud

    def _after_commit(self, event: object) -> None:
        """A block was committed (a worker thread): judge the proofs held for the
        height now next, or below it."""
        host = self.host
        assert host is not None
        with self._held_lock:
            due = [h for h in self._held if h <= host.chain.height + 1]
            ready = [self._held.pop(h) for h in due]
        for fraud in ready:
            if self._judge(fraud) is Verdict.ACCEPT:
                host.run_soon(self._accept(fraud))

    def _judge(self, fraud: FraudRecord) -> Verdict:  # noqa: PLR0911 - one verdict per reason, returned where it is found
        """ACCEPT a proof against a block this node committed or that its validator
        set certified at the next height; IGNORE what it cannot judge (another
        chain's, too far ahead, one held already); REJECT what does not verify."""
        host = self.host
        assert host is not None
        chain, header = host.chain, fraud.header
        held = host.da.fraud(header.height)
        if held is not None and held.header.hash == header.hash:
            return Verdict.IGNORE
        if header.chain_id != chain.chain_id:
            return Verdict.REJECT
        if header.height <= chain.height:
            ours = chain.block_record(header.height)
            if ours is None or ours.block.header.hash != header.hash:
                return Verdict.IGNORE  # not the block we committed: not ours to judge
        elif header.height == chain.height + 1:
            if header.parent != chain.head.hash or fraud.certificate is None:
                return Verdict.IGNORE if fraud.certificate is not None else Verdict.REJECT
            try:
                verify_certificate(
                    fraud.certificate,
                    chain.validators,
                    chain.chain_id,
                    height=header.height,
                    value_id=header.hash,
                )
            except FocusflowError:
                return Verdict.REJECT
        elif not verify_bad_encoding_proof(header.data_root, fraud.proof):
            return Verdict.REJECT
        else:
            # Ahead of this node: the certificate is checked once the chain
            # reaches its height (a node that is catching up).
            self._hold(fraud)
            return Verdict.IGNORE
        if not verify_bad_encoding_proof(header.data_root, fraud.proof):
            return Verdict.REJECT
        return Verdict.ACCEPT


__all__ = [
    "AXIS",
    "FRAUD_TOPIC",
    "ROOTS",
    "SHARES",
    "BadAnswerError",
    "DAConfig",
    "DANet",
    "decode_fraud",
    "encode_fraud",
    "fetch_roots",
    "fetch_square",
    "sample_peer",
]
