"""``focusflow devnet --focus-model M [--temperature T]``: a new devnet whose
genesis names a focus model commits blocks under it; a bad choice is one error
line and writes no home; an existing home keeps the focus it was made with."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.node.home import init_devnet
from focusflow.testing.devnet import link_msg, signed, start_devnet, wait_tx
from focusflow.testing.process import SOURCE, node_env


def test_a_new_home_names_the_model_and_an_existing_one_keeps_its_own(tmp_path):
    home, created = init_devnet(
        tmp_path / "dev", focus={"model": "free-energy", "temperature": 0.5}
    )
    assert created
    focus = json.loads(home.genesis.read_text())["params"]["focus"]
    assert focus["model"] == "free-energy" and focus["temperature"] == 0.5
    assert focus["arithmetic"] == "exact-v3"
    again, created = init_devnet(tmp_path / "dev", focus={"model": "local-rule"})
    assert not created
    assert json.loads(again.genesis.read_text())["params"]["focus"] == focus


@pytest.mark.parametrize(
    ("focus", "message"),
    [
        ({"model": "entropy"}, "model must be one of"),
        ({"model": "free-energy", "temperature": -1.0}, "temperature must be > 0"),
    ],
)
def test_a_bad_model_writes_no_home(tmp_path, focus, message):
    with pytest.raises(InvalidParameterError, match=message):
        init_devnet(tmp_path / "dev", focus=focus)
    assert not (tmp_path / "dev").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--temperature", "0.5"], "--temperature needs --focus-model"),
        (["--focus-model", "entropy"], "model must be one of"),
    ],
)
def test_bad_options_are_one_error_line(tmp_path, args, says):
    proc = subprocess.run(
        [sys.executable, "-m", "focusflow", "devnet", "--home", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=node_env(SOURCE),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], proc.stderr
    assert lines[0].endswith("[invalid_parameter]")
    assert not (tmp_path / "d").exists()


def test_a_free_energy_devnet_commits_the_models_focus(tmp_path):
    """The committed focus of two links is F's minimiser at T = 0.5, as
    ``compute`` finds it in the library, not the blend's fixed point."""
    from focusflow.focus import compute
    from focusflow.graph import Cybergraph

    net = start_devnet(
        tmp_path / "fe", "--focus-model", "free-energy", "--temperature", "0.5", timeout=240
    )
    try:
        tx = signed(net, net.dev_key(), [link_msg(("cats", "mammals"), ("dogs", "mammals"))])
        with net.client() as c:
            r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
            assert r.status_code == 202, r.text
        assert wait_tx(net, r.json()["hash"])["code"] == "ok"
        with net.client() as c:
            top = c.get("/v1/focus/top").json()["particles"]
    finally:
        net.stop()
    committed = sorted(p["focus"] for p in top)
    g = Cybergraph(require_cids=False)
    g.add_links(["cats", "dogs"], ["mammals", "mammals"])
    want = {
        model: sorted(
            compute(
                g, model=model, temperature=0.5, arithmetic="exact-v3", springs_method="cg"
            ).focus
        )
        for model in ("free-energy", "blend")
    }
    assert max(abs(a - b) for a, b in zip(committed, want["free-energy"], strict=True)) < 1e-9
    assert max(abs(a - b) for a, b in zip(committed, want["blend"], strict=True)) > 1e-2
