"""Start a ``byzantine_peer`` process in place of a testnet validator, and read
the honest validators' logs for who penalised whom; every wait bounded."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from focusflow.net.identity import short_id
from focusflow.node.home import Home
from focusflow.testing.testnet import LocalTestnet
from tests.helpers import ROOT


def node_id(net: LocalTestnet, k: int) -> bytes:
    """Validator k's node id (its validator key)."""
    return Home(net.home / f"v{k}").load_validator_key().public_key


class Byzantine:
    """``tests.adversarial.byzantine_peer`` for ``net``'s validator ``k`` (stopped first)."""

    def __init__(self, net: LocalTestnet, k: int, mode: str, *extra: str) -> None:
        net.kill(k)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
        self.stderr = net.home / "byzantine.log"
        with open(self.stderr, "ab") as err:
            self.proc = self._start(net, k, mode, extra, env, err)
        self.events: queue.Queue[dict] = queue.Queue()
        self.last: dict[str, dict] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.id = bytes.fromhex(self.expect("ready", 60)["id"])

    @staticmethod
    def _start(
        net: LocalTestnet, k: int, mode: str, extra: tuple[str, ...], env: dict, err
    ) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.adversarial.byzantine_peer",
                "--home",
                str(net.home / f"v{k}"),
                "--mode",
                mode,
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )

    def _read(self) -> None:
        assert self.proc.stdout is not None
        # The pipe is closed here, at the process's end of output: the reader
        # owns it (closing it from stop() could race this thread's read).
        with self.proc.stdout as lines:
            for line in lines:
                event = json.loads(line)
                self.last[event["event"]] = event
                self.events.put(event)

    def expect(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["event"] == name:
                return event
        log = self.stderr.read_text(errors="replace")[-3000:]
        raise AssertionError(f"no {name} from the byzantine process in {timeout} s\n{log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)  # it closes the pipe at the end of the output


def log_of(net: LocalTestnet, k: int) -> str:
    path = Path(net.home / f"v{k}" / "node.log")
    return path.read_text(errors="replace") if path.exists() else ""


def banned_by(net: LocalTestnet, k: int, peer: bytes) -> bool:
    """Validator k's log says it banned ``peer``."""
    return f"banning {short_id(peer)}" in log_of(net, k)


def offences_by(net: LocalTestnet, k: int, peer: bytes) -> int:
    """Offences validator k's log records against ``peer``."""
    return log_of(net, k).count(f" by {short_id(peer)}: ")
