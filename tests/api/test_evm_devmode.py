"""An anvil devnet's block demand, clock and snapshots (``chain.devmode``), the
filter table's bounds (``api.evm_filters``), and ``--anvil`` refused on a home
made without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from focusflow.api.evm_budget import RpcLimitError
from focusflow.api.evm_filters import (
    FILTER_IDLE_S,
    MAX_FILTERS,
    MAX_FILTERS_PER_CLIENT,
    Filter,
    FilterNotFoundError,
    FilterTable,
)
from focusflow.chain.devmode import MAX_MINE_BLOCKS, MAX_SNAPSHOTS, DevMode
from focusflow.testing.process import SOURCE, node_env


def _dev(now: list[float]) -> DevMode:
    return DevMode({}, lambda msgs: pytest.fail("nothing is submitted here"), lambda: now[0])


def test_blocks_asked_for_are_taken_one_by_one_and_capped():
    dev = _dev([0.0])
    assert not dev.take_block()
    dev.ask_blocks(2)
    assert dev.take_block() and dev.take_block() and not dev.take_block()
    dev.ask_blocks(MAX_MINE_BLOCKS * 3)
    assert dev.demand == MAX_MINE_BLOCKS


def test_the_clock_moves_ahead_and_block_times_always_increase():
    now = [1_000.0]
    dev = _dev(now)
    assert dev.block_time_ms(parent_ms=0) == 1_000_000
    assert dev.increase_time(3600) == 3600
    assert dev.block_time_ms(parent_ms=0) == 4_600_000
    dev.set_next_time(10_000)
    assert dev.block_time_ms(parent_ms=0) == 10_000_000
    now[0] += 1  # later blocks go on from the stamped one
    assert dev.block_time_ms(parent_ms=0) == 10_001_000
    assert dev.block_time_ms(parent_ms=20_000_000) == 20_000_001  # after its parent


def test_a_revert_uses_up_its_snapshot_and_the_later_ones():
    dev = _dev([0.0])
    ids = [dev.save(10 + i, {b"k": bytes([i])}) for i in range(3)]
    assert ids == [1, 2, 3]
    assert dev.take(2) == (11, {b"k": b"\x01"})
    assert dev.take(3) is None and dev.take(2) is None
    assert dev.take(1) == (10, {b"k": b"\x00"})
    for i in range(MAX_SNAPSHOTS + 5):
        last = dev.save(i, {b"k": bytes([i % 256])})
    assert dev.take(last - MAX_SNAPSHOTS) is None  # the oldest went first
    assert dev.take(last - MAX_SNAPSHOTS + 1) is not None


def test_undone_blocks_are_remembered():
    dev = _dev([0.0])
    dev.undo(5, 7)
    dev.undo(9, 8)  # nothing undone
    assert [h for h in range(12) if dev.undone(h)] == [5, 6, 7]


def test_filters_are_bounded_per_client_in_all_and_by_idle_time():
    now = [0.0]
    table = FilterTable(clock=lambda: now[0])
    mine = [table.add(Filter("a", "blocks", 1)) for _ in range(MAX_FILTERS_PER_CLIENT)]
    with pytest.raises(RpcLimitError, match="this client holds"):
        table.add(Filter("a", "blocks", 1))
    assert len({*mine}) == len(mine) and all(len(fid) == 34 for fid in mine)
    assert table.remove(mine[0]) and not table.remove(mine[0]) and not table.remove(7)
    table.add(Filter("a", "blocks", 1))
    others = 0
    while len(table) < MAX_FILTERS:
        table.add(Filter(f"c{others // MAX_FILTERS_PER_CLIENT}", "blocks", 1))
        others += 1
    with pytest.raises(RpcLimitError, match="the node holds"):
        table.add(Filter("new", "blocks", 1))
    now[0] = FILTER_IDLE_S / 2
    kept = table.get(mine[1])  # polled: lives on
    now[0] = FILTER_IDLE_S + 1
    assert table.get(mine[1]) is kept
    with pytest.raises(FilterNotFoundError):
        table.get(mine[2])
    assert len(table) == 1
    with pytest.raises(FilterNotFoundError):
        table.get(None)


def test_anvil_is_refused_on_a_home_made_without_it(tmp_path):
    from focusflow.node.home import init_devnet

    home, _ = init_devnet(tmp_path / "home")
    run = subprocess.run(
        [sys.executable, "-m", "focusflow", "devnet", "--anvil", "--home", str(home.path),
         "--port", "0"],
        capture_output=True, text=True, timeout=120, env=node_env(SOURCE), check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert "was made without --anvil" in run.stdout + run.stderr
