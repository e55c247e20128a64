"""What ``focusflow testnet`` does when one of its nodes dies.

The testnet runs each validator and full node as its own process. Without a
watch, a node that crashed (or was killed) left the others running and said
nothing: the network lost a voter and the user learnt it only from a stalled
chain. :class:`Supervisor` polls the processes the testnet waits on and, for
each one that exits, logs one warning line naming the node, its exit status
(the signal, when it was killed by one) and its log file, ``DIR/vK/node.log``.

With ``restart``, a node that exited is started again on the same home after a
backoff (``BACKOFF_S`` doubling per restart, at most ``BACKOFF_MAX_S``), at most
``max_restarts`` times in a row; a node that then stays up for
``STABLE_S`` has its count reset, so a rare crash is always restarted while a
node that crashes at every start is given up on, with a line saying so.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("focusflow.node")

#: The first restart's wait, doubled for each further one in a row.
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
#: Restarts in a row before a node is given up on.
MAX_RESTARTS = 5
#: Seconds a restarted node must stay up for its restarts to count from zero again.
STABLE_S = 60.0


def exit_text(code: int) -> str:
    """An exit status as people read it: ``code 1``, or ``code -9 (SIGKILL)``."""
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


@dataclass
class Watched:
    """One node process under watch: its name (``v2``), home and current process."""

    name: str
    home: Path
    proc: subprocess.Popen[bytes]
    started: float
    restarts: int = 0
    due: float | None = None  # when a restart is scheduled
    given_up: bool = False

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"


class Supervisor:
    """Reports node processes that exit and, with ``restart``, starts them again."""

    def __init__(
        self,
        nodes: Sequence[tuple[str, Path, subprocess.Popen[bytes]]],
        start: Callable[[Path], subprocess.Popen[bytes]],
        *,
        restart: bool = False,
        max_restarts: int = MAX_RESTARTS,
        on_restart: Callable[[], None] | None = None,
        now: float = 0.0,
    ) -> None:
        self.nodes = [Watched(name, home, proc, now) for name, home, proc in nodes]
        self.start = start
        self.restart = restart
        self.max_restarts = max_restarts
        self.on_restart = on_restart

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The current process of every node (what a stop must signal)."""
        return [n.proc for n in self.nodes]

    def poll(self, now: float) -> None:
        """Look at every node once: report an exit, start a restart that is due."""
        for node in self.nodes:
            if node.due is not None:
                if now >= node.due:
                    self._start_again(node, now)
                continue
            code = node.proc.poll()
            if code is None:
                if node.restarts and now - node.started >= STABLE_S:
                    node.restarts = 0
                continue
            if node.given_up:
                continue
            self._exited(node, code, now)

    def _exited(self, node: Watched, code: int, now: float) -> None:
        fields = {"node": node.name, "code": code, "log": str(node.log_path)}
        what = f"{node.name} exited with {exit_text(code)}; its log: {node.log_path}"
        if not self.restart:
            node.given_up = True
            log.warning(f"{what} (not restarted: run with --restart)", extra={"fields": fields})
        elif node.restarts >= self.max_restarts:
            node.given_up = True
            log.error(
                f"{what}; restarted {node.restarts} times in a row, not again",
                extra={"fields": fields},
            )
        else:
            wait = min(BACKOFF_S * 2**node.restarts, BACKOFF_MAX_S)
            node.due = now + wait
            log.warning(f"{what}; restarting it in {wait:g} s", extra={"fields": fields})

    def _start_again(self, node: Watched, now: float) -> None:
        node.due = None
        node.restarts += 1
        node.started = now
        node.proc = self.start(node.home)
        log.warning(
            f"{node.name} restarted (pid {node.proc.pid}, restart {node.restarts} "
            f"of at most {self.max_restarts} in a row)",
            extra={"fields": {"node": node.name, "pid": node.proc.pid}},
        )
        if self.on_restart is not None:
            self.on_restart()
