"""The write-ahead log: durable, repairs torn tails, and keeps restarts from double-signing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.consensus import (
    Proposal,
    Signer,
    SignRefusedError,
    Step,
    Tendermint,
    Vote,
    WALEntry,
    WALError,
    WriteAheadLog,
    decode_message,
)
from focusflow.core.hashing import sha256

from .harness import CHAIN, broadcasts, keys, make_harness, votes_of
from .test_tendermint import A, B, lock_on, to_round

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _close_logs_at_exit(monkeypatch):
    """Close every log a test opened when it ends, as the OS does for a process
    that dies: many tests here drop a log without closing it on purpose (the
    process died), and an open file left to the garbage collector warns."""
    opened: list[WriteAheadLog] = []
    init = WriteAheadLog.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(WriteAheadLog, "__init__", tracked)
    yield
    for wal in opened:
        wal.close()


def written(path: Path, *entries: WALEntry) -> Path:
    """A closed WAL file holding ``entries``."""
    wal = WriteAheadLog(path)
    for entry in entries:
        wal.append(entry)
    wal.close()
    return path


def two_votes(tmp_path) -> Path:
    return written(tmp_path / "wal", WALEntry("vote", 1, b"first"), WALEntry("vote", 1, b"second"))


def test_entries_survive_reopen(tmp_path):
    path = written(tmp_path / "wal", WALEntry("vote", 1, b"x"), WALEntry("lock", 2, b"y"))
    again = WriteAheadLog(path)
    assert again.entries() == [WALEntry("vote", 1, b"x"), WALEntry("lock", 2, b"y")]
    assert again.entries(2) == [WALEntry("lock", 2, b"y")]


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_torn_tail_is_cut_off(tmp_path, cut):
    path = two_votes(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    again = WriteAheadLog(path)
    assert again.entries() == [WALEntry("vote", 1, b"first")]
    again.append(WALEntry("vote", 1, b"third"))
    again.close()
    assert [e.body for e in WriteAheadLog(path).entries()] == [b"first", b"third"]


def test_corruption_before_the_tail_raises(tmp_path):
    path = two_votes(tmp_path)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WALError) as err:
        WriteAheadLog(path)
    assert err.value.code == "wal_corrupt"


def test_prune_keeps_current_heights(tmp_path):
    path = tmp_path / "wal"
    wal = WriteAheadLog(path)
    for h in (1, 2, 3):
        wal.append(WALEntry("vote", h, b"%d" % h))
    wal.prune(3)
    wal.append(WALEntry("vote", 4, b"4"))
    wal.close()
    entries = WriteAheadLog(path).entries()
    assert [(e.kind, e.height) for e in entries] == [("floor", 3), ("vote", 3), ("vote", 4)]


def test_the_log_is_owner_only_and_stays_so_after_pruning(tmp_path):
    """Like the rest of a validator's home: what it signed is nobody else's to read."""
    path = tmp_path / "wal"
    wal = WriteAheadLog(path)
    wal.append(WALEntry("vote", 1, b"1"))
    assert path.stat().st_mode & 0o777 == 0o600
    wal.prune(2)
    wal.append(WALEntry("vote", 2, b"2"))
    wal.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [(e.kind, e.height) for e in WriteAheadLog(path).entries()] == [
        ("floor", 2),
        ("vote", 2),
    ]


def test_heights_below_the_floor_are_never_signed_again(tmp_path):
    key = keys(1)[0]
    signer = Signer(key, CHAIN, WriteAheadLog(tmp_path / "wal"))
    signer.sign_vote(4, 0, Step.PREVOTE, None)
    signer.prune(5)  # height 4 committed; nothing signed at 5 yet
    signer.wal.close()
    restarted = Signer(key, CHAIN, WriteAheadLog(tmp_path / "wal"))
    assert restarted.resume_height() == 5
    with pytest.raises(SignRefusedError) as err:
        restarted.sign_vote(4, 1, Step.PREVOTE, None)
    assert err.value.code == "sign_refused"
    h = make_harness()
    h.machine = Tendermint(CHAIN, signer=restarted, get_value=lambda _: A, is_valid=lambda *_: True)
    with pytest.raises(SignRefusedError):
        h.machine.start_height(3, h.vs)  # a block store that lost two blocks


def test_signer_never_signs_a_second_vote_for_a_slot(tmp_path):
    key = keys(1)[0]
    signer = Signer(key, CHAIN, WriteAheadLog(tmp_path / "wal"))
    first = signer.sign_vote(1, 0, Step.PREVOTE, sha256(b"a"))
    assert signer.sign_vote(1, 0, Step.PREVOTE, sha256(b"b")) == first
    assert signer.sign_vote(1, 0, Step.PREVOTE, None) == first
    signer.wal.close()
    restarted = Signer(key, CHAIN, WriteAheadLog(tmp_path / "wal"))
    assert restarted.sign_vote(1, 0, Step.PREVOTE, None) == first
    p = restarted.sign_proposal(1, 0, -1, b"x", sha256(b"x"))
    assert restarted.sign_proposal(1, 0, -1, b"y", sha256(b"y")) == p
    assert restarted.sign_vote(1, 0, Step.PRECOMMIT, None) != first


def test_state_machine_restarted_from_its_wal_keeps_votes_and_lock(tmp_path):
    path = tmp_path / "wal"
    h = make_harness(wal_path=path)
    h.machine.start_height(1, h.vs)
    lock_on(h, A)  # prevote A, lock A, precommit A
    signed = h.machine.signer.signed(1)
    h.wal.close()

    wal = WriteAheadLog(path)  # the process died; a new one opens the same file
    h.machine = Tendermint(
        CHAIN, signer=Signer(h.me, CHAIN, wal), get_value=lambda _: B, is_valid=lambda *_: True
    )
    actions = h.machine.start_height(1, h.vs)
    assert broadcasts(actions) == signed  # the same signed messages, re-sent
    m = h.machine
    assert (m.round, m.step, m.locked_value, m.locked_round) == (0, Step.PRECOMMIT, A, 0)
    to_round(h, 1)
    (vote,) = votes_of(h.feed(h.proposal(1, B)), Step.PREVOTE)
    assert vote.value_id is None  # still locked on A


def _slot(message):
    step = message.step if isinstance(message, Vote) else Step.PROPOSE
    return (message.height, message.round, int(step))


def test_sigkill_mid_run_never_leads_to_double_signing(tmp_path):
    path = tmp_path / "wal"
    rng = random.Random(6)
    seen: dict[tuple[int, int, int], object] = {}
    heights = []
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("wal_child.py")), str(path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert child.stdout is not None
        lines = rng.randint(5, 120)
        messages = [decode_message(bytes.fromhex(child.stdout.readline())) for _ in range(lines)]
        child.send_signal(signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL
        for message in messages:
            earlier = seen.setdefault(_slot(message), message)
            assert earlier == message, f"two different signatures for {_slot(message)}"
        heights.append(max(m.height for m in messages))
        assert all(isinstance(m, Proposal | Vote) for m in messages)
    assert heights == sorted(heights) and heights[-1] > heights[0]  # it keeps committing


def test_floor_is_appended_each_height_and_the_file_compacted_periodically(tmp_path, monkeypatch):
    """A new height costs one fsynced record, not a rewrite; a restart at any point
    still refuses every height below the last floor and re-sends what it signed."""
    from focusflow.consensus import signer as signer_mod

    key = keys(1)[0]
    path = tmp_path / "wal"
    signer = Signer(key, CHAIN, WriteAheadLog(path))
    rewrites = []
    original = WriteAheadLog.prune
    monkeypatch.setattr(
        WriteAheadLog, "prune", lambda self, h, **kw: (rewrites.append(h), original(self, h, **kw))
    )
    sizes = []
    for h in range(1, 3 * signer_mod.COMPACT_EVERY + 2):
        signer.prune(h)
        vote = signer.sign_vote(h, 0, Step.PREVOTE, sha256(bytes([h % 256])))
        sizes.append(path.stat().st_size)
        if h % 37 == 0:
            signer.wal.close()
            signer = Signer(key, CHAIN, WriteAheadLog(path))
            assert signer.resume_height() == h
            assert signer.sign_vote(h, 0, Step.PREVOTE, None) == vote
            with pytest.raises(SignRefusedError):
                signer.sign_vote(h - 1, 1, Step.PREVOTE, None)
    # The first prune (empty log) and then one rewrite per COMPACT_EVERY heights.
    assert rewrites == [
        1,
        1 + signer_mod.COMPACT_EVERY,
        1 + 2 * signer_mod.COMPACT_EVERY,
        1 + 3 * signer_mod.COMPACT_EVERY,
    ]
    assert max(sizes) < 2 * max(sizes[: signer_mod.COMPACT_EVERY + 1])


def _record_offsets(path: Path) -> list[int]:
    """Byte offset of each record in a WAL file."""
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos : pos + 4], "big")
    return out


def three_records(tmp_path) -> Path:
    return written(
        tmp_path / "wal",
        WALEntry("vote", 1, b"first"),
        WALEntry("vote", 1, b"second"),
        WALEntry("lock", 1, b"third"),
    )


@pytest.mark.parametrize("length", [10**6, (1 << 30) + 1, 0])
def test_a_garbled_length_before_good_records_is_corruption(tmp_path, length):
    """A middle record whose length field is damaged (past the end, over the cap,
    empty) must not make the records after it vanish as if the tail were torn."""
    path = three_records(tmp_path)
    second = _record_offsets(path)[1]
    data = bytearray(path.read_bytes())
    data[second : second + 4] = length.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(WALError) as err:
        WriteAheadLog(path)
    assert err.value.code == "wal_corrupt" and f"byte {second}" in err.value.message
    assert path.read_bytes() == bytes(data)  # nothing cut


@pytest.mark.parametrize(
    "tail",
    [
        b"\0" * 4096,  # size grew, data never reached the disk
        b"\0" * 5,  # a partial header of zeros
        (7).to_bytes(4, "big") + b"\xff" * 4 + b"garbage",  # a whole record, bad checksum
        (1000).to_bytes(4, "big") + b"\0\0\0\0" + b"cut",  # a payload cut short
    ],
)
def test_only_a_torn_or_garbled_last_record_is_dropped(tmp_path, tail):
    path = three_records(tmp_path)
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(tail)
    again = WriteAheadLog(path)
    assert [e.body for e in again.entries()] == [b"first", b"second", b"third"]
    again.close()
    assert path.stat().st_size == good


def test_a_record_shaped_payload_in_a_torn_record_is_still_a_torn_tail(tmp_path):
    """A proposal may carry bytes that look like a WAL record (anyone can write a
    transaction); torn in the middle, it is a torn tail, not corruption."""
    inner = written(tmp_path / "inner", WALEntry("vote", 9, b"fake"), WALEntry("vote", 9, b"f2"))
    path = three_records(tmp_path)
    good = path.stat().st_size
    wal = WriteAheadLog(path)
    wal.append(WALEntry("proposal", 2, b"x" * 100 + inner.read_bytes() + b"y" * 100))
    wal.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 150)  # cut inside the second fake record
    again = WriteAheadLog(path)
    assert [e.body for e in again.entries()] == [b"first", b"second", b"third"]
    assert path.stat().st_size == good


def test_looking_past_a_bad_record_is_bounded_in_time(tmp_path):
    """A garbled 4 MB last record: the scan for good records after its start reads
    every offset's header at once, not one checksum per offset."""
    import time

    body = random.Random(1).randbytes(4 << 20)
    path = written(tmp_path / "wal", WALEntry("vote", 1, b"a"), WALEntry("proposal", 1, body))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    t0 = time.perf_counter()
    again = WriteAheadLog(path)  # torn: no good record reaches the end
    assert time.perf_counter() - t0 < 5
    assert again.entries() == [WALEntry("vote", 1, b"a")]
