"""Errors of the query layer, each with a stable code (docs/query.md lists them).

A query never changes state, so every one of these leaves the node or the
graph exactly as it was; they only say precisely why no answer came back.
"""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class QuerySyntaxError(FocusflowError, ValueError):
    """The program does not parse; the message starts with ``line L, column C``."""

    code = "query_syntax"

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


class UnknownViewError(FocusflowError, LookupError):
    """No registered view has that name: a missing resource, not a bad program."""

    code = "unknown_view"


class QueryInvalidError(FocusflowError, ValueError):
    """The program parses but means nothing: an unbound variable, a wrong arity,
    an unknown output relation, a rule that adds to a base relation."""

    code = "query_invalid"


class QueryTypeError(FocusflowError, ValueError):
    """A value is used as a symbol in one place and as a number in another."""

    code = "query_type"


class UnstratifiableError(FocusflowError, ValueError):
    """Negation or an aggregate sits on a recursive cycle; the message names it."""

    code = "query_unstratifiable"


class QueryLimitError(FocusflowError):
    """The query ran past its time, row or memory bound and was cancelled."""

    code = "query_limit"

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class HeightUnavailableError(FocusflowError):
    """The asked height is in the future or older than what the node still keeps."""

    code = "query_height_unavailable"
