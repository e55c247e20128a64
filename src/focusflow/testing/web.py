"""Serving an app on loopback, a headless browser, and a chain whose answers the
web page's verified mode checks: what the web page's tests and the benchmark of
its checks share.

:class:`VerifiedChain` is a header of a real state (accounts, a particle list,
a focus record and vector) with the validator set that decides it, built with
the chain's own Python code; :data:`VERIFY_PAGE` imports ``static/verify.js``
into a page as ``window.V``, and :data:`VERIFY_HEADER` and
:data:`VERIFY_FOCUS` run its header and focus checks on that chain's answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import uvicorn

from focusflow.chain.block import Header, sign_certificate
from focusflow.chain.focus_commit import focus_root
from focusflow.chain.focus_spec import FOCUS_CHUNK, FOCUS_KEY, SCALE, particle_chunk_key
from focusflow.consensus.certificate import CommitCertificate, encode_certificate
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.encoding import encode
from focusflow.core.hashing import merkle_proof, merkle_root
from focusflow.core.keys import KeyPair
from focusflow.store import smt

if TYPE_CHECKING:
    from uvicorn._types import ASGIApplication

#: The chain id of :class:`VerifiedChain`'s headers.
CHAIN_ID = "focusflow-test-verified"

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """A Chromium on this machine: $CHROMIUM, then the usual names on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and os.path.isfile(explicit):
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    """A TCP port free on loopback now (another socket may take it before use)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(app: ASGIApplication, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn on a loopback port in a thread; yields its URL.

    On exit the server closes its connections, runs the app's lifespan shutdown
    and closes its loop in its own thread, which must end: a connection left
    open there would fail to close with the loop.
    """
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "server did not stop"


def keys(n: int, base: int = 1) -> list[KeyPair]:
    return [KeyPair.from_seed(bytes([base + i]) * 32) for i in range(n)]


def set_of(signers: list[KeyPair], powers: Sequence[int]) -> ValidatorSet:
    return ValidatorSet.create({k.public_key: p for k, p in zip(signers, powers, strict=True)})


def validators_json(vset: ValidatorSet) -> list[dict[str, Any]]:
    return [{"public_key": v.public_key.hex(), "power": v.power} for v in vset.validators]


class VerifiedChain:
    """A header of a real state (accounts, a particle list, a focus record and
    vector) and the validator set that decides it."""

    def __init__(
        self, powers: Sequence[int] = (40, 30, 20, 10), base: int = 1, n_particles: int = 2500
    ) -> None:
        self.keys = keys(len(powers), base)
        self.vset = set_of(self.keys, powers)
        self.cids = [cid_to_bytes(cid_of_text(f"particle {i}")) for i in range(n_particles)]
        rng = np.random.default_rng(7)
        self.q = rng.integers(0, SCALE // 100, n_particles, dtype=np.uint64)
        self.focus_root = focus_root(self.q)
        self.state = {
            FOCUS_KEY: encode(
                {"root": self.focus_root, "particles": n_particles, "scale": SCALE, "chunk": 1024}
            ),
            b"/kv/params": encode({"x": 1}),
        }
        for chunk in range(0, n_particles, 1024):
            self.state[particle_chunk_key(chunk // 1024)] = encode(self.cids[chunk : chunk + 1024])
        for i in range(40):
            self.state[b"/token/acct/" + bytes([i]) * 20] = encode([10**12 + i, i, 0])
        self.root, self.nodes = self.build(self.state)
        self.header = self.make_header(7)

    @staticmethod
    def build(state: dict[bytes, bytes]) -> tuple[bytes, dict[bytes, bytes]]:
        nothing: dict[bytes, bytes] = {}
        return smt.update(nothing.get, smt.EMPTY, list(state.items()))

    def make_header(self, height: int, **change: Any) -> Header:
        fields: dict[str, Any] = dict(
            chain_id=CHAIN_ID,
            height=height,
            time_ms=1_700_000_000_000 + height,
            parent=bytes([9]) * 32,
            txs_root=merkle_root([]),
            state_root=self.root,
            focus_root=self.focus_root,
            data_root=bytes(32),
            evidence_root=merkle_root([]),
            validators_hash=self.vset.hash(),
            proposer=self.keys[0].address_raw,
            last_commit=bytes([8]) * 32,
        )
        fields.update(change)
        return Header(**fields)

    def validators(self) -> list[dict[str, Any]]:
        return validators_json(self.vset)

    def moved_to(
        self, signers: list[KeyPair], powers: Sequence[int], height: int = 9
    ) -> dict[str, Any]:
        """The answer for a header at ``height`` decided by a new set."""
        moved = set_of(signers, powers)
        header = self.make_header(height, validators_hash=moved.hash())
        cert = sign_certificate(signers, CHAIN_ID, height, header.hash)
        return {**self.answer(header=header, cert=cert), "validators": validators_json(moved)}

    def certificate(
        self, signers: list[KeyPair] | None = None, header: Header | None = None
    ) -> CommitCertificate:
        header = header or self.header
        return sign_certificate(signers or self.keys, header.chain_id, header.height, header.hash)

    def answer(
        self,
        header: Header | None = None,
        cert: CommitCertificate | bytes | None = None,
        **over: Any,
    ) -> dict[str, Any]:
        """What verifyHeader takes, as the page gets it from a node."""
        header = header or self.header
        cert = cert if cert is not None else self.certificate(header=header)
        out = {
            "headerHex": encode(header.to_cbor()).hex(),
            "certHex": cert.hex() if isinstance(cert, bytes) else encode_certificate(cert).hex(),
            "validators": self.validators(),
            "hash": header.hash.hex(),
            "height": header.height,
        }
        out.update(over)
        return out

    def prove(self, key: bytes) -> tuple[str | None, str]:
        value, proof = self.state.get(key), smt.prove(self.nodes.get, self.root, key)
        assert smt.verify_proof(self.root, key, value, proof)
        return (None if value is None else value.hex()), proof.encode().hex()

    def particle_proof(self, index: int) -> dict[str, Any]:
        chunk_values, particles_proof = self.prove(particle_chunk_key(index // 1024))
        record, record_proof = self.prove(FOCUS_KEY)
        raw = self.q.astype("<u8").tobytes()
        chunks = [raw[i : i + 8 * FOCUS_CHUNK] for i in range(0, len(raw), 8 * FOCUS_CHUNK)]
        c = index // FOCUS_CHUNK
        return {
            "index": index,
            "focus_q": int(self.q[index]),
            "index_proof": {"value": chunk_values, "proof": particles_proof},
            "focus_record": {"value": record, "proof": record_proof},
            "chunk": chunks[c].hex(),
            "path": [p.hex() for p in merkle_proof(chunks, c)],
        }


#: A page function that imports ``/static/verify.js`` as ``window.V`` and
#: defines ``window.attempt(fn)``: "ok", or the name of the check that refused.
VERIFY_PAGE = """async () => {
  window.V = await import('/static/verify.js');
  // the check that refuses fn's arguments, or "ok"
  window.attempt = async (fn) => {
    try { await fn(); return "ok"; }
    catch (e) { if (e instanceof V.VerifyError) return e.check; throw e; }
  };
}"""

#: ``verifyHeader`` on :meth:`VerifiedChain.answer`'s fields (and ``trusted``).
VERIFY_HEADER = """async (a) => {
  const t = a.trusted;
  const trusted = t && {chain_id: t.chain_id, hash: V.fromHex(t.hash),
                        validators: t.validators && V.parseValidators(t.validators)};
  return attempt(() => V.verifyHeader({
    headerBytes: V.fromHex(a.headerHex),
    certBytes: a.certHex === null ? null : V.fromHex(a.certHex),
    validators: V.parseValidators(a.validators), hash: a.hash ?? undefined,
    height: a.height ?? undefined, chainId: a.chainId, trusted}));
}"""

#: ``verifyParticleFocus`` on a header, a CID and :meth:`VerifiedChain.particle_proof`.
VERIFY_FOCUS = """async (a) => attempt(async () => {
  const h = V.decodeHeader(V.fromHex(a.header));
  const r = await V.verifyParticleFocus(h, V.cidToBytes(a.cid), a.proof);
  window.proved = String(r.q);
})"""


__all__ = [
    "CHAIN_ID",
    "CHROMIUM_NAMES",
    "VERIFY_FOCUS",
    "VERIFY_HEADER",
    "VERIFY_PAGE",
    "VerifiedChain",
    "find_chromium",
    "free_port",
    "keys",
    "serve",
    "set_of",
    "validators_json",
]
