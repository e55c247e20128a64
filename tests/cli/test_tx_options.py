"""The common options of the ``tx`` commands, declared once: every command has
them, after its own, and a command receives them as one TxOptions."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Annotated

import typer
from typer.testing import CliRunner

from focusflow.cli.main import app
from focusflow.cli.tx_options import COMMON, DEFAULT_SIGNER, TxOptions, tx_options

#: Flags of the common options, in the order every command lists them.
FLAGS = ["--from", "--fee", "--nonce", "--wait", "--timeout", "--home", "--node", "--json",
         "--chain-id", "--max-fee"]  # fmt: skip


def _tx_commands() -> dict[str, object]:
    """``{"tx pool add": callback, ...}``: every command under ``focusflow tx``."""
    group = typer.main.get_command(app).commands["tx"]
    found = {}

    def walk(prefix: str, cmd) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(f"{prefix} {name}", sub)
        if not hasattr(cmd, "commands"):
            found[prefix] = cmd

    walk("tx", group)
    return found


def test_the_options_are_the_fields_of_tx_options():
    assert list(COMMON) == [f.name for f in fields(TxOptions)]


def test_every_tx_command_takes_the_common_options_after_its_own():
    commands = _tx_commands()
    assert len(commands) == 28
    for name, cmd in commands.items():
        flags = [opt for p in cmd.params for opt in p.opts if opt.startswith("--")]
        common = [f for f in flags if f in FLAGS]
        assert flags[-len(common) :] == common, name
        if name == "tx pin prove":  # it waits, and picks its nonces itself
            assert common == [f for f in FLAGS if f not in ("--nonce", "--wait")]
        else:
            assert common == FLAGS, name


def test_a_command_receives_what_was_given_as_one_tx_options():
    got: list[tuple[str, TxOptions]] = []
    demo = typer.Typer()

    @demo.command("send")
    @tx_options()
    def send(to: Annotated[str, typer.Argument()], *, opts: TxOptions) -> None:
        got.append((to, opts))

    @demo.command("prove")
    @tx_options(fixed={"nonce": None, "wait": True})
    def prove(*, opts: TxOptions) -> None:
        got.append(("", opts))

    runner = CliRunner()
    r = runner.invoke(demo, ["send", "alice", "--fee", "7", "--wait", "--json", "--home", "h"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(demo, ["prove", "--from", "bob", "--timeout", "5"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(demo, ["prove", "--nonce", "1"]).exit_code == 2
    assert got == [
        ("alice", TxOptions(DEFAULT_SIGNER, 7, None, True, 30.0, "h", None, True, None, None)),
        ("", TxOptions("bob", None, None, True, 5.0, None, None, False, None, None)),
    ]
    assert list(inspect.signature(send).parameters)[:2] == ["to", "signer"]
