"""Why a call to a node failed, each with a stable code (docs/errors.md).

:class:`NodeRequestError` is the base of them all, so one ``except`` catches
every way asking a node can fail. A node's own refusal, its error reply
``{"error": {"code", "message"}}`` (docs/api.md, *Conventions*), is a
:class:`RemoteError` whose ``code`` is the node's code: a caller sees
``unknown_particle`` or ``insufficient_fee`` exactly as the node said it, and
the CLI prints it in its ``error: <message> [<code>]`` line.
"""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class NodeRequestError(FocusflowError):
    """The node could not be asked, or refused the question.

    Raised as such for an error status whose body is not the documented error
    reply (a proxy's 502 page, say). ``status`` is the HTTP status when the
    node answered, ``node_code`` the code of its error reply when it sent one.
    """

    code = "node_request_failed"

    def __init__(
        self, message: str, *, status: int | None = None, node_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.node_code = node_code


class NodeUnreachableError(NodeRequestError):
    """No answer: nothing listens at the URL, the connection or TLS failed, or
    the node did not answer in the time allowed."""

    code = "node_unreachable"


class RemoteError(NodeRequestError):
    """The node refused the request with its error reply; ``code`` is the node's own."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message, status=status, node_code=code)
        self.code = code


class BadNodeAnswerError(NodeRequestError):
    """The node's answer is not what docs/api.md says it is: not JSON, nested
    too deep, over the client's size cap, or of the wrong shape."""

    code = "bad_node_answer"


__all__ = ["BadNodeAnswerError", "NodeRequestError", "NodeUnreachableError", "RemoteError"]
