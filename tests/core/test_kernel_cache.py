"""Cached kernels are dropped when a module they call changes.

numba checks only a kernel's own file when it loads the kernel's cache, so a
caller kept the machine code of a callee that had since changed (the first
test shows the stale answer when the check is off). These tests run real
numba compiles in fresh processes over a small package made for the test,
and one over focusflow itself through ``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.core.kernel_cache import STAMP_NAME, _mirror, kernel_sources

pytestmark = pytest.mark.timeout(240)

CALLEE = """
from numba import njit

STEP = {step}

@njit(cache=True)
def g(x):
    return x + STEP
"""
CALLER = """
from numba import njit

from pkgk.b import g

@njit(cache=True)
def f(x):
    return g(x) * 10
"""
INIT = """
import os
from pathlib import Path

if os.environ.get("PKGK_CHECK") == "1":
    from focusflow.core.kernel_cache import check_kernel_cache

    check_kernel_cache(Path(__file__).resolve().parent)
"""


def _package(tmp: Path) -> Path:
    root = tmp / "pkgk"
    root.mkdir()
    (root / "__init__.py").write_text(INIT)
    (root / "a.py").write_text(CALLER)
    (root / "b.py").write_text(CALLEE.format(step=1))
    (root / "unrelated.py").write_text("VALUE = 1\n")
    return root


def _f_of_1(tmp: Path, check: bool) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp), *sys.path]),
        "PKGK_CHECK": "1" if check else "0",
    }
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run(
        [sys.executable, "-c", "import pkgk.a as a; print(a.f(1))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _cached(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "__pycache__").glob("*.nb[ic]"))


def test_a_changed_callee_is_stale_without_the_check_and_fresh_with_it(tmp_path: Path) -> None:
    root = _package(tmp_path)
    assert _f_of_1(tmp_path, check=True) == 20
    assert any(name.startswith("a.f-") for name in _cached(root))
    (root / "b.py").write_text(CALLEE.format(step=2))
    # numba alone keeps the caller's compiled code with the old callee.
    assert _f_of_1(tmp_path, check=False) == 20
    assert _f_of_1(tmp_path, check=True) == 30
    assert _f_of_1(tmp_path, check=True) == 30


def test_unchanged_sources_keep_the_cache(tmp_path: Path) -> None:
    root = _package(tmp_path)
    assert _f_of_1(tmp_path, check=True) == 20
    before = {p: p.stat().st_mtime_ns for p in (root / "__pycache__").glob("*.nb[ic]")}
    assert before
    # A touched kernel file with the same bytes, and an edit outside what
    # kernels import, leave the compiled code in place.
    os.utime(root / "b.py", ns=(1, 1))
    (root / "unrelated.py").write_text("VALUE = 2\n")
    assert _f_of_1(tmp_path, check=True) == 20
    after = {p: p.stat().st_mtime_ns for p in (root / "__pycache__").glob("*.nb[ic]")}
    assert after == before
    stamp = json.loads((root / "__pycache__" / STAMP_NAME).read_text())
    assert stamp["files"]["b.py"][1] == 1
    assert "unrelated.py" not in stamp["files"]


def test_kernel_sources_follow_imports(tmp_path: Path) -> None:
    root = _package(tmp_path)
    (root / "consts.py").write_text("K = 3\n")
    (root / "b.py").write_text("from pkgk.consts import K\n" + CALLEE.format(step="K"))
    (root / "lazy.py").write_text(
        "from focusflow.core.lazy import lazy_njit\n\n\n@lazy_njit(cache=True)\n"
        "def h(x):\n    return x\n"
    )
    names = [p.name for p in kernel_sources(root)]
    assert names == ["a.py", "b.py", "consts.py", "lazy.py"]


def test_focusflow_drops_caches_its_stamp_does_not_vouch_for(tmp_path: Path) -> None:
    import focusflow

    root = Path(focusflow.__file__).resolve().parent
    cache_root = tmp_path / "numba-cache"
    kernels = _mirror(cache_root, root / "focus")
    kernels.mkdir(parents=True)
    planted = kernels / "reduce.ordered_sum-1.py311.nbi"
    planted.write_bytes(b"stale")
    stamp = _mirror(cache_root, root) / STAMP_NAME
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"format": 1, "digest": "0" * 64, "files": {}}))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_root)}
    run = [sys.executable, "-c", "import focusflow"]
    subprocess.run(run, env=env, check=True, timeout=60)
    assert not planted.exists()
    record = json.loads(stamp.read_text())
    assert record["digest"] != "0" * 64
    assert "focus/reduce.py" in record["files"]
    # The stamp now vouches for the sources: a cache written after it stays.
    planted.write_bytes(b"fresh")
    subprocess.run(run, env=env, check=True, timeout=60)
    assert planted.exists()


def test_a_chosen_cache_directory_leaves_the_tree_alone(tmp_path: Path) -> None:
    root = _package(tmp_path)
    assert _f_of_1(tmp_path, check=True) == 20
    in_tree = _cached(root)
    assert in_tree
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "PKGK_CHECK": "1",
        "NUMBA_CACHE_DIR": str(tmp_path / "elsewhere"),
    }
    (root / "b.py").write_text(CALLEE.format(step=2))
    out = subprocess.run(
        [sys.executable, "-c", "import pkgk.a as a; print(a.f(1))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert out.stdout.split()[-1] == "30"
    assert _cached(root) == in_tree


def test_a_fresh_chosen_cache_directory_keeps_what_it_compiled(tmp_path: Path) -> None:
    """The stamp goes where the caches go, also into a directory not made yet:
    a second process loads the kernels the first one compiled."""
    _package(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "PKGK_CHECK": "1",
        "NUMBA_CACHE_DIR": str(tmp_path / "not-made-yet"),
    }
    probe = "import pkgk.a as a; a.f(1); print(sum(a.f.stats.cache_hits.values()))"
    hits = [
        subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert hits == ["0", "1"]
