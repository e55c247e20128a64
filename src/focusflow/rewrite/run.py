"""Run an IR program from text to its printed result, as ``hvm run`` does."""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.rewrite.cpu import DEFAULT_NODES, DEFAULT_VARS, normalize
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.show import readback


@dataclass(frozen=True)
class RunResult:
    """What a run printed and what it cost."""

    result: str
    interactions: int
    seconds: float

    @property
    def mips(self) -> float:
        """Millions of interactions per second (0 for an instantaneous run)."""
        return self.interactions / self.seconds / 1e6 if self.seconds > 0 else 0.0


def run_text(text: str, nodes: int = DEFAULT_NODES, vars_: int = DEFAULT_VARS) -> RunResult:
    """Parse, build and normalise ``@main`` of the program ``text``."""
    book = load_book(text)
    net = normalize(book, nodes=nodes, vars_=vars_)
    return RunResult(readback(net.node, net.vars, net.root, book.names), net.interactions,
                     net.seconds)  # fmt: skip
