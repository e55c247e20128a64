"""The passphrase prompts as a person meets them: a real terminal (a pty)."""

from __future__ import annotations

import os
import pty
import select
import sys
import termios
import time
from pathlib import Path

import pytest

from focusflow.core.errors import WrongPassphraseError
from focusflow.core.keystore import Keystore

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the focusflow command on the pty
            os.execve(sys.executable, [sys.executable, "-m", "focusflow", *args], env)
        self.seen = ""
        self.pos = 0

    def expect(self, text: str, timeout: float = 60.0) -> None:
        """Wait for ``text`` in the output after the previous match (a repeated prompt
        must be its new occurrence, not the old one)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"never saw {text!r}; got {self.seen!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the child closed the pty
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before {text!r}; got {self.seen!r}")
            self.seen += chunk.decode(errors="replace")
        self.pos = self.seen.index(text, self.pos) + len(text)

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait_hidden(self, timeout: float = 30.0) -> None:
        """Wait until the prompt has turned echo off: getpass does so after showing
        the prompt and flushes what was typed before, so a person types after it."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ECHO:
            if time.monotonic() > deadline:
                raise AssertionError("the prompt never turned echo off")
            time.sleep(0.01)

    def send_secret(self, line: str) -> None:
        self.wait_hidden()
        self.send(line)

    def wait(self) -> int:
        while True:  # drain so the child never blocks on a full pty
            try:
                if not os.read(self.fd, 4096):
                    break
            except OSError:
                break
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if k not in ("FOCUSFLOW_PASSPHRASE",)}
    e.update(PYTHONPATH=str(ROOT / "src"), FOCUSFLOW_HOME=str(tmp_path / "home"), TERM="dumb")
    return e


def test_add_asks_twice_hidden_and_again_on_mismatch(env, tmp_path):
    term = Terminal("keys", "add", "alice", env=env)
    term.expect("Passphrase for alice:")
    term.send_secret("one")
    term.expect("Repeat it:")
    term.send_secret("two")
    term.expect("differ")
    term.expect("Passphrase for alice:")
    term.send_secret("s3cret")
    term.expect("Repeat it:")
    term.send_secret("s3cret")
    term.expect("address:")
    assert term.wait() == 0
    assert "s3cret" not in term.seen  # never echoed
    store = Keystore(tmp_path / "home" / "keys")
    assert store.load("alice", "s3cret").address == store.info("alice").address
    with pytest.raises(WrongPassphraseError):
        store.load("alice", "one")


def test_export_confirms_then_asks_the_passphrase(env, tmp_path):
    store = Keystore(tmp_path / "home" / "keys")
    from focusflow.core.keys import KeyPair

    key = KeyPair.from_seed(bytes(range(32)))
    store.add("bob", key, "pw")
    term = Terminal("keys", "export", "bob", env=env)
    term.expect("Print the secret seed of bob")
    term.send("y")
    term.expect("Passphrase for bob:")
    term.send_secret("pw")
    term.expect(key.seed.hex())
    assert term.wait() == 0


def test_declined_export_prints_no_seed(env, tmp_path):
    from focusflow.core.keys import KeyPair

    key = KeyPair.from_seed(bytes(range(32)))
    Keystore(tmp_path / "home" / "keys").add("bob", key, None)
    term = Terminal("keys", "export", "bob", env=env)
    term.expect("Print the secret seed of bob")
    term.send("n")
    term.expect("error: export cancelled [invalid_parameter]")
    assert term.wait() == 2
    assert key.seed.hex() not in term.seen


def test_end_of_input_at_the_prompt_aborts_cleanly(env, tmp_path):
    term = Terminal("keys", "add", "carol", env=env)
    term.expect("Passphrase for carol:")
    term.wait_hidden()
    os.write(term.fd, b"\x04")  # Ctrl-D: end of input
    term.expect("error: aborted")
    assert term.wait() == 130
    assert not (tmp_path / "home" / "keys" / "carol.json").exists()
