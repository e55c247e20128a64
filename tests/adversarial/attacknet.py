"""Harness for the fault-and-attack tests: a ``focusflow testnet`` of real validator
processes on loopback in which validators can be swapped for byzantine processes
(:mod:`tests.adversarial.byzantine_node`), killed and restarted; and the checks
every attack test makes: the honest validators keep committing, with the same
block hash, state root and focus root at every height, nothing committed is lost,
and the node processes' memory stays bounded. Every wait is bounded in time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from focusflow.chain.block_checks import MAX_CLOCK_DRIFT_MS
from focusflow.testing.process import node_env
from focusflow.testing.testnet import START_TIMEOUT, LocalTestnet
from tests.helpers import ROOT

#: Largest block time an honest chain may hold: 2^53 - 1 (chain's MAX_TIME_MS).
MAX_TIME_MS = 2**53 - 1


class AttackNet(LocalTestnet):
    """A LocalTestnet whose validator ``k`` may be replaced by an attacker."""

    def __init__(self, home: Path, n: int, extra: tuple[str, ...] = ()) -> None:
        super().__init__(home, n, extra)
        self.byzantine: dict[int, str] = {}
        self.client = httpx.Client(timeout=5)

    def become_byzantine(self, k: int, attack: str, pause: int | None = None) -> None:
        """Kill validator ``k`` and run it again from its home as the attacker ``attack``.

        With ``pause``, validator ``pause`` is down meanwhile, so the chain stops
        (two of four cannot commit) until the attacker has caught up: it is then
        at the live height at once, and attacks from the first round it leads
        (otherwise a loaded machine may keep it syncing behind for minutes).
        """
        if pause is not None:
            self.kill(pause)
        self.kill(k)
        home = self.home / f"v{k}"
        with open(home / "node.log", "ab") as out:
            self.restarted[k] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.adversarial.byzantine_node",
                    "--home",
                    str(home),
                    "--attack",
                    attack,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=dict(node_env(), NUMBA_NUM_THREADS="1", PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
            )
        self.byzantine[k] = attack
        self.wait_up(k, time.monotonic() + START_TIMEOUT)
        if pause is not None:
            live = [j for j in range(self.n) if j not in (k, pause)]
            self.wait_height([k], max(self.heights(live).values()), 120)
            self.restart(pause)

    def honest(self) -> list[int]:
        return [k for k in range(self.n) if k not in self.byzantine]

    def attacks(self, k: int) -> list[tuple[str, int]]:
        """What the attacker ``k`` logged: (attack, height) per malicious act."""
        path = self.home / f"v{k}" / "attack.log"
        if not path.exists():
            return []
        return [(a, int(h)) for a, h in (line.split() for line in path.read_text().splitlines())]

    def wait_for(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout}s\n{self.logs()}")

    def block_json(self, k: int, h: int) -> dict:
        r = self.client.get(f"{self.apis[k]}/v1/blocks/{h}")
        assert r.status_code == 200, (k, h, r.status_code, r.text[:300])
        return r.json()

    def roots(self, k: int, h: int) -> tuple[str, str, str]:
        b = self.block_json(k, h)
        return b["hash"], b["state_root"], b["focus_root"]

    def heights(self, ks: Iterable[int]) -> dict[int, int]:
        return {k: self.height(k) for k in ks}

    def chain_view(self, k: int, upto: int) -> dict[int, dict]:
        """Validator ``k``'s blocks 1..``upto`` (height -> block JSON), read a page at
        a time from ``GET /v1/blocks?before=...`` (bounded: one page per request)."""
        blocks: dict[int, dict] = {}
        before = upto + 1
        for _ in range(upto + 1):  # each page holds at least one block
            r = self.client.get(
                f"{self.apis[k]}/v1/blocks", params={"limit": 100, "before": before}
            )
            assert r.status_code == 200, (k, before, r.status_code, r.text[:300])
            page = r.json()
            for b in page["blocks"]:
                if 1 <= b["height"] <= upto:
                    blocks[b["height"]] = b
            if page["next_before"] is None or page["next_before"] <= 1 or not page["blocks"]:
                break
            before = page["next_before"]
        assert sorted(blocks) == list(range(1, upto + 1)), (k, upto, len(blocks))
        return blocks

    def assert_agree_all(self, ks: Iterable[int], upto: int) -> dict[int, tuple[str, str, str]]:
        """The same block hash, state root and focus root at every height 1..``upto``
        on every node of ``ks``, and every block time sane (see ``assert_sane_times``);
        returns height -> (hash, state root, focus root)."""
        views = {k: self.chain_view(k, upto) for k in ks}
        agreed = {}
        for h in range(1, upto + 1):
            seen = {
                k: (v[h]["hash"], v[h]["state_root"], v[h]["focus_root"]) for k, v in views.items()
            }
            assert len(set(seen.values())) == 1, f"nodes disagree at height {h}: {seen}"
            agreed[h] = next(iter(seen.values()))
        for view in views.values():
            assert_sane_times(view)
        return agreed

    def survive(self, k: int, attack: str, times: int, pause: int) -> None:
        """Swap validator ``k`` for a byzantine process running ``attack`` (with
        validator ``pause`` down meanwhile, see ``become_byzantine``), wait until it
        has attacked ``times`` times, then assert that the honest nodes commit three
        more heights and agree on every root and block time up to their lowest head."""
        self.wait_height(range(self.n), 2, 60)
        self.become_byzantine(k, attack, pause=pause)
        honest = self.honest()
        self.wait_for(f"{times} x {attack}", lambda: len(self.attacks(k)) >= times, 90)
        last_attack = max(h for _, h in self.attacks(k))
        self.wait_height(honest, last_attack + 3, 60)
        self.assert_agree_all(honest, min(self.heights(honest).values()))

    def rss_bytes(self, k: int) -> int:
        """Resident memory of validator ``k``'s process (from /proc)."""
        return rss_of(self.pid(k))

    def stop(self) -> None:
        self.client.close()
        super().stop()


def assert_sane_times(blocks: dict[int, dict]) -> None:
    """Block times increase and stay below the chain's bound and this machine's clock
    plus the allowed drift (one clock: every node runs here)."""
    now_ms = int(time.time() * 1000)
    last = 0
    for h in sorted(blocks):
        t = blocks[h]["time_ms"]
        assert last < t <= min(MAX_TIME_MS, now_ms + MAX_CLOCK_DRIFT_MS), (h, t)
        last = t


def rss_of(pid: int) -> int:
    """VmRSS of a process in bytes, read from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
