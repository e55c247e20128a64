"""Cube ledgers: verified from the entries alone; every tampering fails with its code."""

from __future__ import annotations

import json
from unittest import mock

import cbor2
import pytest

from focusflow.core.encoding import encode
from focusflow.core.keys import KeyPair
from focusflow.konomi import ledger as ledger_module
from focusflow.konomi.errors import (
    LedgerBadSignatureError,
    LedgerBrokenLinkError,
    LedgerCrossRefError,
    LedgerError,
    LedgerHashMismatchError,
    LedgerMalformedError,
    LedgerNoQuorumError,
    LedgerOutOfOrderError,
)
from focusflow.konomi.ledger import Entry, Ledger, decode_entry, proposal_digest, verify_ledger
from focusflow.konomi.votes import VOTERS, sign_vote, vertex_keys


def _ledger(cube_id: str = "a", n: int = 6) -> Ledger:
    ledger = Ledger(cube_id, vertex_keys(cube_id.encode() * 32, cube_id))
    for i in range(n):
        ledger.decide(f"proposal {i}".encode())
    return ledger


def _raw(ledger: Ledger) -> list[bytes]:
    return [e.data for e in ledger.entries]


def _fails(entries, code: str, index: int, **kw) -> LedgerError:
    """The ledger fails with ``code`` at ``index``, checked in one pass and split in
    spans over worker processes alike (same error, same message)."""
    with pytest.raises(LedgerError) as info:
        verify_ledger(entries, **kw)
    assert info.value.code == code, info.value
    assert info.value.index == index, info.value
    with (
        mock.patch.object(ledger_module, "_PROCESS_MIN_ENTRIES", 2),
        pytest.raises(LedgerError) as spread,
    ):
        verify_ledger(entries, **kw, processes=2)
    assert (type(spread.value), spread.value.index, str(spread.value)) == (
        type(info.value),
        index,
        str(info.value),
    )
    return info.value


def _rebuilt(entry: Entry, **changes) -> Entry:
    fields = {
        "height": entry.height,
        "prev": entry.prev,
        "payload": entry.payload,
        "refs": entry.refs,
        "votes": entry.votes,
    }
    fields.update(changes)
    return Entry.build(**fields)


def test_an_honest_ledger_verifies_from_its_bytes_alone():
    ledger = _ledger()
    report = verify_ledger(_raw(ledger), expected_head=ledger.head)
    assert report.cube_id == "a" and report.entries == 7 and report.head == ledger.head
    assert report.signatures == 7 * 8 and report.unchecked_refs == 0
    assert verify_ledger(ledger.entries, threads=1) == report
    assert [decode_entry(e.data, i) for i, e in enumerate(ledger.entries)] == ledger.entries
    assert ledger.entries[3].prev == ledger.entries[2].hash
    assert report.to_json()["height"] == 6


def test_a_changed_entry_breaks_its_signatures():
    raw = _raw(_ledger())
    entry = decode_entry(raw[3], 3)
    changed = _rebuilt(entry, payload=b"proposal X")
    _fails([*raw[:3], changed.data, *raw[4:]], "ledger_bad_signature", 3)
    # The same change made in place in the bytes (one byte of the payload).
    flipped = raw[3].replace(b"proposal 2", b"proposal 9")
    assert flipped != raw[3]
    _fails([*raw[:3], flipped, *raw[4:]], "ledger_bad_signature", 3)


def test_reordered_and_dropped_entries_are_out_of_order():
    raw = _raw(_ledger())
    _fails([*raw[:3], raw[4], raw[3], *raw[5:]], "ledger_out_of_order", 3)
    _fails([*raw[:3], *raw[4:]], "ledger_out_of_order", 3)
    _fails(raw[1:], "ledger_out_of_order", 0)
    _fails([], "ledger_out_of_order", 0)


def test_a_dropped_signature_is_caught():
    ledger = _ledger()
    raw = _raw(ledger)
    entry = decode_entry(raw[2], 2)
    fewer = _rebuilt(entry, votes=entry.votes[1:])
    # Seven of eight still decide, but the entry's hash changed: the next link breaks.
    _fails([*raw[:2], fewer.data, *raw[3:]], "ledger_broken_link", 3)
    # At the head nothing follows: a verifier that pins the head catches it.
    head = decode_entry(raw[-1], len(raw) - 1)
    _fails(
        [*raw[:-1], _rebuilt(head, votes=head.votes[1:]).data],
        "ledger_hash_mismatch",
        6,
        expected_head=ledger.head,
    )
    with pytest.raises(LedgerHashMismatchError):
        verify_ledger(raw, expected_head=bytes(32))
    # A vote whose signature was cut off is no vote: malformed.
    body = cbor2.loads(raw[2])
    body["votes"][0] = [body["votes"][0][0]]
    _fails([*raw[:2], encode(body), *raw[3:]], "ledger_malformed", 2)


def test_a_forged_signature_fails():
    raw = _raw(_ledger())
    entry = decode_entry(raw[4], 4)
    impostor = KeyPair.from_seed(b"i" * 32)
    forged = sign_vote(impostor, "a", 4, "NWU", entry.digest).signature
    votes = tuple((v, forged if v == "NWU" else s) for v, s in entry.votes)
    _fails([*raw[:4], _rebuilt(entry, votes=votes).data, *raw[5:]], "ledger_bad_signature", 4)
    # A vertex's real signature moved under another vertex's name fails too.
    swapped = tuple((v, entry.votes[1][1] if v == "NEU" else s) for v, s in entry.votes)
    _fails([*raw[:4], _rebuilt(entry, votes=swapped).data], "ledger_bad_signature", 4)


def test_fewer_than_two_thirds_signers_fail():
    ledger = _ledger(n=2)
    raw = _raw(ledger)
    entry = decode_entry(raw[2], 2)
    for keep in (5, 1, 0):
        short = _rebuilt(entry, votes=entry.votes[:keep])
        err = _fails([*raw[:2], short.data], "ledger_no_quorum", 2)
        assert isinstance(err, LedgerNoQuorumError)
    assert len(_rebuilt(entry, votes=entry.votes[:6]).votes) == 6
    verify_ledger([*raw[:2], _rebuilt(entry, votes=entry.votes[:6]).data])


def test_the_first_failing_entry_is_reported():
    raw = _raw(_ledger())
    bad_sig = decode_entry(raw[2], 2)
    votes = tuple((v, bytes(64)) if v == "SED" else (v, s) for v, s in bad_sig.votes)
    entries = [*raw[:2], _rebuilt(bad_sig, votes=votes).data, *raw[3:]]
    entries[5] = b"\x00garbage"
    _fails(entries, "ledger_bad_signature", 2)
    _fails(entries, "ledger_bad_signature", 2, threads=1)
    _fails([*raw[:5], b"\x00garbage"], "ledger_malformed", 5)


def test_malformed_entries_are_refused_with_their_code():
    raw = _raw(_ledger(n=1))
    body = cbor2.loads(raw[1])
    cases = [
        b"",
        cbor2.dumps([1, 2]),
        cbor2.dumps({**body, "extra": 1}, canonical=True),
        cbor2.dumps({**body, "prev": b"short"}, canonical=True),
        cbor2.dumps({**body, "height": -1}, canonical=True),
        cbor2.dumps({**body, "votes": [["UP", bytes(64)]]}, canonical=True),
        cbor2.dumps({**body, "votes": [body["votes"][1], body["votes"][0]]}, canonical=True),
        cbor2.dumps({**body, "votes": [body["votes"][0], body["votes"][0]]}, canonical=True),
        cbor2.dumps({**body, "refs": {"b": b"x"}}, canonical=True),
        cbor2.dumps(dict(reversed(list(body.items()))), canonical=False),
        raw[1] + b"\x00",
        bytes(40_000),
    ]
    for case in cases:
        if case == raw[1]:
            continue
        _fails([raw[0], case], "ledger_malformed", 1)


def test_cross_references_must_match_the_other_cubes_ledger():
    b = _ledger("b", n=3)
    a = Ledger("a", vertex_keys(b"a" * 32, "a"))
    a.decide(b"first", {"b": b.entries[1].hash})
    a.decide(b"second", {"b": b.head})
    raw_a, raw_b = _raw(a), _raw(b)
    report = verify_ledger(raw_a, {"b": raw_b})
    assert report.unchecked_refs == 0
    assert verify_ledger(raw_a).unchecked_refs == 2
    # Another ledger under b's name, that lacks the referenced heads.
    fork = Ledger("b", vertex_keys(b"b" * 32, "b"))
    fork.decide(b"another history")
    forked = _raw(fork)
    _fails(raw_a, "ledger_cross_ref_mismatch", 1, peers={"b": forked})
    # A reference that goes back in b's ledger.
    c = Ledger("a", vertex_keys(b"a" * 32, "a"))
    c.decide(b"first", {"b": b.head})
    c.decide(b"second", {"b": b.entries[1].hash})
    _fails(_raw(c), "ledger_cross_ref_mismatch", 2, peers={"b": raw_b})
    # The peers' ledgers are verified too.
    with pytest.raises(LedgerBrokenLinkError, match="cross-referenced cube 'b'") as info:
        verify_ledger(
            raw_a,
            {"b": [raw_b[0], raw_b[1], _rebuilt(decode_entry(raw_b[2], 2), prev=bytes(32)).data]},
        )
    assert info.value.index is None


def test_entries_are_bound_to_their_cube():
    """Votes name the cube: a's entries appended under b's genesis do not verify."""
    a, b = _ledger("a", n=2), _ledger("b", n=2)
    e = decode_entry(a.entries[1].data, 1)
    moved = _rebuilt(e, prev=b.entries[0].hash)
    _fails([b.entries[0].data, moved.data], "ledger_bad_signature", 1)


def test_decide_refuses_a_decision_that_does_not_fit():
    ledger = _ledger(n=1)
    digest = proposal_digest(ledger.head, b"p", {})
    keys = ledger.keys
    votes = [sign_vote(keys[v], "a", 5, v, digest) for v in VOTERS]
    with pytest.raises(LedgerOutOfOrderError):
        ledger.decide(b"p", votes=votes)
    with pytest.raises(LedgerMalformedError):
        verify_ledger([b"\xa0"])
    with pytest.raises(LedgerOutOfOrderError):
        verify_ledger([ledger.entries[1].data])
    assert isinstance(LedgerBadSignatureError("x"), LedgerError)
    assert isinstance(LedgerCrossRefError("x"), LedgerError)


def test_the_ledger_survives_a_restart_and_the_store_never_forks(tmp_path):
    from focusflow.konomi import KonomiSystem
    from focusflow.konomi.errors import StoreError
    from focusflow.konomi.store import SQLiteStore

    db = tmp_path / "k.sqlite3"
    system = KonomiSystem(store=SQLiteStore(db), default_dims=(4, 4, 4))
    cube = system.create_cube("led")
    for i in range(3):
        system.decide("led", b"change %d" % i)
    assert cube.ledger is not None
    head, keys = cube.ledger.head, cube.ledger.public_keys
    system.close()
    again = KonomiSystem(store=SQLiteStore(db), default_dims=(4, 4, 4))
    ledger = again.cube("led").ledger
    assert ledger is not None and ledger.head == head and ledger.public_keys == keys
    assert verify_ledger(ledger.entries, expected_head=head).entries == 4
    again.decide("led", b"after the restart")
    # A second process whose copy fell behind reloads before it votes: one chain.
    other = KonomiSystem(store=SQLiteStore(db), default_dims=(4, 4, 4))
    stale = other.cube("led")
    assert stale.ledger is not None and stale.ledger.next_height == 5
    again.decide("led", b"first at height 5")
    assert other.decide("led", b"then height 6").height == 6
    assert [e.height for e in other.ledger_entries("led", 0, 100)] == list(range(7))
    stored = SQLiteStore(db)
    assert verify_ledger(stored.ledger_entries("led")).entries == 7
    # One that loses the race for a height (another appended between its check and
    # its write) drops its entry, reloads and votes again at the next height.
    again.decide("led", b"height 7 from the first process")
    assert other.store is not None
    real = other.store.ledger_height
    lies = iter([7])
    other.store.ledger_height = lambda cube_id: next(lies, None) or real(cube_id)  # type: ignore[method-assign]
    heights: list[int] = []
    append = other.store.append_ledger

    def counted(cube_id: str, height: int, entry: bytes) -> None:
        heights.append(height)
        append(cube_id, height, entry)

    other.store.append_ledger = counted  # type: ignore[method-assign]
    starts: list[int] = []
    read = other.store.ledger_entries

    def reads(cube_id: str, start: int = 0, limit: int | None = None) -> list[bytes]:
        starts.append(start)
        return read(cube_id, start, limit)

    other.store.ledger_entries = reads  # type: ignore[method-assign]
    assert other.decide("led", b"lost the race, then height 8").height == 8
    assert heights == [7, 8]
    assert starts == [7]  # the reload read the entry it lacked, not the whole ledger
    assert verify_ledger(stored.ledger_entries("led")).entries == 9
    # The store never takes a height twice: a second entry at 6 is refused.
    with pytest.raises(StoreError):
        stored.append_ledger("led", 6, b"fork")
    # The secret stays in the store: no state or event carries it.
    assert "secret" not in json.dumps(again.cube("led").to_state())


def test_rest_pages_a_ledger_and_verifies_one():
    from fastapi.testclient import TestClient

    from focusflow.konomi import KonomiSystem
    from focusflow.konomi.api import create_app
    from focusflow.konomi.launch import new_token

    token = new_token()
    system = KonomiSystem(default_dims=(4, 4, 4))
    system.create_cube("r")
    for i in range(4):
        system.decide("r", b"p%d" % i)
    app = create_app(system, token=token)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get("/cube/r/ledger", params={"start": 0, "limit": 3}).json()
        assert page["height"] == 4 and len(page["entries"]) == 3 and page["next"] == 3
        rest = client.get("/cube/r/ledger", params={"start": 3, "limit": 3}).json()
        assert rest["next"] is None and len(rest["entries"]) == 2
        entries = page["entries"] + rest["entries"]
        ok = client.post("/ledger/verify", json={"entries": entries, "head": page["head"]})
        assert ok.status_code == 200 and ok.json()["ok"] and ok.json()["entries"] == 5
        swapped = [entries[0], entries[2], entries[1], *entries[3:]]
        bad = client.post("/ledger/verify", json={"entries": swapped}).json()
        assert bad["ok"] is False and bad["index"] == 1
        assert bad["error"]["code"] == "ledger_out_of_order"
        bad = client.post("/ledger/verify", json={"entries": [entries[0], "zz"]}).json()
        assert bad["error"]["code"] == "ledger_malformed" and bad["index"] == 1
        r = client.get("/cube/r/ledger", params={"limit": 100_000})
        assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_message"
        assert client.get("/cube/none/ledger").status_code == 404
        r = client.post("/ledger/verify", json={"entries": "x"})
        assert r.json()["error"]["code"] == "malformed_message"
        r = client.post("/ledger/verify", json={"entries": entries * 40})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert system.cube("r").ledger.next_height == 5  # nothing changed


def test_the_cli_exports_and_verifies(tmp_path, capsys):
    from focusflow.cli.main import main
    from focusflow.konomi import KonomiSystem
    from focusflow.konomi.store import SQLiteStore

    db = tmp_path / "k.sqlite3"
    system = KonomiSystem(store=SQLiteStore(db), default_dims=(4, 4, 4))
    system.create_cube("cli")
    system.decide("cli", b"one")
    head = system.cube("cli").ledger.head.hex()
    system.close()
    out = tmp_path / "ledger.json"
    main(["konomi", "ledger", "export", "--db", str(db), "--cube", "cli", "--out", str(out)])
    main(["konomi", "ledger", "verify", str(out), "--head", head])
    assert f"ok: cube cli, 2 entries (height 1), 16 signatures, head {head}" in (
        capsys.readouterr().out
    )
    doc = json.loads(out.read_text())
    doc["entries"] = doc["entries"][:1] + doc["entries"][:1]
    out.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as info:
        main(["konomi", "ledger", "verify", str(out)])
    assert info.value.code == 3
    assert "FAILED at entry 1" in capsys.readouterr().out
    out.write_text("not json")
    with pytest.raises(SystemExit) as info:
        main(["konomi", "ledger", "verify", str(out)])
    assert info.value.code == 2 and "[ledger_malformed]" in capsys.readouterr().err


def test_postgres_keeps_the_secret_and_the_ledger(pg_url):
    from focusflow.konomi import KonomiSystem
    from focusflow.konomi.errors import StoreError
    from focusflow.konomi.store import PostgresStore

    system = KonomiSystem(store=PostgresStore(pg_url), default_dims=(4, 4, 4))
    system.create_cube("pg")
    system.decide("pg", b"one")
    head = system.cube("pg").ledger.head
    store = PostgresStore(pg_url)
    assert store.cube_secret("pg", b"x" * 32) != b"x" * 32  # the first one stays
    with pytest.raises(StoreError):
        store.append_ledger("pg", 1, b"other")
    assert verify_ledger(store.ledger_entries("pg"), expected_head=head).entries == 2
    system.close()
    again = KonomiSystem(store=PostgresStore(pg_url), default_dims=(4, 4, 4))
    assert again.cube("pg").ledger.head == head
    store.close()
    again.close()


def test_a_genesis_with_one_key_under_two_names_is_refused():
    """Otherwise one signer could count as several vertices."""
    key = KeyPair.from_seed(b"d" * 32)
    keys = {v: key for v in VOTERS}
    _fails([Ledger("dup", keys).entries[0].data], "ledger_malformed", 0)


def test_worker_processes_report_the_first_failure_across_their_spans():
    """A ledger over the process threshold, split in spans: a forged signature in the
    middle is reported at its entry, before a later broken entry in another span, and
    after an earlier failure of a lower rank in the span before."""
    ledger = _ledger(n=299)
    raw = _raw(ledger)
    assert len(raw) >= ledger_module._PROCESS_MIN_ENTRIES
    report = verify_ledger(raw, threads=1)
    assert verify_ledger(raw, processes=4) == report
    entry = decode_entry(raw[150], 150)
    votes = tuple((v, bytes(64)) if v == "SWD" else (v, s) for v, s in entry.votes)
    forged = [*raw[:150], _rebuilt(entry, votes=votes).data, *raw[151:]]
    forged[250] = b"\x00garbage"
    for processes in (2, 4, 7):
        with pytest.raises(LedgerBadSignatureError) as info:
            verify_ledger(forged, processes=processes)
        assert info.value.index == 150
    # One vote short of the 2/3 rule, entry 40 fails first (its hash changed too, so
    # entry 41's link breaks, which ranks after it).
    short = decode_entry(raw[40], 40)
    forged[40] = _rebuilt(short, votes=short.votes[:5]).data
    _fails(forged, "ledger_no_quorum", 40)


def test_worker_processes_come_from_a_fork_server_when_threads_run():
    """Forking a process that runs other threads is unsafe: called from a thread, the
    workers come from a fork server, with the same answer."""
    import threading

    raw = _raw(_ledger(n=299))
    entry = decode_entry(raw[200], 200)
    votes = tuple((v, bytes(64)) if v == "NWU" else (v, s) for v, s in entry.votes)
    forged = [*raw[:200], _rebuilt(entry, votes=votes).data, *raw[201:]]
    found: list[object] = []

    def run() -> None:
        assert threading.active_count() > 1
        found.append(verify_ledger(raw, processes=2))
        try:
            verify_ledger(forged, processes=2)
        except LedgerError as exc:
            found.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert found[0] == verify_ledger(raw, threads=1)
    assert isinstance(found[1], LedgerBadSignatureError) and found[1].index == 200
