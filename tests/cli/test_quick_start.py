"""The path a new user takes: the README's Quick start, as written, against a real devnet
started the way the README's own example starts it (``--home`` elsewhere)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from focusflow.core.cid import cid_of_text
from focusflow.core.home import default_home
from focusflow.node.devnet import cli_notes
from focusflow.testing.devnet import start_devnet
from tests.cli.helpers import assert_user_error, run_cli
from tests.helpers import ROOT

EXPORT = re.compile(r"export FOCUSFLOW_HOME=(\S+)\s*$")


def quick_start() -> list[str]:
    """The commands of the README's Quick start block, comments cut off."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture
def second_shell(tmp_path, monkeypatch):
    """A user's fresh shell: a home directory of its own, no focusflow settings."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in ("XDG_DATA_HOME", "FOCUSFLOW_HOME", "FOCUSFLOW_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_readme_quick_start_works_as_written(tmp_path, second_shell, capsys):
    net = start_devnet(tmp_path / "dn", timeout=240)
    try:
        printed = [m.group(1) for line in net.log().splitlines() if (m := EXPORT.search(line))]
        assert printed == [shlex.quote(str((tmp_path / "dn").resolve()))], net.log()

        # What a user who skips the export line gets: the wallet of another home.
        assert_user_error(run_cli(capsys, "tx", "link", "cats", "mammals"), "unknown_key")

        commands = quick_start()
        assert commands[0].startswith("export FOCUSFLOW_HOME=")
        second_shell.setenv("FOCUSFLOW_HOME", shlex.split(printed[0])[0])
        # `keys add` asks on a terminal; the README names the variable for a script.
        second_shell.setenv("FOCUSFLOW_PASSPHRASE", "correct horse")
        outputs = {}
        for command in commands[1:]:
            words = shlex.split(command)
            if words[0] != ".venv/bin/focusflow":
                assert words[0] == "xdg-open"  # the web page: tests/api/test_web_page.py
                continue
            result = run_cli(capsys, *words[1:])
            assert result.code == 0, (command, result.err)
            outputs[" ".join(words[1:3])] = result.out

        assert (net.home / "keys" / "alice.json").exists()
        cats, mammals = cid_of_text("cats"), cid_of_text("mammals")
        top = outputs["query top"]
        for cid, text in ((cats, "cats"), (mammals, "mammals")):
            assert text in next(line for line in top.splitlines() if cid in line)
        assert "2 of 2 particles" in top
        assert mammals in outputs["query particle"] and "mammals" in outputs["query particle"]
    finally:
        assert net.stop() == 0


def test_a_devnet_in_the_default_home_needs_no_export(second_shell):
    assert cli_notes(default_home()) == []


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "add"),
        ("keys", "import"),
        ("keys", "export"),
        ("tx", "link"),
        ("tx", "send"),
        ("tx", "validator", "register"),
        ("import", "bostrom"),
        ("import", "wordnet"),
    ],
    ids=" ".join,
)
def test_commands_that_unlock_a_key_name_the_passphrase_variable(capsys, command):
    result = run_cli(capsys, *command, "--help")
    assert result.code == 0, result.err
    assert "$FOCUSFLOW_PASSPHRASE" in " ".join(result.out.split())


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The README's Python example, unchanged, in a fresh interpreter beside a real
    bostrom dump named as the example names it."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Computing focus on your own graph", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shutil.copy(ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv",
                tmp_path / "links.csv")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    last = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert len(last) == 3 and all(cid.startswith(("Qm", "bafk")) for cid, _ in last)


def test_the_readme_chain_example_runs_as_written(tmp_path):
    """The README's chain example, unchanged, in a fresh interpreter: a chain in
    the working directory, one link committed in its first block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The chain", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "1"]
    assert (tmp_path / "node-home").is_dir()


def test_the_readme_focus_examples_run_as_written(tmp_path):
    """The README's "Computing focus on your own graph" commands, as written, in a
    directory holding the files they name: a real bostrom dump, an edge list with
    and without weights, stakes; WordNet from Debian's database, texts shown."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Computing focus on your own graph", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    sample = ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv"
    shutil.copy(sample, tmp_path / "links.csv")
    (tmp_path / "edges.tsv").write_text("# an edge list\na\tb\t2\nb\tc\nc\ta\t0.5\nd\ta\n")
    neurons = sorted({line.split(",")[0] for line in sample.read_text().splitlines()[1:]})
    (tmp_path / "stakes.csv").write_text(
        "neuron,stake\n" + "".join(f"{n},{i + 1}\n" for i, n in enumerate(neurons))
    )
    outputs = []
    for command in commands:
        done = subprocess.run(
            [str(ROOT / w) if w.startswith(".venv/") else w for w in shlex.split(command)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout)
    assert len(outputs[0].splitlines()) == 10
    ranked = [line.split("\t")[0] for line in (tmp_path / "focus.tsv").read_text().splitlines()]
    assert sorted(p for p in ranked if not p.startswith("#")) == ["a", "b", "c", "d"]
    assert json.loads(outputs[2])
    assert (tmp_path / "wordnet.particles.tsv").is_file()
    assert re.search(r"\.n\.\d\d", outputs[4]), outputs[4]  # synsets by name, not CIDs only
