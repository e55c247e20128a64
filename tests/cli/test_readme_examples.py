"""The README's examples that talk to a node, run as written in a user's shell
(a subprocess each, from the repository root or a working directory of its own),
against real devnet processes. Only the node's address differs: the README's
default port is another test's, so each devnet listens on a free one and
``http://127.0.0.1:26657`` is replaced by its address, and a path the README
names in a home it would share (``/tmp/econ``, the default home's genesis) by
the test's own."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import httpx
import pytest

from focusflow.testing.devnet import start_devnet
from tests.helpers import ROOT

README_NODE = "http://127.0.0.1:26657"


def readme_block(heading: str, after: str = "") -> list[str]:
    """The commands of the first ``sh`` block under ``heading`` (after the text
    ``after`` in that section), comments cut off."""
    section = (ROOT / "README.md").read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    section = section.split(after, 1)[1] if after else section
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def run(command: str, cwd, env: dict[str, str], **replace: str) -> str:
    """One README line in a shell as a user types it; its standard output."""
    for old, new in replace.items():
        command = command.replace(old, new)
    words = shlex.split(command)
    if words[0].startswith(".venv/"):
        words[0] = str(ROOT / words[0])
    if ">" in words:  # `echo ... > file`
        cut = words.index(">")
        (cwd / words[cut + 1]).write_text(" ".join(words[1:cut]) + "\n")
        return ""
    done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("readme") / "home", timeout=240)
    yield net
    net.stop()


@pytest.fixture
def shell(node, tmp_path):
    """The user's shell after the Quick start: the devnet's home exported."""
    env = {**os.environ, "FOCUSFLOW_HOME": str(node.home)}
    env.pop("FOCUSFLOW_PASSPHRASE", None)
    return env


def test_the_light_client_example(node, shell, tmp_path):
    # The Quick start linked "cats" and "mammals" before this example.
    run(".venv/bin/focusflow tx link cats mammals --wait", tmp_path, shell)
    deadline = time.monotonic() + 60
    while httpx.get(f"{node.api}/v1/status").json()["height"] < 6:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    places = {README_NODE: node.api, "~/.local/share/focusflow/devnet": str(node.home)}
    sync, query, sample = readme_block("Trusting no node: the light client")
    run(sync, tmp_path, shell, **places)
    answer = json.loads(run(query, tmp_path, shell, **places))
    assert answer["text"] == "mammals" and answer["verified"] is True, answer
    sampled = json.loads(run(sample, tmp_path, shell, **places))
    assert sampled["available"] is True and sampled["samples"] >= 1, sampled


def test_the_datalog_examples(node, shell, tmp_path):
    (tmp_path / "edges.tsv").write_text("a b\nc b\nd b\nb a\nc a\n")
    run(".venv/bin/focusflow tx link birds mammals --wait", tmp_path, shell)
    run(".venv/bin/focusflow tx link cats mammals --wait", tmp_path, shell)
    on_file, write_hubs, on_node = readme_block("Inference", "Datalog in Soufflé")
    assert run(on_file, tmp_path, shell).split() == ["y", "a", "b"]
    run(write_hubs, tmp_path, shell)
    hubs = json.loads(run(on_node, tmp_path, shell, **{README_NODE: node.api}))
    assert hubs["relation"] == "hub" and hubs["rows"], hubs


def test_the_economy_example(tmp_path):
    start, *commands = readme_block("The economy: CYB, H and the exchange")
    assert shlex.split(start)[1:] == ["devnet", "--economy", "--home", "/tmp/econ"]
    home = tmp_path / "econ"
    net = start_devnet(home, "--economy", timeout=240)
    try:
        env = {k: v for k, v in os.environ.items() if k != "FOCUSFLOW_HOME"}
        outputs = [run(c, tmp_path, env, **{"/tmp/econ": str(home)}) for c in commands]
        assert "committed" in outputs[0] and "committed" in outputs[1], outputs
        assert outputs[2].strip(), outputs
    finally:
        assert net.stop() == 0


@pytest.mark.slow  # compiles a transformer from all of WordNet: minutes on 2 cores
def test_the_inference_examples(node, shell, tmp_path):
    run(".venv/bin/focusflow import wordnet --out wordnet.csv", tmp_path, shell)
    run(".venv/bin/focusflow tx link cats mammals --wait", tmp_path, shell)
    outputs = [
        run(c, tmp_path, shell, **{README_NODE: node.api})
        for c in readme_block("Inference: what comes next after a context")
    ]
    assert "canis.n.01" in outputs[0], outputs[0]  # texts beside the CIDs
    assert (tmp_path / "wn-model").is_dir()
    assert "mammals" in outputs[4], outputs[4]
