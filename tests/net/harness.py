"""Start and drive ``peer_process`` nodes from a test, with every wait bounded."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class PeerProcess:
    """One node process; ``call`` sends a command, ``expect`` waits for an event."""

    def __init__(self, seed: int, *extra: str, wait: bool = True) -> None:
        self.seed = seed.to_bytes(32, "big").hex()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.net.peer_process", "--seed", self.seed, *extra],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.log: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.id = ""
        self.port = 0
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait for the node to listen; starting several first and then waiting overlaps
        their interpreter start-up."""
        ready = self.expect("ready", timeout=20)
        self.id = ready["id"]
        self.port = ready["port"]

    @property
    def addr(self) -> str:
        return f"{self.id}@127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def send(self, **cmd: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def expect(self, *events: str, timeout: float = 10.0) -> dict:
        """The next event named one of ``events`` (others are kept in ``log``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.log.append(event)
            if event["event"] in events:
                return event
        raise AssertionError(f"no {events} from node {self.seed[-4:]} within {timeout} s")

    def call(self, timeout: float = 10.0, **cmd: object) -> dict:
        self.send(**cmd)
        return self.expect(
            "connected", "published", "response", "error", "sent", "stats", timeout=timeout
        )

    def drain(self, seconds: float) -> list[dict]:
        """Every event arriving within ``seconds``."""
        deadline = time.monotonic() + seconds
        got = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        self.log.extend(got)
        return got

    def quit(self) -> None:
        """Ask the node to stop; ``stop`` waits for it (quit several, then stop them)."""
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
            except OSError:
                self.proc.kill()

    def stop(self) -> None:
        self.quit()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        # The process is gone, so its stdout ends and the reader with it; then
        # both pipes are closed here rather than left to the garbage collector.
        self.reader.join(timeout=5)
        close_pipes(self.proc)


def close_pipes(proc: subprocess.Popen) -> None:
    """Close a finished process's stdin and stdout. A ``quit`` whose flush failed
    (the process had already gone) stays in stdin's buffer, and closing stdin
    flushes it again: that BrokenPipeError is expected and dropped, and stdout is
    closed whatever happens (left open, the garbage collector's warning was
    reported as the next test's failure on the same worker)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    finally:
        proc.stdout.close()
