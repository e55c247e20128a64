"""A chain of headers signed by real keys, without blocks: what light clients are
measured and property-tested against.

:class:`SyntheticChain` makes a header per height whose certificate is signed
(on first request) by the Ed25519 keys of that height's validator set, with the
validator-set history written in a real sparse Merkle state exactly as the
chain writes it (``/token/valset/<first height>`` at the block before), so that
the adjacent rule's state proofs verify. It answers the ``/v1/light`` header and
validator-proof routes in the node's JSON shapes (docs/api.md), so a client
over HTTP cannot tell it from a node's light routes. Nothing else of a block
exists (empty transactions, no focus), which is what lets a benchmark build
10,000 headers in a second.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from focusflow.chain.block import Header, sign_certificate
from focusflow.chain.valsets import encode_set, valset_key
from focusflow.consensus.certificate import CommitCertificate, encode_certificate
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import encode
from focusflow.core.hashing import EMPTY_ROOT, sha256
from focusflow.core.keys import KeyPair
from focusflow.light.verify import HeaderDoc
from focusflow.store import smt

ZERO = bytes(32)


class ValsetProofDoc(TypedDict):
    """``GET /v1/light/proofs/validators/{first}``: a state key's value (None:
    absent) and its proof, anchored at a block; bytes as hex."""

    height: int
    block_hash: str
    state_root: str
    key: str
    value: str | None
    proof: str


class ErrorBody(TypedDict):
    code: str
    message: str


class ErrorDoc(TypedDict):
    """A refusal, as the node's API writes it."""

    error: ErrorBody


def key_of(seed: int) -> KeyPair:
    """A validator key derived from a small integer (the same on every run)."""
    return KeyPair.from_seed(sha256(b"synthetic validator %d" % seed))


@dataclass
class SyntheticChain:
    """Heights ``1..height``; ``sets`` maps first heights (1 first) to ``{seed: power}``.

    ``signers(height, vset)`` picks the keys that sign a height (default: all).
    ``unrecorded``: first heights whose set the state does not record, as a node
    would claim a set change the chain never made.
    """

    chain_id: str
    height: int
    sets: dict[int, dict[int, int]]
    t0_ms: int
    block_ms: int = 1000
    signers: Callable[[int, ValidatorSet], Sequence[bytes]] | None = None
    unrecorded: frozenset[int] = frozenset()
    _headers: list[Header] = field(default_factory=list, repr=False)
    _hashes: list[bytes] = field(default_factory=list, repr=False)
    _certs: dict[int, CommitCertificate] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if 1 not in self.sets:
            raise ValueError("the set of height 1 is required")
        self.starts = sorted(self.sets)
        self.keys = {s: key_of(s) for powers in self.sets.values() for s in powers}
        self.by_public = {k.public_key: k for k in self.keys.values()}
        self.vsets = {
            start: ValidatorSet.create(
                [Validator(self.keys[s].public_key, p) for s, p in powers.items()]
            )
            for start, powers in self.sets.items()
        }
        self._states = self._build_states()
        parent = ZERO
        for h in range(1, self.height + 1):
            header = self._header(h, parent)
            self._headers.append(header)
            parent = header.hash
            self._hashes.append(parent)

    def set_at(self, height: int) -> ValidatorSet:
        return self.vsets[self.starts[bisect.bisect_right(self.starts, height) - 1]]

    def _build_states(self) -> list[tuple[int, bytes, dict[bytes, bytes]]]:
        """(from height, state root, tree nodes) per state: block ``s - 1`` writes set ``s``."""
        states = []
        pairs: list[tuple[bytes, bytes]] = []
        for start in self.starts:
            if start in self.unrecorded:
                continue
            pairs.append((valset_key(start), encode_set(self.vsets[start])))
            no_nodes: dict[bytes, bytes] = {}
            root, nodes = smt.update(no_nodes.get, smt.EMPTY, list(pairs))
            states.append((max(start - 1, 0), root, dict(nodes)))
        return states

    def _state(self, height: int) -> tuple[int, bytes, dict[bytes, bytes]]:
        i = bisect.bisect_right([s[0] for s in self._states], height) - 1
        return self._states[max(i, 0)]

    def _header(self, h: int, parent: bytes) -> Header:
        vset = self.set_at(h)
        return Header(
            self.chain_id,
            h,
            self.t0_ms + h * self.block_ms,
            parent,
            EMPTY_ROOT,
            self._state(h)[1],
            EMPTY_ROOT,
            ZERO,
            EMPTY_ROOT,
            vset.hash(),
            vset.validators[0].address,
            b"",
        )

    def header(self, h: int) -> Header:
        return self._headers[h - 1]

    def certificate(self, h: int) -> CommitCertificate:
        cert = self._certs.get(h)
        if cert is None:
            vset = self.set_at(h)
            who = (
                [v.public_key for v in vset.validators]
                if self.signers is None
                else list(self.signers(h, vset))
            )
            keys = [self.by_public[pk] for pk in who]
            cert = self._certs[h] = sign_certificate(keys, self.chain_id, h, self._hashes[h - 1])
        return cert

    # --- the node's light routes ---------------------------------------------

    def header_doc(self, h: int | None = None) -> HeaderDoc:
        """``GET /v1/light/header/{h}`` (``latest`` when None)."""
        h = self.height if h is None else h
        header = self.header(h)
        return {
            "height": h,
            "hash": header.hash.hex(),
            "chain_id": self.chain_id,
            "header_cbor": encode(header.to_cbor()).hex(),
            "certificate_cbor": encode_certificate(self.certificate(h)).hex(),
            "validators": [
                {"public_key": v.public_key.hex(), "power": v.power}
                for v in self.set_at(h).validators
            ],
        }

    def valset_doc(self, first: int, h: int) -> ValsetProofDoc:
        """``GET /v1/light/proofs/validators/{first}?height={h}``."""
        _, root, nodes = self._state(h)
        key = valset_key(first)
        proof = smt.prove(nodes.get, root, key)
        recorded = first in self.vsets and first not in self.unrecorded
        value = encode_set(self.vsets[first]) if recorded and first <= h + 1 else None
        header = self.header(h)
        return {
            "height": h,
            "block_hash": header.hash.hex(),
            "state_root": header.state_root.hex(),
            "key": key.hex(),
            "value": None if value is None else value.hex(),
            "proof": proof.encode().hex(),
        }

    def answer(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> tuple[int, HeaderDoc | ValsetProofDoc | ErrorDoc]:
        """(status, JSON) of a ``/v1/light`` GET, as a node would answer it."""
        parts = path.strip("/").split("/")
        try:
            if parts[:3] == ["v1", "light", "header"] and len(parts) == 4:
                h = None if parts[3] == "latest" else int(parts[3])
                if h is not None and not 1 <= h <= self.height:
                    return 404, _error("unknown_block", f"no block at height {h}")
                return 200, self.header_doc(h)
            if parts[:4] == ["v1", "light", "proofs", "validators"] and len(parts) == 5:
                at = int((params or {}).get("height", self.height))
                if not 1 <= at <= self.height:
                    return 404, _error("unknown_block", f"no block at height {at}")
                return 200, self.valset_doc(int(parts[4]), at)
        except ValueError:
            return 400, _error("malformed", "not an integer")
        return 404, _error("not_found", path)


def _error(code: str, message: str) -> ErrorDoc:
    return {"error": {"code": code, "message": message}}


__all__ = ["SyntheticChain", "key_of"]
