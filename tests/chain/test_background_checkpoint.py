"""The focus checkpoint is written by a forked child: the commit that makes it
due waits only for the fork, a failed or killed child leaves the previous
checkpoint usable, a crash in the middle of a write loses nothing, and what a
checkpoint holds does not depend on when it was taken (the graph log's
consumed entries are dropped block by block, never the stored blocks' deltas,
which the light client reads)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusflow.chain import checkpoint_writer, lifecycle
from focusflow.chain.focus_checkpoint import read_header_of
from focusflow.chain.snapshot import capture_focus
from focusflow.testing.chains import new_chain
from tests.chain import focus_state_bytes
from tests.chain.link_blocks import GENESIS, grow, small_block

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A chain of about 240,000 links (a checkpoint of 25 MB; a random
    transaction that repeats a link is refused)."""
    chain = new_chain(tmp_path_factory.mktemp("background") / "node", GENESIS)
    grow(chain, 3)
    yield chain
    chain.checkpoints.abandon()
    chain.store.close()


@pytest.fixture
def due(monkeypatch):
    """Every block with links makes a checkpoint due."""
    monkeypatch.setattr(lifecycle, "CHECKPOINT_WORK_S", 0.0)
    monkeypatch.setattr(lifecycle, "CHECKPOINT_COST_RATIO", 0.0)


def _files(chain) -> list[str]:
    return sorted(p.name for p in chain.checkpoint_path.parent.glob("focus.ckpt*"))


def _height(chain) -> int:
    return read_header_of(chain.checkpoint_path).block.height


def test_a_due_checkpoint_holds_the_commit_only_for_the_fork(grown, due, monkeypatch):
    """The same chain commits blocks with a checkpoint due, alternately
    written in the commit (as before) and by a child, each write made to take
    at least WRITE_S: the time the commit spends on it
    (``timings["checkpoint"]``) includes the write only when it is written
    in the commit, and the commit returns while the child still writes.

    The write is slowed on purpose so the test does not compare two short
    times: a fork's cost grows with the parent's memory (a test process of a
    GiB forks in tens of milliseconds), and a small checkpoint's write takes
    about as long (bench/checkpoint.py measures both)."""
    write_s = 1.0
    real_write = checkpoint_writer.write_planned

    def slow_write(*args, **kwargs):
        time.sleep(write_s)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(checkpoint_writer, "write_planned", slow_write)
    chain, held, in_flight = grown, {False: [], True: []}, []
    try:
        for background in (False, True) * 2:
            chain.checkpoints.background = background
            result = small_block(chain)
            if background:
                in_flight.append(chain.checkpoints.busy)
            assert chain.wait_checkpoint(timeout=120)
            last = chain.checkpoints.last
            assert last.height == chain.height and last.background == background
            held[background].append(result.timings["checkpoint"])
    finally:
        chain.checkpoints.background = True
    assert _height(chain) == chain.height
    assert min(held[False]) >= write_s, held
    assert max(held[True]) < write_s / 2, f"the commit held {held[True]} s for the fork"
    assert all(in_flight), "a commit returned before its checkpoint was on disk"


def test_a_failed_or_killed_child_leaves_the_previous_checkpoint(grown, due, caplog, monkeypatch):
    chain = grown
    small_block(chain)
    assert chain.wait_checkpoint(timeout=120)
    good, failed = chain.height, chain.checkpoints.failed
    # A disk that fills up in the middle of the child's write.

    def full_disk(path, plan):
        checkpoint_writer.tmp_path(path).write_bytes(b"half a state")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        m.setattr(checkpoint_writer, "write_planned", full_disk)
        small_block(chain)
        assert not chain.wait_checkpoint(timeout=120)
    last = chain.checkpoints.last
    assert not last.ok and last.background and last.height == good + 1
    assert "No space left" in last.error and chain.checkpoints.failed == failed + 1
    warned = [r for r in caplog.records if r.getMessage() == "focus checkpoint not written"]
    assert warned and "No space left" in warned[-1].fields["error"]
    assert _height(chain) == good
    assert _files(chain) == ["focus.ckpt"]
    # A child killed in the middle of its write (as the OOM killer would):
    # its temporary file goes, the checkpoint stays.
    killed = []
    for _ in range(3):
        small_block(chain)
        pid = chain.checkpoints.child_pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        chain.wait_checkpoint(timeout=120)
        last = chain.checkpoints.last
        if not last.ok:
            killed.append(last.error)
            assert _height(chain) < chain.height
            assert _files(chain) == ["focus.ckpt"]
            break
    assert killed and "signal 9" in killed[0]
    small_block(chain)
    assert chain.wait_checkpoint(timeout=120)
    assert _height(chain) == chain.height


def test_every_block_drops_the_consumed_log_and_keeps_the_stored_deltas(grown):
    """The graph's log holds nothing the engine has read once a block is
    committed, whether or not a checkpoint was taken: a checkpoint and a
    snapshot of the same block are the same bytes, however long the focus
    work before them took."""
    chain = grown
    small_block(chain)
    log = chain.focus.graph.log
    assert len(log) == 0 and log.trimmed == log.head > 0
    stored = chain.block_record(1).edge_deltas().links
    assert chain.checkpoint()
    payload = capture_focus(chain.focus, chain.head, chain.chain_id)
    assert chain.checkpoint_path.read_bytes() == payload
    header, _ = focus_state_bytes.decode(payload)
    assert header.counts.links == chain.focus.graph.n_links
    # The light client maps link ids to their messages from every stored
    # block's deltas (api/routes_light.py): those stay.
    assert stored and chain.block_record(1).edge_deltas().links == stored
    # The next block's links are logged after the dropped ones, and dropped.
    before = log.head
    small_block(chain)
    assert len(log) == 0 and log.head > before


def test_close_waits_for_the_heads_write_and_abandons_an_older_one(tmp_path, due, monkeypatch):
    chain = new_chain(tmp_path / "node", GENESIS)
    grow(chain, 1, txs_per_key=1)  # its commit starts a write of block 1
    chain.close()
    assert chain.checkpoints.written == 1 and chain.checkpoints.last.background
    chain = new_chain(tmp_path / "node", GENESIS)
    assert chain.restored_from == chain.height == 1
    assert not chain.checkpoints.busy, "the loaded checkpoint is not written again"
    assert chain.checkpoint(background=True)
    monkeypatch.setattr(lifecycle, "CHECKPOINT_WORK_S", 1e9)
    small_block(chain)  # block 2 makes none due
    chain.close()  # block 1's write, if still in flight, is abandoned
    last = chain.checkpoints.last
    assert last.height == 2 and last.ok and not last.background
    assert new_chain(tmp_path / "node", GENESIS).restored_from == 2


def _writer(home: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "NUMBA_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.chain.checkpoint_crash_writer", str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )


def _kill_mid_write(home: Path) -> tuple[int, int, bool]:
    """Run the writer until a background write is in flight, then SIGKILL the
    node and its child together (a crash); returns the last durable
    height, the last committed one, and whether the write was cut short."""
    tmp = home / "focus.ckpt.tmp"
    durable = committed = -1
    cut = False
    # leaving the with block closes the writer's stdout pipe and waits for it
    with _writer(home) as proc:
        try:
            for line in proc.stdout:
                word, h = line.split()
                if word == "durable":
                    durable = int(h)
                    continue
                committed = int(h)
                deadline = time.monotonic() + 2.0
                while not tmp.exists() and time.monotonic() < deadline:
                    time.sleep(0.0005)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                cut = tmp.exists()
                break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return durable, committed, cut


def test_a_crash_during_a_background_write_loses_nothing(tmp_path):
    home = tmp_path / "node"
    cuts = 0
    for _ in range(4):
        durable, committed, cut = _kill_mid_write(home)
        assert committed > durable >= 2
        chain = new_chain(home, GENESIS)
        try:
            assert not (home / "focus.ckpt.tmp").exists(), "the cut write's file is removed"
            assert chain.height == committed
            if cut:
                cuts += 1
                assert chain.restored_from == durable
            else:  # the write ended between the check and the kill
                assert chain.restored_from in (durable, committed)
            assert chain.store.recompute_root() == chain.head.state_root
            small_block(chain)  # the restored focus state goes on
        finally:
            chain.store.close()
        if cuts >= 2:
            break
    assert cuts, "no kill landed while a write was in flight"
