"""Parsed and analysed programs, kept by their text so a repeated query skips both.

On a small graph a neighbourhood query's answer costs tens of microseconds;
lexing, parsing, checking and planning its program in Python cost several
times that, every time. Clients repeat the same programs (a dashboard, a
view's recompute, a script in a loop), so the plan of a program text is kept.

What is kept holds no data: the syntax tree, the analysis (relations, strata,
column types, safety) and which engine may run it are functions of the text,
the output relation and the column types of the built-in relations the
program names. Symbol ids of constants, operator sources and every table are
resolved at each evaluation against the source it runs on, so the same text
on another graph, or on the same node a block later, reads that graph. The
column types a plan was made under are recorded with it and compared with the
source's before it is reused: a source that types a relation differently (or
lacks one) gets a plan of its own.

The cache is bounded by count and by the memory its plans hold, estimated
from their texts (``plan_bytes``: a plan measured at most a fixed part plus
160 bytes a byte of text, and the tests hold it to that), texts above
``MAX_CACHED_TEXT`` are planned every time, least recently used plans go
first, and it is shared by every thread of a process under one lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from focusflow.query.analysis import Analysis, Schema, analyse
from focusflow.query.indexed import eligible, preferred
from focusflow.query.syntax import Program, parse

#: Plans kept at most, and the memory they may hold (as ``plan_bytes`` counts).
MAX_PLANS = 512
MAX_BYTES = 64 << 20
#: Longer programs are planned afresh each time: one would crowd out hundreds.
MAX_CACHED_TEXT = 16 << 10
#: A parsed and analysed program's bytes: at most this fixed part plus this
#: much per byte of its text (measured; the tests check it on dense programs).
PLAN_BYTES_FIXED = 4096
PLAN_BYTES_PER_TEXT_BYTE = 160


def plan_bytes(text: str) -> int:
    """The memory a plan of ``text`` holds at most (syntax tree and analysis)."""
    return PLAN_BYTES_FIXED + PLAN_BYTES_PER_TEXT_BYTE * len(text.encode("utf-8", "surrogatepass"))


SchemaOf = Callable[[str], Schema | None]


@dataclass(frozen=True)
class Plan:
    """One program's checked plan for one output relation.

    ``schemas`` are the built-in relations' column types it was made under
    (``None`` for a name that was not built in), which a reuse must find again.
    """

    program: Program
    analysis: Analysis
    schemas: tuple[tuple[str, Schema | None], ...]
    indexed_eligible: bool
    indexed_preferred: bool

    def fits(self, schema_of: SchemaOf) -> bool:
        """Whether a source with these built-in schemas would plan the same."""
        return all(schema_of(name) == schema for name, schema in self.schemas)


def make_plan(
    program: str | Program, output: str, schema_of: SchemaOf, builtin_names: list[str]
) -> Plan:
    """Parse (a text) and analyse, recording the schemas the analysis asked for."""
    asked: dict[str, Schema | None] = {}

    def recorded(name: str) -> Schema | None:
        if name not in asked:
            asked[name] = schema_of(name)
        return asked[name]

    parsed = parse(program) if isinstance(program, str) else program
    analysis = analyse(parsed, output, recorded, builtin_names)
    return Plan(
        parsed,
        analysis,
        tuple(sorted(asked.items())),
        eligible(analysis),
        preferred(analysis),
    )


class PlanCache:
    """Plans by ``(text, output)``, least recently used first out."""

    def __init__(self, max_plans: int = MAX_PLANS, max_bytes: int = MAX_BYTES) -> None:
        self.max_plans = max_plans
        self.max_bytes = max_bytes
        self._plans: OrderedDict[tuple[str, str], list[Plan]] = OrderedDict()
        self._bytes = 0
        self._count = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return self._count

    @property
    def bytes_held(self) -> int:
        """The plans' memory, as ``plan_bytes`` bounds it."""
        return self._bytes

    def plan(self, text: str, output: str, schema_of: SchemaOf, builtin_names: list[str]) -> Plan:
        """The plan of ``text`` for ``output`` under ``schema_of``: kept, or made
        (parse and analysis errors propagate, and nothing is kept for them)."""
        key = (text, output)
        with self._lock:
            kept = self._plans.get(key)
            if kept is not None:
                for plan in kept:
                    if plan.fits(schema_of):
                        self._plans.move_to_end(key)
                        self.hits += 1
                        return plan
            self.misses += 1
        plan = make_plan(text, output, schema_of, builtin_names)
        if len(text) > MAX_CACHED_TEXT:
            return plan
        size = plan_bytes(text)
        with self._lock:
            entry = self._plans.setdefault(key, [])
            if not any(p.schemas == plan.schemas for p in entry):
                entry.append(plan)
                self._bytes += size
                self._count += 1
            self._plans.move_to_end(key)
            self._evict_locked()
        return plan

    def _evict_locked(self) -> None:
        while self._plans and (self._count > self.max_plans or self._bytes > self.max_bytes):
            (text, _), dropped = self._plans.popitem(last=False)
            self._bytes -= plan_bytes(text) * len(dropped)
            self._count -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._bytes = 0
            self._count = 0


#: The process's plans (every source, every thread).
PLANS = PlanCache()
