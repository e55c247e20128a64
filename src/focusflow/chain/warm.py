"""Compile every kernel a block runs before a node starts serving.

numba compiles on first use and keeps what it compiled in its cache, so a
kernel first met inside a block costs that block seconds on a fresh install
(a first stake took 13 s of focus on a 2-core machine: it reweights the
neuron's links through kernels that no earlier block had run). Nodes and
``./dev`` call :func:`warm_up` instead, which runs a short chain of blocks of
every kind through the focus update and the readers' view (a new key's links
and stake, a second key's, more links of a known key, a stake change alone,
an unstake, links and a stake change in one block), then the block's batched
SHA-256 and data squares of every size (the erasure coder's kernels only run
for squares of more than one share). After it, :class:`KernelWatch` names any
kernel a block runs that the warm-up did not (the devnet logs it);
tests/chain/test_first_blocks.py finds none in a devnet's first blocks of each
kind, and (``slow``) no cache entry written by them on a fresh numba cache.

Each step reports the kernels it actually compiles (numba's ``numba:compile``
event fires for a compilation, not for a load from the cache), so a start
that only loads says nothing about compiling, and one that compiles says
what and how far it is. ``python -m focusflow.chain.warm`` is ``./dev``'s
step: both focus configurations a node may run, with progress on stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from focusflow.chain import da_commit
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.chain.focus_view import FocusView
from focusflow.chain.module import Deltas
from focusflow.core import digests

#: Called with one line per kernel compiled: ``compiling kernels 3/9: <group>: <kernel>``.
Report = Callable[[str], None]


@dataclass
class Warmed:
    """What a warm-up did: seconds, and the kernels it compiled (none when all loaded)."""

    seconds: float = 0.0
    compiled: list[str] = field(default_factory=list)


def _kernel_name(data: object) -> str | None:
    """``graph.csr.gather`` for a numba compile event of one of focusflow's
    kernels; None for numba's own helpers compiled into them."""
    dispatcher = data.get("dispatcher") if isinstance(data, dict) else None
    func = getattr(dispatcher, "py_func", None)
    module = str(getattr(func, "__module__", ""))
    if not module.startswith("focusflow."):
        return None
    return f"{module.removeprefix('focusflow.')}.{getattr(func, '__qualname__', '?')}"


@contextmanager
def _compilations(on_compile: Callable[[str], None]) -> Iterator[None]:
    """Calls ``on_compile(kernel)`` when numba starts compiling one of focusflow's
    kernels inside the block."""
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            kernel = _kernel_name(ev.data)
            if kernel is not None:
                on_compile(kernel)

        def on_end(self, ev: event.Event) -> None:
            del ev

    with event.install_listener("numba:compile", Listener()):
        yield


def _blocks() -> list[tuple[str, Deltas]]:
    """Blocks of every kind a chain applies, in an order a chain can apply them."""
    a, b, c, d, e = (bytes([i]) * 4 for i in range(1, 6))
    n1, n2, n3 = (bytes([0x40 + i]) * 20 for i in range(3))
    triangle = [[a, b], [b, c], [c, a]]
    return [
        ("a new key's links and stake", Deltas(links=[(n1, triangle, None)], stakes={n1: 3})),
        ("a second key's links", Deltas(links=[(n2, [[a, c]], None)], stakes={n2: 1})),
        ("more links of a known key", Deltas(links=[(n1, [[c, d], [a, d]], None)])),
        ("a stake change alone", Deltas(stakes={n1: 7})),
        ("links of a key without stake", Deltas(links=[(n3, [[d, e], [e, a]], None)])),
        ("its first stake", Deltas(stakes={n3: 2})),
        ("an unstake to zero", Deltas(stakes={n2: 0})),
        ("a link repeated", Deltas(links=[(n1, [[a, b]], None)])),
        ("links and a stake change together", Deltas(links=[(n2, [[e, c]], None)], stakes={n1: 5})),
    ]  # fmt: skip


class _Chain:
    """One chain's focus state and readers' view, built block by block as a node does."""

    def __init__(self, focus: dict[str, Any] | None) -> None:
        self.focus = focus
        self.state: FocusState | None = None
        self.view: FocusView | None = None

    def apply(self, height: int, deltas: Deltas) -> None:
        if self.state is None:
            self.state = FocusState(self.focus)
        self.state.apply(deltas)
        self.view = self.state.view(height, self.view)


def _focus_steps(focus: dict[str, Any] | None) -> list[tuple[str, Callable[[], None]]]:
    """One step per block kind, applied in turn to one chain."""
    chain = _Chain(focus)
    return [
        (f"block: {name}", partial(chain.apply, height, deltas))
        for height, (name, deltas) in enumerate(_blocks(), start=1)
    ]


def _squares() -> None:
    """Data squares of every size a block makes: one share, a few, many."""
    for size in (1 << 10, 20 << 10, 300 << 10, 1 << 20):
        da_commit.block_square([bytes(size)]).data_root()


def warm_up_steps(
    focuses: list[tuple[str, dict[str, Any] | None]], report: Report | None = None
) -> Warmed:
    """Run the blocks of every kind for each ``(label, focus configuration)`` in
    ``focuses``, then the block's hashing and data square; ``report`` hears of
    each kernel compiled, with its step's place among all."""
    steps = [
        (f"{name} ({label})" if label else name, run)
        for label, focus in focuses
        for name, run in _focus_steps(focus)
    ]
    steps += [
        ("batched SHA-256", digests.warm_up),
        ("data squares and the erasure coder", da_commit.warm_up),
        ("data squares of every size", _squares),
    ]
    warmed = Warmed()
    t0 = time.perf_counter()
    for at, (name, run) in enumerate(steps, start=1):

        def compiling(kernel: str, at: int = at, name: str = name) -> None:
            warmed.compiled.append(kernel)
            if report is not None:
                report(f"compiling kernels {at}/{len(steps)}: {name}: {kernel}")

        with _compilations(compiling):
            run()
    warmed.seconds = time.perf_counter() - t0
    return warmed


class KernelWatch:
    """Which of focusflow's kernels ran with a new signature since the last look.

    After the warm-up every kernel a block reaches has its signatures loaded or
    compiled in this process; one that appears later was missed by the warm-up
    and, on a fresh install, compiles inside a block. Whether it is in numba's
    disk cache does not matter here, so the check holds whatever ran before.
    The kernels are the module-level ones of focusflow's imported modules; a
    look costs one dictionary length per kernel.
    """

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}
        self._kernels: list[Any] = []
        self._modules = 0
        self.look()

    def _scan(self) -> None:
        """Find the kernels of modules imported since the last scan (only then:
        a look runs after every block)."""
        from numba.core.dispatcher import Dispatcher

        if len(sys.modules) == self._modules:
            return
        self._modules = len(sys.modules)
        known = {id(k) for k in self._kernels}
        for name, module in list(sys.modules.items()):
            if not name.startswith("focusflow.") or module is None:
                continue
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher) and id(value) not in known:
                    known.add(id(value))
                    self._kernels.append(value)

    def look(self) -> list[str]:
        """The kernels whose signatures grew since the last look, by name."""
        self._scan()
        grown = []
        for kernel in self._kernels:
            count = len(kernel.overloads)
            if count != self._seen.get(id(kernel), 0):
                if id(kernel) in self._seen or count:
                    func = kernel.py_func
                    grown.append(
                        f"{func.__module__.removeprefix('focusflow.')}.{func.__qualname__}"
                    )
                self._seen[id(kernel)] = count
        return grown


def warm_up(focus: dict[str, Any] | None = None, report: Report | None = None) -> float:
    """Compile (or load) every kernel a block with focus ``focus`` runs; returns seconds."""
    return warm_up_steps([("", focus)], report).seconds


def main() -> None:
    """``./dev``'s step: both the default focus and the one new chains name
    (the devnet's, a testnet's), each kernel compiled named on stderr."""

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    say("block kernels: loading from numba's cache, compiling what is missing")
    warmed = warm_up_steps(
        [("default focus", None), ("new chains' focus", dict(NEW_CHAIN_FOCUS))], say
    )
    what = f"{len(warmed.compiled)} compiled" if warmed.compiled else "all from the cache"
    say(f"block kernels ready in {warmed.seconds:.1f} s ({what})")


if __name__ == "__main__":
    main()


__all__ = ["Warmed", "main", "warm_up", "warm_up_steps"]
