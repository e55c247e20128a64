"""State sync: nodes write and serve snapshots; a new node starts from a verified one.

Serving side (:class:`StateSync`, a node extension): every ``snapshot_interval``
blocks (config.json, default DEFAULT_INTERVAL; 0 turns it off) the node writes
a snapshot of the block it just committed (focusflow.chain.snapshot) under
``<data>/snapshots/`` and keeps the newest ``snapshot_keep``. The commit
thread only copies the focus state's arrays into its byte form (it may
advance in place with the next block) and opens an LMDB read transaction at
that height; the state and the files are written by a background thread, so
consensus goes on meanwhile.
Peers ask over QUIC:

* ``snapshots`` (empty payload) -> CBOR list of the manifests kept, newest first;
* ``snapshot_chunk`` (CBOR ``[manifest hash, index]``) -> that chunk's bytes
  (at most chunk.MAX_CHUNK_SIZE, under the transport's frame);

each at most LIST_RATE / CHUNK_RATE times a second per peer (``rate_limited``
beyond), and at most CHUNK_READERS chunks read from disk at once.

Joining side (:func:`state_sync`): before a new node opens its chain, it dials
its peers with a transient transport node, asks each for its snapshots, and
tries them newest first. A snapshot is installed only when every chunk hashes
to its manifest, the state rebuilt from it hashes to its header's state root
and its focus state to the header's focus root (chain/snapshot.py), and the
header is the network's: its commit certificate carries more than 2/3 of the
set the verified state records for that height and more than 1/3 of the power
of a set this node trusts (the genesis set, or the set of a header given by
``--trust-height/--trust-hash``), hopping through the recorded set changes
when the trusted set is not enough (CometBFT's skipping verification, trust
level 1/3), each hop within the trusting period. Any failure refuses that
snapshot from that peer (a lie costs the peer score) and the next is tried;
when none verifies the node starts from genesis and block-syncs everything.
Snapshots a node of the release before the focus state's byte form offers
(manifest format 1: a pickled focus state) are skipped unread, and so are
those of a focus state schema this node does not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

from focusflow.chain.block import BlockRecord
from focusflow.chain.genesis import Genesis
from focusflow.chain.snapshot import (
    DEFAULT_CHUNK_SIZE,
    ChunkFile,
    Manifest,
    SnapshotCertificateError,
    SnapshotError,
    SnapshotIncompatibleError,
    capture_focus,
    install_snapshot,
    list_snapshots,
    prune_snapshots,
    read_chunk,
    verify_snapshot,
    write_snapshot,
)
from focusflow.chain.valsets import ValidatorSets
from focusflow.consensus.certificate import verify_certificate
from focusflow.consensus.errors import InvalidCertificateError
from focusflow.consensus.validators import ValidatorSet, has_one_third
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError, InvalidParameterError, require_int
from focusflow.core.keys import KeyPair
from focusflow.light.trust import DEFAULT_TRUSTING_PERIOD_S
from focusflow.net import NetConfig, Node, Offence, PeerAddress
from focusflow.net.errors import NetError, RateLimitedError, RemoteError
from focusflow.node.sync import ClaimError, RateLimiter, trusted_power
from focusflow.store import Store

if TYPE_CHECKING:
    from focusflow.node.extensions import ExtensionHost
    from focusflow.node.runtime import BlockEvent

log = logging.getLogger("focusflow.node.state_sync")

#: Blocks between snapshots, and snapshots kept (config.json
#: ``snapshot_interval``, ``snapshot_keep``).
DEFAULT_INTERVAL = 1000
DEFAULT_KEEP = 2
#: The snapshots' directory inside the store's.
SNAPSHOTS_DIR = "snapshots"
#: ``snapshots`` and ``snapshot_chunk`` requests served per second per peer
#: (bursts of twice that); chunks read from disk at once, all peers together.
LIST_RATE = 2.0
CHUNK_RATE = 16.0
CHUNK_READERS = 4
#: Manifests one ``snapshots`` answer may carry (a joining node reads no more).
MAX_OFFERS = 8
#: Chunk requests a joining node keeps in flight, and seconds each may take.
WINDOW = 4
CHUNK_TIMEOUT = 30.0
#: Times a chunk answered ``rate_limited`` is asked again (after a short wait).
RETRIES = 8
#: Seconds a joining node gives a peer to connect and answer ``snapshots``.
OFFER_TIMEOUT = 10.0
#: How long a trusted header vouches for its validators: the light client's
#: default (focusflow.light.trust), checked against this node's clock.
TRUSTING_PERIOD_S = float(DEFAULT_TRUSTING_PERIOD_S)


class SnapshotGoneError(FocusflowError):
    """The snapshot asked for is not (or no longer) kept by this node."""

    code = "snapshot_gone"


# --- serving ---------------------------------------------------------------------


class StateSync:
    """The node extension that writes and serves snapshots (module docstring)."""

    def __init__(
        self,
        interval: int = DEFAULT_INTERVAL,
        keep: int = DEFAULT_KEEP,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        root: Path | None = None,
    ) -> None:
        self.interval = interval
        self.keep = keep
        self.chunk_size = chunk_size
        self.root = root
        self._offers: dict[bytes, Manifest] = {}
        self._encoded_list = encode([])
        self._writer: threading.Thread | None = None
        self._list_limit = RateLimiter(LIST_RATE, 2 * LIST_RATE)
        self._chunk_limit = RateLimiter(CHUNK_RATE, 2 * CHUNK_RATE)
        self._readers = asyncio.Semaphore(CHUNK_READERS)
        #: Snapshots written, and the seconds the commit thread spent on the last.
        self.written = 0
        self.capture_seconds = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> StateSync:
        """The extension config.json asks for: ``snapshot_interval`` (0: write
        none, serve what is kept) and ``snapshot_keep``."""
        interval = require_int(
            "snapshot_interval", config.get("snapshot_interval", DEFAULT_INTERVAL), 0
        )
        keep = require_int("snapshot_keep", config.get("snapshot_keep", DEFAULT_KEEP), 1)
        return cls(interval, keep)

    def attach(self, host: ExtensionHost) -> None:
        """Publish the snapshots kept, write one every ``interval`` blocks (from
        the host's commits) and serve them, where the host has a transport."""
        self.chain = host.chain
        if self.root is None:
            self.root = Path(host.chain.store.path) / SNAPSHOTS_DIR
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._publish(list_snapshots(self.root))
        if self.interval:
            host.on_commit(self._on_block)
        if host.net is not None:
            host.register("snapshots", self._serve_list)
            host.register("snapshot_chunk", self._serve_chunk)

    async def stop(self) -> None:
        writer = self._writer
        if writer is not None:
            await asyncio.to_thread(writer.join)

    def _publish(self, manifests: list[Manifest]) -> None:
        kept = manifests[: self.keep]
        self._offers = {m.hash: m for m in kept}
        self._encoded_list = encode([m.encode() for m in kept])

    # --- writing (commit thread, then a background thread) -------------------
    def _on_block(self, event: BlockEvent) -> None:
        height = event.result.block.height
        if height % self.interval or (self._writer is not None and self._writer.is_alive()):
            return
        t0 = time.perf_counter()
        payload = capture_focus(self.chain.focus, self.chain.head, self.chain.chain_id)
        opened = threading.Event()
        self._writer = threading.Thread(
            target=self._write, args=(height, payload, opened), name="snapshot", daemon=True
        )
        self._writer.start()
        opened.wait()  # the read transaction sees this height before the next commit
        self.capture_seconds = time.perf_counter() - t0

    def _write(self, height: int, payload: bytes, opened: threading.Event) -> None:
        assert self.root is not None
        t0 = time.perf_counter()
        try:
            with self.chain.store.reader() as reader:
                opened.set()
                if reader.height != height:
                    return
                manifest = write_snapshot(
                    reader,
                    payload,
                    self.root,
                    chain_id=self.chain.chain_id,
                    chunk_size=self.chunk_size,
                )
            prune_snapshots(self.root, self.keep)
            self._publish(list_snapshots(self.root))
            self.written += 1
            log.info(
                "snapshot written",
                extra={
                    "fields": {
                        "height": height,
                        "bytes": manifest.size,
                        "chunks": len(manifest.chunks),
                        "seconds": round(time.perf_counter() - t0, 3),
                    }
                },
            )
        except (OSError, lmdb.Error, FocusflowError) as exc:
            # A full disk, the store closed under it, or a refusal: logged, the
            # node goes on without this snapshot.
            log.warning(
                "snapshot not written", extra={"fields": {"height": height, "error": str(exc)}}
            )
        finally:
            opened.set()

    # --- serving -------------------------------------------------------------
    async def _serve_list(self, peer_id: bytes, payload: bytes) -> bytes:
        if not self._list_limit.allow(peer_id):
            raise RateLimitedError(f"snapshots is served {LIST_RATE:g} times a second")
        return self._encoded_list

    async def _serve_chunk(self, peer_id: bytes, payload: bytes) -> bytes:
        if not self._chunk_limit.allow(peer_id):
            raise RateLimitedError(f"snapshot chunks are served {CHUNK_RATE:g} a second")
        request = decode(payload, "snapshot_chunk request")
        if not (isinstance(request, list) and len(request) == 2):
            raise DecodeError("snapshot_chunk request is not [manifest hash, index]")
        snapshot, index = request
        manifest = self._offers.get(snapshot) if isinstance(snapshot, bytes) else None
        if manifest is None:
            raise SnapshotGoneError("no such snapshot is kept here")
        if not isinstance(index, int) or isinstance(index, bool):
            raise DecodeError("snapshot_chunk index is not an integer")
        assert self.root is not None  # set by attach, before this is registered
        async with self._readers:
            try:
                return await asyncio.to_thread(read_chunk, self.root, manifest, index)
            except SnapshotError as exc:
                raise SnapshotGoneError(str(exc)) from None


# --- joining ---------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """Where a joining node's trust starts: genesis (height 0), or a header it was
    given out of band (``--trust-height H --trust-hash HEX``)."""

    height: int = 0
    hash: bytes | None = None
    #: Seconds a trusted header vouches for its validators; None: no limit (tests).
    period_s: float | None = TRUSTING_PERIOD_S

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Trust:
        """config.json's ``trust_height`` and ``trust_hash`` (64 hex digits),
        given together or not at all, and ``trust_period_s`` (seconds > 0)."""
        height, hex_hash = config.get("trust_height"), config.get("trust_hash")
        period = config.get("trust_period_s", TRUSTING_PERIOD_S)
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise InvalidParameterError(f"trust_period_s must be seconds > 0, got {period!r}")
        if height is None and hex_hash is None:
            return cls(period_s=float(period))
        trusted = require_int("trust_height", height, 1)
        try:
            digest = bytes.fromhex(hex_hash) if isinstance(hex_hash, str) else b""
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise InvalidParameterError(f"trust_hash must be 64 hex digits, got {hex_hash!r}")
        return cls(trusted, digest, float(period))


#: Fetches the block record of a height from the peer being tried.
BlockFetcher = Callable[[int], Awaitable[BlockRecord]]


async def verify_trust(
    record: BlockRecord,
    valsets: ValidatorSets,
    genesis: Genesis,
    trust: Trust,
    fetch: BlockFetcher,
    now_ms: int | None = None,
) -> None:
    """Raise SnapshotCertificateError unless ``record``'s header is the network's.

    ``valsets`` are the sets the snapshot's (root-verified) state records. The
    trusted set is the genesis set, or the set of the trusted header (fetched,
    its hash compared). The header must carry more than 1/3 of the trusted
    set's power; failing that, trust hops to each recorded set change in
    turn: a hop header names its set's hash, carries more than 2/3 of that set
    and more than 1/3 of the set trusted so far. Every trusted header must be
    younger than the trusting period by this node's clock.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    chain_id = genesis.chain_id
    if trust.height == 0:
        trusted, trusted_height, trusted_time = genesis.validator_set(), 0, genesis.genesis_time_ms
    else:
        anchor = await fetch(trust.height)
        header = anchor.block.header
        if header.hash != trust.hash:
            raise SnapshotCertificateError(
                f"block {trust.height} is not the trusted one (hash {header.hash.hex()[:16]})"
            )
        trusted = valsets.at(trust.height)
        if trusted.hash() != header.validators_hash:
            raise SnapshotCertificateError(
                f"the recorded set of height {trust.height} is not the trusted header's"
            )
        trusted_height, trusted_time = trust.height, header.time_ms
    target = record.block.header
    if target.height < trusted_height:
        raise SnapshotCertificateError(f"snapshot {target.height} is below the trusted height")
    # Height 1's set is the genesis's by definition (a state that says otherwise
    # fails the certificate checks); later records are the changes to hop through.
    hops = [h for h in valsets.changes if max(trusted_height, 1) < h <= target.height]
    while True:
        _check_period(trust, trusted_time, now_ms)
        if _backs(record, trusted, chain_id):
            return
        if not hops:
            raise SnapshotCertificateError(
                f"snapshot header {target.height}: the trusted validators' signatures "
                "hold no more than 1/3 of their power"
            )
        height = hops.pop(0)
        hop = record if height == target.height else await fetch(height)
        vset = valsets.at(height)
        _check_hop(hop, height, vset, trusted, chain_id)
        trusted, trusted_time = vset, hop.block.header.time_ms


def _check_period(trust: Trust, trusted_time_ms: int, now_ms: int) -> None:
    if trust.period_s is not None and now_ms > trusted_time_ms + trust.period_s * 1000:
        raise SnapshotCertificateError(
            "the trusted header is older than the trusting period: start from a recent "
            "--trust-height/--trust-hash"
        )


def _backs(record: BlockRecord, trusted: ValidatorSet, chain_id: str) -> bool:
    """More than 1/3 of ``trusted``'s power signed ``record``'s certificate."""
    assert record.commit is not None
    if record.commit.value_id != record.block.hash:
        raise SnapshotCertificateError("certificate commits another block")
    try:
        power = trusted_power(record.commit, trusted, chain_id)
    except ClaimError as exc:
        raise SnapshotCertificateError(f"forged certificate: {exc}") from None
    return has_one_third(power, trusted.total_power)


def _check_hop(
    hop: BlockRecord, height: int, vset: ValidatorSet, trusted: ValidatorSet, chain_id: str
) -> None:
    header = hop.block.header
    if header.height != height or hop.commit is None:
        raise SnapshotCertificateError(f"hop block {height} is not the block asked for")
    if header.validators_hash != vset.hash():
        raise SnapshotCertificateError(f"hop block {height} names another validator set")
    try:
        verify_certificate(hop.commit, vset, chain_id, height=height, value_id=header.hash)
    except InvalidCertificateError as exc:
        raise SnapshotCertificateError(f"hop block {height}: {exc}") from None
    if not _backs(hop, trusted, chain_id):
        raise SnapshotCertificateError(
            f"hop block {height}: the trusted validators hold no more than 1/3 of its power"
        )


async def state_sync(
    data_dir: Path,
    genesis: Genesis,
    peers: Iterable[str],
    trust: Trust | None = None,
    *,
    key: KeyPair | None = None,
    net_config: NetConfig | None = None,
) -> int:
    """Install the newest snapshot that verifies into the empty store at
    ``data_dir``; returns its height (0: none did, or the store is not empty,
    and the node starts from what it has).

    Call it before the chain is opened (``open_chain`` then opens at that
    height). ``peers`` are ``<hex id>@host:port``; ``key`` is the transient
    transport identity (a fresh one by default).
    """
    data_dir = Path(data_dir)
    trust = trust or Trust()
    with Store(data_dir) as store, store.reader() as r:
        if r.meta(b"height") is not None or r.block(0) is not None:
            return 0
    config = replace(net_config or NetConfig(), network_id=genesis.hash)
    node = Node(key or KeyPair.generate(), listen=("127.0.0.1", 0), config=config)
    await node.start()
    try:
        offers = await _offers(node, [PeerAddress.parse(p) for p in peers], genesis)
        for manifest, peer_ids in offers:
            for peer_id in peer_ids:
                try:
                    return await _try(node, peer_id, manifest, data_dir, genesis, trust)
                except (SnapshotError, NetError, DecodeError) as exc:
                    log.warning(
                        "snapshot refused",
                        extra={
                            "fields": {
                                "height": manifest.height,
                                "peer": peer_id.hex()[:16],
                                "code": exc.code,
                                "reason": str(exc),
                            }
                        },
                    )
                    if isinstance(exc, SnapshotError | DecodeError):
                        node.report(peer_id, Offence.INVALID, f"bad snapshot: {exc.code}")
        log.warning("no snapshot verified: starting from genesis")
        return 0
    finally:
        await node.stop()
        shutil.rmtree(data_dir / "snapshot.part", ignore_errors=True)


async def _offers(
    node: Node, peers: list[PeerAddress], genesis: Genesis
) -> list[tuple[Manifest, list[bytes]]]:
    """Every usable manifest the peers offer, newest first, with who offers it."""
    by_hash: dict[bytes, tuple[Manifest, list[bytes]]] = {}

    async def ask(peer: PeerAddress) -> None:
        try:
            peer_id = await asyncio.wait_for(node.connect(peer), OFFER_TIMEOUT)
            raw = await node.request(peer_id, "snapshots", b"", timeout=OFFER_TIMEOUT)
            listed = decode(raw, "snapshots answer")
            if not isinstance(listed, list):
                raise DecodeError("snapshots answer is not a list")
            for item in listed[:MAX_OFFERS]:
                try:
                    manifest = Manifest.decode(item)
                except SnapshotIncompatibleError as exc:
                    # Of an earlier release (a pickled focus state) or a
                    # later schema: not worth downloading, and no offence.
                    log.info(
                        "snapshot skipped",
                        extra={"fields": {"peer": str(peer), "code": exc.code, "reason": str(exc)}},
                    )
                    continue
                # Another chain's: verify_snapshot would refuse it.
                if manifest.chain_id == genesis.chain_id:
                    by_hash.setdefault(manifest.hash, (manifest, []))[1].append(peer_id)
        except (FocusflowError, TimeoutError) as exc:
            log.info(
                "no snapshots from peer", extra={"fields": {"peer": str(peer), "error": str(exc)}}
            )

    await asyncio.gather(*(ask(p) for p in peers))
    return sorted(by_hash.values(), key=lambda o: -o[0].height)


async def _try(
    node: Node, peer_id: bytes, manifest: Manifest, data_dir: Path, genesis: Genesis, trust: Trust
) -> int:
    """Download, verify and install one snapshot from one peer; its height."""
    t0 = time.perf_counter()
    part = data_dir / "snapshot.part"
    shutil.rmtree(part, ignore_errors=True)
    chunks = ChunkFile(part / "data.bin", manifest)
    await _download(node, peer_id, manifest, chunks)
    t_download = time.perf_counter()
    snapshot = await asyncio.to_thread(verify_snapshot, manifest, chunks.path, genesis)

    async def fetch(height: int) -> BlockRecord:
        raw = await node.request(peer_id, "block", encode(height), timeout=CHUNK_TIMEOUT)
        try:
            return BlockRecord.decode(raw)
        except DecodeError as exc:
            raise SnapshotCertificateError(f"block {height} from the peer: {exc}") from None

    await verify_trust(snapshot.record, snapshot.valsets, genesis, trust, fetch)
    with Store(data_dir) as store:
        await asyncio.to_thread(install_snapshot, store, snapshot, genesis)
    log.info(
        "state synced from a snapshot",
        extra={
            "fields": {
                "height": manifest.height,
                "bytes": manifest.size,
                "download_s": round(t_download - t0, 3),
                "total_s": round(time.perf_counter() - t0, 3),
            }
        },
    )
    return manifest.height


async def _download(node: Node, peer_id: bytes, manifest: Manifest, chunks: ChunkFile) -> None:
    """Every chunk, WINDOW requests in flight; each is checked as it arrives
    (SnapshotChunkError stops at the first bad one)."""
    queue = list(range(len(manifest.chunks)))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index = queue.pop()
            payload = encode([manifest.hash, index])
            for attempt in range(RETRIES + 1):
                try:
                    data = await node.request(
                        peer_id, "snapshot_chunk", payload, timeout=CHUNK_TIMEOUT
                    )
                    break
                except RemoteError as exc:
                    if exc.remote_code != RateLimitedError.code or attempt == RETRIES:
                        raise
                    await asyncio.sleep(0.25 * (attempt + 1))
            await asyncio.to_thread(chunks.put, index, data)

    tasks = [asyncio.ensure_future(worker()) for _ in range(WINDOW)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_KEEP",
    "SnapshotGoneError",
    "StateSync",
    "Trust",
    "state_sync",
    "verify_trust",
]
