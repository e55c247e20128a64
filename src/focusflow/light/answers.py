"""Answers checked against a verified header's roots: nothing a node states is taken
on its word.

Each function takes a node's answer from a ``/v1/light/proofs/...`` route and the
verified :class:`~focusflow.light.verify.LightBlock` of the height it names, and
returns only what the proofs show: a state value through its sparse-Merkle
inclusion (or exclusion) proof against ``state_root``, a particle's focus
through the committed particle order, the focus record and the chunk's RFC 6962
path to ``focus_root``, a link through the proof of the message that made it.
A proof that fails is :class:`BadProofError`; a stated value that differs from
the proven one is :class:`WrongValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from focusflow.chain.focus_spec import FOCUS_CHUNK, FOCUS_KEY, particle_chunk_key
from focusflow.chain.valsets import decode_set, valset_key
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.hashing import verify_merkle_proof
from focusflow.core.keys import encode_address
from focusflow.core.snapshot_tree import verify_snapshot_path
from focusflow.light.errors import BadProofError, MalformedAnswerError, WrongValueError
from focusflow.light.verify import LightBlock
from focusflow.state_schema.accounts import account_key
from focusflow.state_schema.links import LINKS_KEY_BYTES, LINKS_PREFIX
from focusflow.state_schema.names import NAME_PREFIX
from focusflow.state_schema.rank import SNAPSHOT_KEY, UNIT, SnapshotRecord
from focusflow.store.smt import Proof, verify_proof

#: A node's answer: a JSON object, unchecked until the functions here check it.
AnswerDoc = dict[str, object]


def _hexfield(doc: AnswerDoc, name: str) -> bytes | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedAnswerError(f"{name} is not hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedAnswerError(f"{name} is not hex") from None


def check_anchor(doc: object, block: LightBlock) -> AnswerDoc:
    """The answer names the verified block's height, hash and state root."""
    if not isinstance(doc, dict):
        raise MalformedAnswerError("a proof answer is a JSON object")
    named = (doc.get("height"), doc.get("block_hash"), doc.get("state_root"))
    ours = (block.height, block.hash.hex(), block.header.state_root.hex())
    if named != ours:
        raise WrongValueError(
            f"the answer names block {named[0]} {named[1]} with state root {named[2]}, "
            f"not the verified block {ours[0]} {ours[1]} ({ours[2]})"
        )
    return doc


def proven_value(part: object, key: bytes, block: LightBlock) -> bytes | None:
    """The value of ``key`` (None: absent) that ``part`` ({key, value, proof}) proves."""
    if not isinstance(part, dict):
        raise MalformedAnswerError("a key proof is a JSON object")
    if _hexfield(part, "key") != key:
        raise WrongValueError(f"the node proved key {part.get('key')}, not {key.hex()}")
    value = _hexfield(part, "value")
    raw_proof = _hexfield(part, "proof")
    if raw_proof is None:
        raise MalformedAnswerError("proof is missing")
    try:
        proof = Proof.decode(raw_proof)
    except (DecodeError, ValueError) as exc:
        raise BadProofError(f"proof of {key!r} does not decode: {exc}") from None
    if not verify_proof(block.header.state_root, key, value, proof):
        what = "absence" if value is None else "value"
        raise BadProofError(
            f"the {what} of {key!r} does not verify against the state root of verified "
            f"block {block.height}"
        )
    return value


def _decoded(value: bytes, what: str) -> object:
    try:
        return decode(value, what)
    except DecodeError as exc:
        raise WrongValueError(f"the proven {what} is not canonical CBOR: {exc}") from None


@dataclass(frozen=True)
class AccountAnswer:
    address: str
    balance: int
    nonce: int
    bonded: int
    height: int


def verify_account(doc: object, block: LightBlock, address: bytes) -> AccountAnswer:
    """An account's balance, nonce and bond (zeros when proven absent)."""
    doc = check_anchor(doc, block)
    value = proven_value(doc, account_key(address), block)
    balance = nonce = bonded = 0
    if value is not None:
        row = _decoded(value, "account")
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(x, int) for x in row)):
            raise WrongValueError("the proven account is not [balance, nonce, bonded]")
        balance, nonce, bonded = row
    return AccountAnswer(encode_address(address), balance, nonce, bonded, block.height)


@dataclass(frozen=True)
class NameAnswer:
    name: str
    cid: str | None
    owner: str | None
    height: int


def verify_name(doc: object, block: LightBlock, name: str) -> NameAnswer:
    """A name's particle and owner, or proven not registered (both None)."""
    doc = check_anchor(doc, block)
    value = proven_value(doc, NAME_PREFIX + name.encode("utf-8"), block)
    if value is None:
        return NameAnswer(name, None, None, block.height)
    row = _decoded(value, "name record")
    if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, bytes) for x in row)):
        raise WrongValueError("the proven name record is not [cid, owner]")
    try:
        cid = cid_from_bytes(row[0])
        owner = encode_address(row[1])
    except (FocusflowError, ValueError) as exc:
        raise WrongValueError(f"the proven name record is malformed: {exc}") from None
    return NameAnswer(name, cid, owner, block.height)


def verify_next_set(doc: object, block: LightBlock) -> ValidatorSet | None:
    """The set the state of ``block`` records for ``block.height + 1`` (None: unchanged)."""
    doc = check_anchor(doc, block)
    value = proven_value(doc, valset_key(block.height + 1), block)
    if value is None:
        return None
    try:
        return decode_set(value)
    except DecodeError as exc:
        raise WrongValueError(f"the proven validator set record is malformed: {exc}") from None


@dataclass(frozen=True)
class FocusAnswer:
    particle: str
    index: int
    focus_q: int
    focus: float
    height: int


def _int(doc: AnswerDoc, name: str) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedAnswerError(f"{name} is not a non-negative integer")
    return value


def _focus_record(doc: AnswerDoc, block: LightBlock) -> tuple[int, int]:
    """(particles, scale) of the proven ``/graph/focus`` whose root is the header's."""
    value = proven_value(doc.get("focus_record"), FOCUS_KEY, block)
    if value is None:
        raise WrongValueError(f"block {block.height}'s state proves no focus record")
    record = _decoded(value, "focus record")
    if not isinstance(record, dict):
        raise WrongValueError("the proven focus record is not a map")
    if record.get("root") != block.header.focus_root:
        raise WrongValueError("the proven focus record's root is not the header's focus root")
    n, scale, chunk = record.get("particles"), record.get("scale"), record.get("chunk")
    if not (isinstance(n, int) and isinstance(scale, int) and scale > 0 and chunk == FOCUS_CHUNK):
        raise WrongValueError("the proven focus record is malformed")
    return n, scale


def verify_particle(doc: object, block: LightBlock, cid: str) -> FocusAnswer:
    """A particle's committed focus, proven down to the header's focus root."""
    doc = check_anchor(doc, block)
    raw = cid_to_bytes(cid)
    i = _int(doc, "index")
    order = proven_value(doc.get("index_proof"), particle_chunk_key(i // FOCUS_CHUNK), block)
    entries = None if order is None else _decoded(order, "particle chunk")
    if not isinstance(entries, list) or len(entries) <= i % FOCUS_CHUNK:
        raise WrongValueError(f"the proven particle order has no index {i}")
    if entries[i % FOCUS_CHUNK] != raw:
        raise WrongValueError(f"particle {i} of the proven order is not {cid}")
    n, scale = _focus_record(doc, block)
    if i >= n:
        raise WrongValueError(f"index {i} is past the committed vector's {n} values")
    c = i // FOCUS_CHUNK
    chunks = -(-n // FOCUS_CHUNK)
    chunk = _hexfield(doc, "chunk") or b""
    want = 8 * min(FOCUS_CHUNK, n - c * FOCUS_CHUNK)
    path_hex: Any = doc.get("path")  # any JSON value: a wrong one fails below
    try:
        path = [bytes.fromhex(h) for h in path_hex]
    except (TypeError, ValueError):
        raise MalformedAnswerError("path is not a list of hex hashes") from None
    if len(chunk) != want or not verify_merkle_proof(
        block.header.focus_root, chunk, c, chunks, path
    ):
        raise BadProofError(
            f"focus chunk {c} does not verify against the focus root of verified block "
            f"{block.height}"
        )
    j = i % FOCUS_CHUNK
    q = int.from_bytes(chunk[8 * j : 8 * j + 8], "little")
    if doc.get("focus_q") != q:
        raise WrongValueError(f"the node states focus_q {doc.get('focus_q')}, the proof {q}")
    return FocusAnswer(cid_from_bytes(raw), i, q, q / scale, block.height)


#: A link the proofs show, with the neuron whose message made it (bech32).
ProvenLink = TypedDict("ProvenLink", {"from": str, "to": str, "neuron": str})


@dataclass(frozen=True)
class LinksAnswer:
    particle: str
    direction: str
    links: list[ProvenLink]
    unproven: int
    total_stated: int
    height: int


def _message_links(value: bytes) -> tuple[bytes, list[Any]]:
    """``(neuron, pairs)`` of a proven link message; the pairs stay decoded CBOR
    of any shape, compared with a link as they are."""
    row = _decoded(value, "link message")
    if not (isinstance(row, list) and len(row) == 2 and isinstance(row[1], list)):
        raise WrongValueError("the proven link message is not [neuron, links]")
    return row[0], row[1]


def verify_links(doc: object, block: LightBlock, cid: str, direction: str) -> LinksAnswer:
    """A page of a particle's links, each inside a proven link message.

    Proven: every returned link exists (its message is in the state). Not
    provable: that the page holds all of them (no per-particle index is
    committed), and links no message made (genesis links), counted in
    ``unproven`` and left out.
    """
    doc = check_anchor(doc, block)
    raw = cid_to_bytes(cid)
    messages = doc.get("messages")
    links = doc.get("links")
    if not isinstance(messages, list) or not isinstance(links, list):
        raise MalformedAnswerError("links and messages are lists")
    proven: list[tuple[bytes, list[Any]]] = []
    for part in messages:
        key = _hexfield(part, "key") if isinstance(part, dict) else None
        if key is None or len(key) != LINKS_KEY_BYTES or not key.startswith(LINKS_PREFIX):
            raise WrongValueError("a proven message key is not a /graph/links key")
        value = proven_value(part, key, block)
        if value is None:
            raise BadProofError(f"link message {key.hex()} is proven absent")
        proven.append(_message_links(value))
    out: list[ProvenLink] = []
    unproven = 0
    for link in links:
        if not isinstance(link, dict):
            raise MalformedAnswerError("a link is a JSON object")
        try:
            src, dst = cid_to_bytes(link["from"]), cid_to_bytes(link["to"])
        except (KeyError, TypeError, FocusflowError):
            raise MalformedAnswerError("a link's from/to is not a CID") from None
        if (src if direction == "out" else dst) != raw:
            raise WrongValueError(f"link {link['from']} -> {link['to']} does not touch {cid}")
        m = link.get("message")
        if m is None:
            unproven += 1
            continue
        if not isinstance(m, int) or not 0 <= m < len(proven):
            raise MalformedAnswerError("a link names no proven message")
        neuron, pairs = proven[m]
        if not any(len(p) >= 2 and p[0] == src and p[1] == dst for p in pairs):
            raise WrongValueError(
                f"link {link['from']} -> {link['to']} is not in its proven message"
            )
        out.append({"from": link["from"], "to": link["to"], "neuron": encode_address(neuron)})
    total = doc.get("total")
    return LinksAnswer(
        cid_from_bytes(raw),
        direction,
        out,
        unproven,
        total if isinstance(total, int) else -1,
        block.height,
    )


__all__ = [
    "AccountAnswer",
    "FocusAnswer",
    "LinksAnswer",
    "NameAnswer",
    "ProvenLink",
    "check_anchor",
    "proven_value",
    "verify_account",
    "verify_links",
    "verify_name",
    "verify_next_set",
    "verify_particle",
]


@dataclass(frozen=True)
class GlobalFocusAnswer:
    """A particle's global focus in a hub's snapshot, as the proofs show it."""

    particle: str
    focus_q: int
    focus: float
    round: int
    #: The hub block that committed the snapshot, and the one the proof is at.
    snapshot_height: int
    height: int
    stale: tuple[int, ...]


def verify_global_particle(doc: object, block: LightBlock, cid: str) -> GlobalFocusAnswer:
    """A particle's global focus, proven down to the hub's verified state root:
    the snapshot record (its root) by the state proof, the particle's leaf by
    its path to that root."""
    doc = check_anchor(doc, block)
    raw = cid_to_bytes(cid)
    stored = proven_value(doc.get("record"), SNAPSHOT_KEY, block)
    if stored is None:
        raise WrongValueError("the hub's state holds no global snapshot")
    try:
        record = SnapshotRecord(*_decoded(stored, "snapshot record"))  # type: ignore[misc]
    except TypeError:
        raise MalformedAnswerError("the snapshot record has the wrong shape") from None
    path_doc = doc.get("path")
    if not isinstance(path_doc, dict):
        raise MalformedAnswerError("path is not an object")
    hashes: Any = path_doc.get("hashes")
    try:
        path = [bytes.fromhex(h) for h in hashes]
    except (TypeError, ValueError):
        raise MalformedAnswerError("path.hashes is not a list of hex hashes") from None
    index, size, q = _int(path_doc, "index"), _int(path_doc, "size"), _int(doc, "focus_q")
    if size != record.particles:
        raise WrongValueError(
            f"the path is in a tree of {size}, the record's has {record.particles}"
        )
    if not verify_snapshot_path(record.root, raw, q, index, size, path):
        raise BadProofError(
            f"{cid} with focus {q} does not verify against the snapshot root of verified "
            f"block {block.height}"
        )
    return GlobalFocusAnswer(
        cid_from_bytes(raw), q, q / UNIT, record.round, record.height, block.height,
        tuple(record.stale),
    )  # fmt: skip
