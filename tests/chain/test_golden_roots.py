"""Golden focus roots: the exact arithmetic commits the same bits everywhere.

Each chain (tests/chain/golden_chain.py: blocks of thousands of R-MAT links over
tens of thousands of particles, stake and unstake transactions between them)
is built through ``Chain.produce_block``, and every block's focus root must
equal the constant recorded here, computed once on an AMD EPYC (Zen 5) host
(``v2``: on an Intel Xeon VM, and checked on a second Xeon machine):

* in this process (numba compiled for the host CPU, all its threads);
* in a subprocess with numba compiled for a generic x86-64 CPU
  (``NUMBA_CPU_NAME=generic``: no FMA, no AVX), after the fast arithmetic's
  kernels ran in that process first;
* in a subprocess with one thread (``NUMBA_NUM_THREADS=1``).

The fast arithmetic fails exactly this: the large chain's roots under the
chain's first algorithm in ``fast`` arithmetic differ between the host and the
generic build at blocks 4, 9 and 12 on that host (docs/focus.md, *Arithmetic*).
``v3`` is the new-genesis algorithm in exact-v3 (recorded on an AMD EPYC
host, in process, with ``NUMBA_CPU_NAME=generic`` and with one thread, and
checked on the Intel Xeon of the GPU machine and on its GPU), ``v2`` the
same algorithm in exact-v2, ``new`` in exact-v1 (what a genesis named
before exact-v2); ``first`` the chain's first algorithm in exact-v1; ``fe``
the free-energy model at T = 0.5, whose exact minimiser fixes its own bits;
``local`` the local rule at T = 1, 4 steps of 0.01 a block; ``hebb`` the
Hebbian rule every second block over exact-v3's blend.
A change that alters these roots changes what every chain on that arithmetic
commits: it needs a new arithmetic version, not new constants.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chain.golden_chain import golden_roots

ROOT = Path(__file__).resolve().parents[2]

GOLDEN = {
    # The Hebbian rule every second block (eta 0.05, delta 0.1, cap 2, mass
    # cap 0.02) over exact-v3's genesis: block 1 is v3's own root, the later
    # ones weigh the links by the factors. Recorded on the AMD EPYC dev VM and
    # checked on the device machine's Intel Xeon (in process, generic CPU,
    # one thread).
    "small:hebb": [
        "7da81924ff923f474cdecc97c20b29eb57e57cfe50285b7eb094e177c857dce7",
        "47f13c4af2dc6dca61bc943102562e75dc5e5585aac570705bf36e33cf1bfe75",
        "d1df1625d96dbceb6e4d516893c8658d23bc8a4533caef3aca082b858a6fda1a",
        "a2ce3bfdb1fa784cbd09f2830d8a02880a71b343e8bc2eb3db479cdb6af9558b",
        "d4eae3cfd1d1c31530322d683072925e82e964e1cd2d01dd7ca2d9764dc23edb",
        "56a6e6e3c0c110153e4d2c59e5c7d163bb686cf6dfb74937b920c86e7c4bb964",
    ],
    # The local rule at T = 1, 4 steps of 0.01 a block (exact-v3's genesis
    # otherwise): recorded on the AMD EPYC dev VM and checked on the device
    # machine's Intel Xeon (in process, generic CPU, one thread).
    "small:local": [
        "829b25360d575bba5bf45ef0bf7dde3131f6f6aeb5014f05674577b0b3fbee63",
        "70dd07196c40471e70b2c8c7f05ae03703dcae12e865c50b95f90a178fa7a5dd",
        "924f9948ac68ee35b948a6ab20283427a6e21d12d82f9a08446364e027e18003",
        "dd8353b0cf469289c273f3f4c982ad8bb2e0db078c9600d6b02befd35db59360",
        "bbb7368795c17932a3ade1d886ce2fc7ba61b75a07ad67cc2570d8d8aec3ece1",
        "2e42a93981004d7ff4e9e9e140b17bafa8f218029363d10b6dd01bdcb865a51e",
    ],
    # The free-energy model at T = 0.5 (exact-v3's genesis otherwise): recorded
    # on the AMD EPYC dev VM, in process and with one thread, and checked on
    # the device machine's Intel Xeon.
    "small:fe": [
        "bdb0471b42bbf1ab849d4f827537d3532566776e469e5ac5c553694e9e5f4b17",
        "1ff3444bf1351790f12e360ed7246de49618ff8b71217d5748f35333812e59f2",
        "350c97d18cc2edffdbdeafcaa4f893e205cde4b445bea18d49534b716b56f221",
        "e7e06a573d7fc3490d124ec82015fc15caf999518bbb59b3f33160c4d27d5ac6",
        "8533f8d9e7b71a4c04b63097691683f72b707962e40a056644b3cbfee8a8dcaf",
        "453e086c1e3644041773c84f771e140101b790c6ec46c918343052829c30504d",
    ],
    "small:v3": [
        "7da81924ff923f474cdecc97c20b29eb57e57cfe50285b7eb094e177c857dce7",
        "ab492ca50d16c4a45d861ae65b90aef702d18a0345e72142e06e553421d9b481",
        "f1559d637e0c4202aa73a45380a776491dd3795cb22cb93459be90095c6de8ec",
        "b8cc51f9af5bcdc5bc6e8ba67dee6f0680846a44c687cf68d7b6780fd2715eb2",
        "518fc96cb40a7d45913b18a77f74514ddd4be28da3bb9ad11c6d87084a5043a5",
        "277434e386063c567dbbfecafbe1d9505fcb6c4f46d731ef207ea5c85020d6bd",
    ],
    "small:v2": [
        "5e32689ea42bbcc05f480b9d2c03472515dc10ae406847bbe9c205b677ac6777",
        "5b7296e9e7ac359185153ecc675a77782b95d1989cdada1d5ae5d2d9fb68f92e",
        "f1559d637e0c4202aa73a45380a776491dd3795cb22cb93459be90095c6de8ec",
        "b8cc51f9af5bcdc5bc6e8ba67dee6f0680846a44c687cf68d7b6780fd2715eb2",
        "518fc96cb40a7d45913b18a77f74514ddd4be28da3bb9ad11c6d87084a5043a5",
        "20179e26058ebe20a0b4aec78683d2cace253a9588e485a3258211bca84c725b",
    ],
    "small:new": [
        "2d2a583a4f45017edc1ba41d5d8114df570ceece3faf2f13134fdc3f48236717",
        "122c63f8e38344c63890bd8df5811a7f08e2632e1f33605f1de424876bf2fd81",
        "f41bcaf41f3dd8ec9625a6fa4bb5514e2f5dcf80d65fca1aee88124e087dc731",
        "2944696da7904caa962de23220459eb27be243e1e02335ecd75ecca4b9ce6f30",
        "802e3ef903ff043e13d801eb9eebe6c2d7193338e39549b85766baa4058d5166",
        "78d21f095bbd6f97f7b9f499eee5bace53e545e0721361e7b8caf743a6c3be49",
    ],
    "small:first": [
        "ae48e482fc974ffcff95b5fb505cb6e2adfc4949b24c3fa0c6f94146c47613be",
        "ea5ff4edeb22b7db3eed4c1b17b475208448d60fc13312e0d0082311d2e61b91",
        "a76062144a675b244318e59c818d9e4f094d7f725965f64d4966a590d486448e",
        "3d1405b4979d00813692dd512c4a6fa4f8e1056c0bc01dd47e68b1352387031b",
        "4fe2a326f27af21cb204ba6632991bafcb199cb65f2661c63e3da260af652d61",
        "47c4c8b4e7fc9ffc4e92aa207a70ee068d27852ce357bc2485e6bab08255b2b1",
    ],
    "large:v3": [
        "6bf8fda1042ccc07a95e2eb8bd087e24ae92d1aa11f5621c1113cdedb277a49e",
        "d2812921d6d00c8b1c9bc6a4aeddb4f28f9a0ade6d64db8c1f92a02b87df2e05",
        "b7308646c8dc236535cd8bc972a8a05c8fede2cfae2881d5ca468093475a45d6",
        "a3365d5a7bf7dc271a16d76f0e3ea90f4cbf3f1a48cea192c28207763ac4b1e6",
        "63b51956f1a444be1d10be4067a8397d9830e3fa42f6f80904bb2600bd60a150",
        "672014505462e3c3731ebb9d2aadcea92b223288f09620f6fbbfeb19a3f0dcce",
        "d11ccf9118a4f0d30a6da75f3c2af968b1cdf405c985c767e45b01d7ea3e01cf",
        "d591fadaea9d54bc740b3712f0b76ff6a3513dc14ac16ec87b9daad6fd49ec8b",
        "9944d6baebd8008dfb3d723afd0f657bd3c9076709b3955aed94ec470932741f",
        "ce4193d2886355995d0a89141f51ff8a471b43a67081fee78e666fa8f4da0831",
        "39622766776be848032c2e58ce7448a76f54b35ff525511da48da9192f5d2c6b",
        "14393d6cbbb338b86633cdda1044dd01fb88b08c739565a018d18220ad98d41e",
    ],
    "large:new": [
        "43cf8eec546a7d85bd27a86729c64fd994191ae8debb6d20118c182722e6bc43",
        "f4f63cc4e07ee888d644287265fb3930ae4d9d628ff3928e4b6c7c2727339512",
        "c2e57ef324c3102e27eff65d1601aa26d217294f917d5fab28d5c79fe70c8788",
        "a052a63fd7b2589928d1bf939e5eeccf42a310d781e4b10ea0148e69dfae7e60",
        "c207484c3fa11f217b69392a3c9cace60f533d91a2d213509db306ed67063a67",
        "f62dcee00ea97f598a92763c6c34853b6c2ad2fbb49063cfea77d1e2f2a7a1ea",
        "aace5a0251d2584506073ae029a20bff6f4187ea87e6d90607a7523a9ee9f837",
        "f15948db2c9876f88d5fb94e0902be0ac1f60bb3bd9834557adc69373ee525f1",
        "ea3087e3cc9ed2af60aa4b6f30a509512319a0697bf6f61725e74aaef0f6b034",
        "17087656b6c09af8c0b2a9e811186044d0b35b9a12c6d514a4e234979db26220",
        "7a6bb8b9af46c4658f482a0de7191c15511ca838aab5d59c995c14bed5a713b4",
        "778e3abaed9e5682c7f776f8a98fbfd38483b424f9e928f9620d0d5b2276f6fc",
    ],
}
DEFAULT = (
    "small:v3",
    "small:v2",
    "small:new",
    "small:first",
    "small:fe",
    "small:local",
    "small:hebb",
)


def _in_subprocess(configs, fast_first: bool = False, **env) -> dict[str, list[str]]:
    args = [sys.executable, "-m", "tests.chain.golden_chain"]
    args += ["--fast-first"] if fast_first else []
    path = os.pathsep.join(
        p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    run_env = {**os.environ, "PYTHONPATH": path, **env}
    out = subprocess.run(
        [*args, *configs], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("config", DEFAULT)
def test_golden_roots_in_process(config):
    name, focus = config.split(":")
    from tests.chain.golden_chain import FOCUS

    assert golden_roots(name, FOCUS[focus]) == GOLDEN[config]


def test_a_genesis_written_now_runs_the_pinned_v3_algorithm():
    """What devnet and testnet write (NEW_CHAIN_FOCUS) is the ``v3``
    configuration whose roots are pinned above, choice for choice."""
    from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS
    from tests.chain.golden_chain import FOCUS

    assert dict(NEW_CHAIN_FOCUS) == FOCUS["v3"]


#: DEFAULT in two subprocesses each (the blend's arithmetics; the other focus
#: rules), so that neither nears the suite's per-test time limit on two cores.
HALVES = (DEFAULT[:4], DEFAULT[4:])


@pytest.mark.parametrize("configs", HALVES, ids=["blend", "rules"])
def test_golden_roots_with_numba_compiled_for_a_generic_cpu(configs):
    got = _in_subprocess(configs, fast_first=True, NUMBA_CPU_NAME="generic")
    assert got == {c: GOLDEN[c] for c in configs}


@pytest.mark.parametrize("configs", HALVES, ids=["blend", "rules"])
def test_golden_roots_with_one_thread(configs):
    got = _in_subprocess(configs, NUMBA_NUM_THREADS="1")
    assert got == {c: GOLDEN[c] for c in configs}


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [{}, {"NUMBA_CPU_NAME": "generic"}, {"NUMBA_NUM_THREADS": "1"}],
    ids=["host", "generic", "one-thread"],
)
def test_golden_roots_of_the_large_chain(env):
    configs = ["large:v3", "large:new"]
    assert _in_subprocess(configs, **env) == {c: GOLDEN[c] for c in configs}


def _gpu() -> tuple[bool, str]:
    from focusflow.focus.backends.cuda import cuda_available

    return cuda_available()


@pytest.mark.skipif(not _gpu()[0], reason=f"no GPU for the cuda backend: {_gpu()[1]}")
@pytest.mark.parametrize("configs", [DEFAULT, ("large:v3", "large:new")], ids=["small", "large"])
def test_golden_roots_on_the_gpu(configs, monkeypatch):
    """The chain's engine on the cuda backend (FOCUSFLOW_CHAIN_BACKEND=cuda)
    commits the roots recorded on CPUs, block for block."""
    from focusflow.chain.focus_commit import FocusState
    from tests.chain.golden_chain import FOCUS

    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    assert FocusState(FOCUS["new"]).engine.backend.name == "cuda"
    got = _in_subprocess(list(configs), FOCUSFLOW_CHAIN_BACKEND="cuda")
    assert got == {c: GOLDEN[c] for c in configs}
