"""What one query may spend, and the account both engines keep of it.

A query stops at the first bound it passes: its seconds (checked between
steps; DuckDB statements are also interrupted from a timer), the rows it
derives over all relations, and the rows it returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from focusflow.query.errors import QueryLimitError


@dataclass(frozen=True)
class Limits:
    """Bounds of one query: seconds, derived rows (all relations), rows returned."""

    timeout_s: float = 60.0
    max_rows: int = 50_000_000
    max_output: int = 1_000_000


class Budget:
    """One query's spending against its :class:`Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.rows = 0

    def timeout(self) -> QueryLimitError:
        return QueryLimitError(
            f"the query ran past its time limit of {self.limits.timeout_s:g} s", "time"
        )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise self.timeout()

    def charge(self, rows: int) -> None:
        """Count ``rows`` derived, and check the clock."""
        self.rows += rows
        if self.rows > self.limits.max_rows:
            raise QueryLimitError(
                f"the query derived more than {self.limits.max_rows} rows", "rows"
            )
        self.check_time()
