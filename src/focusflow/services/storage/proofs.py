"""Proofs of state, made and checked: space, time, work, and retrievability.

Each proof answers a *challenge* the prover could not know in advance (the
chain derives it from a committed block's hash, ``modules.proofs``), and each
is checked by code, never taken on the prover's word:

* **space** (Chia's proof of space, through ``chiapos``): a plot of ``2**k``
  entries is made once from a *plot id* bound to the prover's key
  (``plot_id = SHA-256(public key || seed)``); a challenge has on average one
  proof in a plot, found by a few reads of the plot file and checked with
  ``Verifier.validate_proof``, which yields the proof's *quality*;
* **time** (a Wesolowski VDF over an imaginary-quadratic class group, through
  ``chiavdf``): ``iterations`` sequential squarings of the generator in the
  group whose discriminant the challenge seeds; the output and its proof
  (100 bytes each) check in milliseconds however long the squarings took;
* **work**: a nonce with ``SHA-256(challenge || nonce)`` under a target of
  ``bits`` leading zero bits;
* **retrievability** of a blob (``storage.dag``): the chunk holding a byte
  offset the challenge picks, with every DAG node from the root down to it,
  each hashing to the CID its parent names; only a holder of the chunk can
  answer, and the answer is a few hundred KiB at most.

Proofs of stake are the state's own Merkle proofs (``store.smt``), checked
against a committed header's state root (``modules.proofs``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from focusflow.core.errors import FocusflowError
from focusflow.services.storage import dag
from focusflow.services.storage.chunk_store import ChunkStore

#: Smallest plot a test or private network may use (chiapos refuses less), and
#: the largest this code plots or checks.
K_MIN = 18
K_MAX = 50
#: The class group's discriminant size (Chia's).
DISCRIMINANT_BITS = 1024
#: Bytes of a VDF's output and of its proof (a compressed class-group form each).
FORM_BYTES = 100
#: The class group's generator: the form (2, 1, ...) as chiavdf serializes it.
GENERATOR = bytes([0x08]) + bytes(FORM_BYTES - 1)
#: Most iterations a VDF claim may name (about 20 minutes of squarings here).
MAX_ITERATIONS = 2_000_000_000
#: Largest proof of space (chiapos: 64 * k bits).
MAX_SPACE_PROOF = 8 * K_MAX


class ProofOfStateError(FocusflowError):
    """A proof that does not verify (or is malformed): never accepted."""

    code = "bad_proof_of_state"


def _challenge(challenge: bytes) -> bytes:
    if not isinstance(challenge, bytes) or len(challenge) != 32:
        raise ProofOfStateError("a challenge is 32 bytes")
    return challenge


# --- space -------------------------------------------------------------------


def plot_id(public_key: bytes, seed: bytes) -> bytes:
    """The id of a plot bound to ``public_key``: nobody else can claim it."""
    return hashlib.sha256(b"focusflow/plot/" + public_key + seed).digest()


@dataclass(frozen=True)
class Plot:
    path: Path
    plot_id: bytes
    k: int


def make_plot(directory: Path, public_key: bytes, k: int, seed: bytes | None = None) -> Plot:
    """Plot ``2**k`` entries for ``public_key`` into ``directory`` (k = 18: about
    1 s and 4 MB here; k = 32, Chia's mainnet size, hours and 100 GB)."""
    import chiapos

    if not K_MIN <= k <= K_MAX:
        raise ProofOfStateError(f"a plot's k is {K_MIN}..{K_MAX}")
    seed = os.urandom(32) if seed is None else seed
    pid = plot_id(public_key, seed)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"plot-k{k}-{pid.hex()[:16]}.plot"
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        chiapos.DiskPlotter().create_plot_disk(
            scratch, scratch, str(directory), name, k, public_key, pid, 300, 32, 2000, 1, False
        )
    return Plot(directory / name, pid, k)


def prove_space(plot: Plot, challenge: bytes) -> list[bytes]:
    """Every proof the plot holds for ``challenge`` (often none, sometimes several)."""
    import chiapos

    prover = chiapos.DiskProver(str(plot.path))
    qualities = prover.get_qualities_for_challenge(_challenge(challenge))
    return [bytes(prover.get_full_proof(challenge, i)) for i in range(len(qualities))]


def verify_space(pid: bytes, k: int, challenge: bytes, proof: bytes) -> bytes:
    """The proof's quality (32 bytes); ProofOfStateError if it does not verify."""
    import chiapos

    if len(pid) != 32 or not K_MIN <= k <= K_MAX or len(proof) != 8 * k:
        raise ProofOfStateError(
            f"a proof of space is 8k bytes for a 32-byte plot id, k {K_MIN}..{K_MAX}"
        )
    quality = chiapos.Verifier().validate_proof(pid, k, _challenge(challenge), proof)
    if quality is None:
        raise ProofOfStateError("the proof of space does not verify")
    return bytes(quality)


# --- time --------------------------------------------------------------------


def prove_time(challenge: bytes, iterations: int) -> bytes:
    """The VDF's output and proof (200 bytes) after ``iterations`` squarings."""
    import chiavdf

    if not 0 < iterations <= MAX_ITERATIONS:
        raise ProofOfStateError(f"iterations are 1..{MAX_ITERATIONS}")
    out = chiavdf.prove(_challenge(challenge), GENERATOR, DISCRIMINANT_BITS, iterations, "")
    return bytes(out[: 2 * FORM_BYTES])


def verify_time(challenge: bytes, iterations: int, output: bytes) -> None:
    """Refuse a VDF output and proof that is not ``iterations`` squarings of the
    generator in the challenge's class group."""
    import chiavdf

    if not 0 < iterations <= MAX_ITERATIONS or len(output) != 2 * FORM_BYTES:
        raise ProofOfStateError(
            f"a proof of time is {2 * FORM_BYTES} bytes, 1..{MAX_ITERATIONS} iterations"
        )
    discriminant = chiavdf.create_discriminant(_challenge(challenge), DISCRIMINANT_BITS)
    try:
        ok = chiavdf.verify_n_wesolowski(
            discriminant, GENERATOR, output, iterations, DISCRIMINANT_BITS, 0
        )
    except (RuntimeError, ValueError):
        ok = False
    if not ok:
        raise ProofOfStateError("the proof of time does not verify")


# --- work --------------------------------------------------------------------


def _leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return 256 - value.bit_length()


def prove_work(challenge: bytes, bits: int, start: int = 0) -> bytes:
    """The first 8-byte nonce from ``start`` meeting ``bits`` (2**bits hashes on average)."""
    _challenge(challenge)
    if not 0 <= bits <= 64:
        raise ProofOfStateError("work is 0..64 bits")
    # a digest meets the target when, read as a big-endian number, it is below
    # 2**(256 - bits): for equal lengths, bytes compare as those numbers do
    limit = (1 << (256 - bits)).to_bytes(33, "big")[1:] if bits else b"\xff" * 33
    sha256, nonce = hashlib.sha256, start
    while sha256(challenge + nonce.to_bytes(8, "big")).digest() >= limit:
        nonce += 1
    return nonce.to_bytes(8, "big")


def verify_work(challenge: bytes, nonce: bytes, bits: int) -> None:
    if len(nonce) != 8 or not 0 <= bits <= 64:
        raise ProofOfStateError("a proof of work is an 8-byte nonce, 0..64 bits")
    if _leading_zero_bits(hashlib.sha256(_challenge(challenge) + nonce).digest()) < bits:
        raise ProofOfStateError(f"the proof of work has fewer than {bits} leading zero bits")


# --- retrievability ----------------------------------------------------------


def challenge_offset(challenge: bytes, size: int) -> int:
    """The byte of a blob of ``size`` bytes that ``challenge`` asks for."""
    if size <= 0:
        raise ProofOfStateError("an empty blob has no byte to ask for")
    return (
        int.from_bytes(hashlib.sha256(b"focusflow/pin/" + _challenge(challenge)).digest(), "big")
        % size
    )


def prove_retrievability(store: ChunkStore, root: bytes, offset: int) -> list[bytes]:
    """The blocks from ``root`` down to the chunk holding byte ``offset``."""
    path = []
    cid = root
    for _ in range(dag.MAX_DEPTH + 2):
        data = store.block(cid)
        if data is None:
            raise ProofOfStateError(f"block {cid.hex()} of blob {root.hex()} is not here")
        path.append(data)
        if dag.codec_of(cid) == dag.RAW:
            return path
        for link in dag.decode_node(data):
            if offset < link.size:
                cid = link.cid
                break
            offset -= link.size
        else:
            raise ProofOfStateError("the offset is past the blob's end")
    raise ProofOfStateError(f"blob {root.hex()} is deeper than {dag.MAX_DEPTH} levels")


def verify_retrievability(root: bytes, size: int, offset: int, path: list[bytes]) -> None:
    """Refuse a path that does not lead, hash by hash, from ``root`` to the chunk
    holding byte ``offset`` of a blob of ``size`` bytes."""
    if not 0 < len(path) <= dag.MAX_DEPTH + 1:
        raise ProofOfStateError(f"a retrievability proof is 1..{dag.MAX_DEPTH + 1} blocks")
    cid, expected = root, size
    try:
        for i, data in enumerate(path):
            if len(data) > (dag.CHUNK_MAX if dag.codec_of(cid) == dag.RAW else dag.MAX_NODE_BYTES):
                raise ProofOfStateError("a block of the proof is over its kind's size")
            dag.verify_block(cid, data)
            if dag.codec_of(cid) == dag.RAW:
                if len(data) != expected or i != len(path) - 1 or not 0 <= offset < len(data):
                    raise ProofOfStateError("the proof's chunk is not the one asked for")
                return
            links = dag.decode_node(data)
            if sum(link.size for link in links) != expected:
                raise ProofOfStateError("a node of the proof is not the size its parent says")
            for link in links:
                if offset < link.size:
                    cid, expected = link.cid, link.size
                    break
                offset -= link.size
            else:
                raise ProofOfStateError("the offset is past the blob's end")
    except dag.BlobError as exc:
        raise ProofOfStateError(
            f"the retrievability proof does not verify: {exc.message}"
        ) from None
    raise ProofOfStateError("the proof ends before a chunk")


__all__ = [
    "DISCRIMINANT_BITS",
    "K_MIN",
    "Plot",
    "ProofOfStateError",
    "challenge_offset",
    "make_plot",
    "plot_id",
    "prove_retrievability",
    "prove_space",
    "prove_time",
    "prove_work",
    "verify_retrievability",
    "verify_space",
    "verify_time",
    "verify_work",
]
