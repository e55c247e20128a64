"""Golden roots of the rollups' exchange: a hub and two rollups (in one process,
their relayers in between, a fixed clock) commit the same state roots on every
CPU, thread count and supported library version. The rank engines' output goes
into those roots (the rollups' rank packets, the hub's engine state and global
snapshot), so a change that alters them changes what every such network
commits. Recorded here on an AMD EPYC VM; checked on an Intel Xeon.

Also run in a subprocess with numba compiled for a generic x86-64 CPU and one
thread, as the chain's golden roots are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GOLDEN: dict[str, list[str]] = {
    # the hub's, rollup 0's and rollup 1's state root
    "diffusion": [
        "0df8d0c26cd04fcdc773e897b9ed9cf327b3a082dfa46db34461c8a6f1de9b68",
        "32923c33e2fd86d712e80bb129c975d9979a0bd6b51302428a35f46c8f8f7308",
        "dfe9a94fc4106d192a54ea9a3f8fb0453a704d434e607c9a517acab440a24ce2",
    ],
    "tri": [
        "796aa75159515226f0e3695ecfd022247754895502be87cf7d0ffa7be5bacb5e",
        "d2908711caa4e050a79dd1e3797e25b95575c605a5164d475f6b0f0d9a8fbd2b",
        "eda0d16ebfe9aa94a0a790ae04b249420c951d49889222829fa5344e79d937bb",
    ],
}

STEPS = 6


def roots(path: Path, mode: str) -> list[str]:
    """The hub's and each rollup's state root after STEPS exchange steps."""
    from focusflow.testing.rank_net import RankNet, random_links

    net = RankNet(path, mode)
    net.channels()
    net.link(random_links(11, n=80, m=240))
    for _ in range(STEPS):
        net.step()
    out = []
    for chain in net.chains:
        with chain.reader() as r:
            out.append(r.root.hex())
    return out


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_the_exchange_commits_the_golden_roots(tmp_path, mode):
    got = roots(tmp_path, mode)
    assert all(got), got
    assert got == GOLDEN[mode]


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_a_generic_cpu_build_with_one_thread_commits_them_too(tmp_path, mode):
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.modules.test_rank_golden import roots; "
        f"print(json.dumps(roots(Path(sys.argv[1]), {mode!r})))"
    )
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == GOLDEN[mode]
