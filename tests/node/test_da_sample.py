"""`focusflow da sample` against real devnet processes: an honest node's blocks are
available; a node that withholds more than half of every square is caught.

Both nodes are started as users start them (``python -m focusflow devnet``),
the withholding one with the hidden, tests-only ``--fault-plan`` (``da_withhold``);
the light client runs as a subprocess too and sees only HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from focusflow.da import DEFAULT_SAMPLES, detection_probability
from focusflow.node.faults import FaultPlan
from focusflow.testing.devnet import link_msg, signed, start_devnet, wait_tx
from tests.helpers import ROOT

#: 60 links make a transaction of about 4.8 KB: 11 shares, a k = 4 square.
LINKS = [(f"da-{i}", f"da-{i + 1}") for i in range(60)]


def da_sample(api: str, height: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "da", "sample", "--node", api, str(height), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )


def block_with_links(net) -> int:
    """Height of a committed block carrying one transaction of 60 links."""
    tx = signed(net, net.dev_key(), [link_msg(*LINKS)])
    with net.client() as c:
        r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
        assert r.status_code == 202, r.text
    return wait_tx(net, r.json()["hash"])["height"]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("honest") / "home")
    yield net
    net.stop()


@pytest.fixture(scope="module")
def withholding(tmp_path_factory):
    net = start_devnet(
        tmp_path_factory.mktemp("withholding") / "home",
        "--fault-plan",
        FaultPlan(da_withhold=0.6).to_json(),
    )
    yield net
    net.stop()


def test_honest_node_block_is_available(honest):
    height = block_with_links(honest)
    with honest.client() as c:
        header = c.get(f"/v1/blocks/{height}").json()
        da = c.get(f"/v1/da/{height}").json()
    assert da["k"] == 4 and da["data_root"] == header["data_root"]
    proc = da_sample(honest.api, height, "--json", "--seed", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["available"] is True and out["reason"] is None
    assert out["data_root"] == header["data_root"] and out["k"] == 4 and out["width"] == 8
    assert out["samples"] == out["verified"] == DEFAULT_SAMPLES and out["failed"] == []
    assert out["confidence"] == pytest.approx(detection_probability(4, DEFAULT_SAMPLES))
    assert out["confidence"] >= 0.999
    # Text form, another draw, an empty block (k = 1: its 4 shares are all sampled).
    text = da_sample(honest.api, height, "--samples", "40")
    assert text.returncode == 0 and text.stdout.startswith(f"block {height}: available")
    assert "40 of 40 distinct shares verified" in text.stdout
    empty = da_sample(honest.api, 1, "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["samples"] == 4


def test_withholding_node_is_reported_unavailable_with_its_confidence(withholding):
    height = block_with_links(withholding)
    with withholding.client() as c:
        assert c.get(f"/v1/da/{height}").json()["k"] == 4  # roots are published...
        codes = {
            c.get(f"/v1/da/{height}/shares/{row}/{col}").status_code
            for row in range(8)
            for col in range(8)
        }
    assert codes == {200, 404}  # ...but only part of the square is served
    proc = da_sample(withholding.api, height, "--json", "--seed", "1")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["available"] is False and out["k"] == 4
    assert (
        out["samples"] == DEFAULT_SAMPLES
        and len(out["failed"]) == DEFAULT_SAMPLES - out["verified"]
    )
    # 7 of 8 rows and columns withheld: 49 of 64 shares; 25 samples see most of that.
    assert 0.5 < out["failed_fraction"] < 1.0
    assert out["confidence"] == pytest.approx(detection_probability(4, DEFAULT_SAMPLES))
    assert out["confidence"] >= 0.999
    assert "samples missing or invalid" in out["reason"]
    text = da_sample(withholding.api, height, "--samples", "5", "--seed", "2")
    assert text.returncode == 3
    assert text.stdout.startswith(f"block {height}: unavailable")
    percent = f"{100 * detection_probability(4, 5):.4f} %"
    assert f"confidence {percent}" in text.stdout


def test_bad_input_exits_2_and_says_why(honest):
    cases = [
        ((honest.api, 10**9), "no block at height"),
        ((honest.api, 1, "--samples", "0"), "--samples must be at least 1"),
        (("not-a-url", 1), "--node must be an http"),
        (("http://127.0.0.1:9", 1), "cannot reach a node at http://127.0.0.1:9"),
    ]
    for args, message in cases:
        proc = da_sample(*map(str, args))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and proc.stdout == ""
