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
        "198ec167cfd79c71b2e4ef15bc8a0d9c8e0bf7cf44b1cb35f9b608a044e6712e",
        "f605df2f6d58821d02e7f4bd88d2d79eb7cd3cac8c8d0db130eda9fe664e3439",
        "f1876ad6d40a44cb580ed2cd1506bc643bb5914718d06d7a22ae39622e42218a",
    ],
    "tri": [
        "46752ffc67d11ad9d354175f6e5a42de63692b52b14248d158133eba8a89d768",
        "77f287c1194ef2a1b7ab96c01d12f169a5e3c076c044a5df8a5d9650647f3126",
        "f0a649f007e5696b9107b636930e80c9d236a86329b15867309fc4df45805197",
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
