"""Checking a proved query answer without trusting the node that gave it.

A proved answer (``POST /v1/query`` with ``"prove": true``) carries, besides its
rows, the base facts each row was derived from, the state keys that commit
them and a sparse-Merkle proof of each key against the answer's state root.
:func:`verify_query_answer` checks, in order:

1. every key's value against ``state_root`` (inclusion or exclusion proof);
2. every fact against its key's value: a link is one of the pairs of its
   ``/graph/links`` message (and a neuron's link also its author), a particle
   appears in one, a name record points at the particle, an account holds the
   balance;
3. every row against the facts: the program is evaluated again over the
   proven facts alone (``FactSource``) and each row must come out.

Which block the root belongs to is a separate question: the caller compares
``state_root`` with a header it trusts (the light client's verified header,
or the node's block as ``focusflow query verify --node`` does).
"""

from __future__ import annotations

from typing import Any

from focusflow.core.cid import cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.keys import decode_address
from focusflow.light.errors import BadProofError, MalformedAnswerError, WrongValueError
from focusflow.query import FactSource, run
from focusflow.state_schema.accounts import account_key
from focusflow.state_schema.links import LINKS_PREFIX
from focusflow.state_schema.names import NAME_PREFIX
from focusflow.store import Proof, verify_proof


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedAnswerError(f"{what} is not hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedAnswerError(f"{what} is not hex") from None


def _link_pairs(value: bytes) -> tuple[bytes, set[tuple[bytes, bytes]]]:
    try:
        neuron, links = decode(value, "links message")
        return neuron, {(bytes(a), bytes(b)) for a, b in links}
    except (DecodeError, TypeError, ValueError):
        raise MalformedAnswerError("a links message does not decode") from None


def _check_fact(fact: dict[str, Any], values: dict[bytes, bytes | None]) -> None:
    # Any JSON values: a wrong type fails below and is reported as such.
    rel, key_hex = fact.get("relation"), fact.get("key")
    vals: Any = fact.get("values")
    if key_hex is None:
        raise BadProofError(f"the fact {rel}{vals} has no state key: it cannot be proven")
    key = _hex(key_hex, "a fact's key")
    if key not in values:
        raise MalformedAnswerError(f"the key of {rel}{vals} has no proof")
    value = values[key]
    try:
        if rel in ("link", "neuron_link", "particle"):
            if not key.startswith(LINKS_PREFIX) or value is None:
                raise WrongValueError(f"{rel}{vals}: its key is no link message")
            neuron, pairs = _link_pairs(value)
            if rel == "particle":
                p = cid_to_bytes(vals[0])
                ok = any(p in pair for pair in pairs)
            else:
                pair = (cid_to_bytes(vals[-2]), cid_to_bytes(vals[-1]))
                ok = pair in pairs and (rel == "link" or decode_address(vals[0]) == neuron)
        elif rel == "name":
            ok = (
                key == NAME_PREFIX + str(vals[0]).encode("utf-8")
                and value is not None
                and bytes(decode(value, "name")[0]) == cid_to_bytes(vals[1])
            )
        elif rel == "balance":
            record = decode(value, "account") if value is not None else [0]
            ok = key == account_key(decode_address(vals[0])) and int(record[0]) == vals[1]
        else:
            raise MalformedAnswerError(f"{rel} facts are not provable")
    except (FocusflowError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, (WrongValueError, MalformedAnswerError)):
            raise
        raise WrongValueError(f"{rel}{vals} does not match its proven value: {exc}") from None
    if not ok:
        raise WrongValueError(f"{rel}{vals} is not what its proven state value says")


def verify_query_answer(doc: dict[str, Any]) -> dict[str, Any]:
    """Check a proved answer (see the module's docstring); returns a summary."""
    try:
        proofs = doc["proofs"]
        root = _hex(doc["state_root"], "state_root")
        program, output, rows = doc["program"], doc["relation"], doc["rows"]
        keys, facts, cited = proofs["keys"], proofs["facts"], proofs["rows"]
    except (KeyError, TypeError):
        raise MalformedAnswerError(
            "not a proved answer: rows, proofs or state_root missing"
        ) from None
    if len(cited) != len(rows):
        raise MalformedAnswerError("proofs.rows must cite facts for every row")
    values: dict[bytes, bytes | None] = {}
    for key_hex, entry in keys.items():
        key = _hex(key_hex, "a key")
        value = None if entry.get("value") is None else _hex(entry["value"], "a value")
        try:
            proof = Proof.decode(_hex(entry.get("proof"), "a proof"))
        except (DecodeError, ValueError):
            raise MalformedAnswerError(f"the proof of {key!r} does not decode") from None
        if not verify_proof(root, key, value, proof):
            raise BadProofError(f"the proof of {key!r} does not verify against {root.hex()}")
        values[key] = value
    for fact in facts:
        _check_fact(fact, values)
    grouped: dict[str, list[list[object]]] = {}
    for fact in facts:
        grouped.setdefault(fact["relation"], []).append(list(fact["values"]))
    for row_facts in cited:
        if not all(isinstance(i, int) and 0 <= i < len(facts) for i in row_facts):
            raise MalformedAnswerError("a row cites a fact that is not there")
    source = FactSource(grouped)
    try:
        derived = {tuple(r) for r in run(program, source, output=output).rows}
    finally:
        source.close()
    for row in rows:
        if tuple(row) not in derived:
            raise WrongValueError(f"the row {row} does not follow from the proven facts")
    return {"rows": len(rows), "facts": len(facts), "keys": len(keys), "state_root": root.hex()}
