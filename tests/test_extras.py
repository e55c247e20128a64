"""The products beside the node are extras: a base install runs a node without them,
and a command whose extra is missing says which one to install.

``pyproject.toml`` keeps the extras' packages out of the base requirements; each
case below runs the real ``focusflow`` command in a fresh interpreter with the
extras' packages made missing the way Python documents (``sys.modules[name] =
None`` makes ``import name`` raise ImportError), as on a base install.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from focusflow.core.extras import EXTRAS, install_line
from focusflow.testing.process import node_env
from focusflow.testing.web import free_port
from tests.helpers import cli_program

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "rewrite" / "programs"
#: What the extras bring, by distribution name (torch: what compile's fine-tuning
#: imports, which no list requires); none may be a base requirement.
HEAVY = {"onnx", "onnxruntime", "torch", "psycopg", "redis", "wgpu", "cupy-cuda12x", "ray"}
#: Every package an extra provides, by import name.
EXTRA_MODULES = tuple(sorted({m for modules in EXTRAS.values() for m in modules} | {"torch"}))


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (``psycopg[binary]>=3.1`` -> ``psycopg``)."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_base_install_requires_none_of_the_extras_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    assert not base & HEAVY, base & HEAVY
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    assert {"onnx", "onnxruntime"} <= extras["compile"]
    assert {"psycopg", "redis"} <= extras["konomi"]
    assert "wgpu" in extras["hvm"]
    assert "ray" in extras["cluster"]
    # the tests install every product extra (./dev test), so their tests run
    assert "focusflow[konomi,compile,hvm,cluster]" in project["optional-dependencies"]["test"]
    # The metadata of the install, once it was made from this pyproject (./dev
    # reinstalls when pyproject.toml changes): its base requirements agree.
    requires = importlib.metadata.requires("focusflow") or []
    if any('extra == "compile"' in r for r in requires):
        installed = {_name(r) for r in requires if "extra ==" not in r}
        assert not installed & HEAVY, installed & HEAVY


def _focusflow(argv: list[str], missing: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", cli_program(argv, missing)],
        capture_output=True,
        text=True,
        timeout=180,
        env=node_env(),
    )


def test_compile_without_its_extra_names_it(tmp_path: Path):
    graph = tmp_path / "g.edges"
    graph.write_text("a b\nb c\n")
    res = _focusflow(
        ["compile", "--graph", str(graph), "--format", "edges", "--out", str(tmp_path / "m")],
        missing=("onnx",),
    )
    assert res.returncode == 2, res.stderr
    assert "'onnx'" in res.stderr and install_line("compile") in res.stderr
    assert res.stderr.rstrip().endswith("[missing_extra]")
    assert not (tmp_path / "m").exists()


def test_infer_from_a_model_without_the_compile_extra_names_it(tmp_path: Path):
    res = _focusflow(
        ["infer", "--model", str(tmp_path), "--context", "a"], missing=("onnxruntime",)
    )
    assert res.returncode == 2, res.stderr
    assert "'onnxruntime'" in res.stderr and install_line("compile") in res.stderr
    assert res.stderr.rstrip().endswith("[missing_extra]")


def test_a_sharded_solve_without_the_cluster_extra_names_it(tmp_path: Path):
    graph = tmp_path / "g.edges"
    graph.write_text("a b\nb c\n")
    res = _focusflow(["focus", "compute", str(graph), "--shards", "2"], missing=("ray",))
    assert res.returncode == 2, res.stderr
    assert "'ray'" in res.stderr and install_line("cluster") in res.stderr
    assert res.stderr.rstrip().endswith("[missing_extra]")


def test_the_webgpu_evaluator_without_the_hvm_extra_names_it():
    res = _focusflow(
        ["hvm", "run", str(PROGRAMS / "list.hvm"), "--backend", "wgpu"], missing=("wgpu",)
    )
    assert res.returncode == 2, res.stderr
    assert install_line("hvm") in res.stderr
    assert res.stderr.rstrip().endswith("[hvm_backend_unavailable]")


def test_a_devnet_runs_with_every_extra_missing_and_loads_none(tmp_path: Path):
    port = free_port()
    argv = ["devnet", "--home", str(tmp_path / "home"), "--port", str(port)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            cli_program([*argv, "--block-time", "0.2s"], EXTRA_MODULES, EXTRA_MODULES),
        ],
        env=node_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        height = 0
        while height < 2:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the devnet did not make two blocks"
            with contextlib.suppress(httpx.HTTPError, ValueError):
                status = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=2)
                height = status.json()["height"]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"loaded": []}
