"""Start a byzantine peer process (:mod:`focusflow.testing.byzantine_peer`) in place
of a testnet validator, and read the honest validators' logs for who penalised
whom; every wait bounded."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from focusflow.net.identity import short_id
from focusflow.node.home import Home
from focusflow.testing.process import node_env
from focusflow.testing.testnet import LocalTestnet


def node_id(net: LocalTestnet, k: int) -> bytes:
    """Validator k's node id (its validator key)."""
    return Home(net.home / f"v{k}").load_validator_key().public_key


class Byzantine:
    """A byzantine peer (``mode``: ``junk`` or ``liar``, see
    :mod:`focusflow.testing.byzantine_peer`) for ``net``'s validator ``k``
    (stopped first); ``extra``: more options of the peer (``--target ID``)."""

    def __init__(self, net: LocalTestnet, k: int, mode: str, *extra: str) -> None:
        net.kill(k)
        env = node_env(net.source)
        self.stderr = net.home / "byzantine.log"
        with open(self.stderr, "ab") as err:
            self.proc = self._start(net, k, mode, extra, env, err)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: dict[str, dict[str, Any]] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.id = bytes.fromhex(self.expect("ready", 60)["id"])

    @staticmethod
    def _start(
        net: LocalTestnet,
        k: int,
        mode: str,
        extra: tuple[str, ...],
        env: dict[str, str],
        err: IO[bytes],
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "focusflow.testing.byzantine_peer",
                "--home",
                str(net.home / f"v{k}"),
                "--mode",
                mode,
                *extra,
            ],
            cwd=net.home,
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

    def expect(self, name: str, timeout: float) -> dict[str, Any]:
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
