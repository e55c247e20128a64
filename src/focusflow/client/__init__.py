"""A Python client of a focusflow node's REST API, for the CLI and for app builders.

:class:`NodeClient` sends every request the CLI, the light client and the DA
sampler make, so a node's answers are read and its refusals mapped in one
place: each failure is a :class:`NodeRequestError` with a stable code
(``node_unreachable``, ``bad_node_answer``, or the node's own code in a
:class:`RemoteError`), and a broken or hostile node cannot make the caller
read without bound in bytes or time. docs/client.md is the guide::

    from focusflow.client import NodeClient, RemoteError

    with NodeClient("http://127.0.0.1:26657") as node:
        print(node.status()["height"])
        try:
            node.particle_focus("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        except RemoteError as exc:
            print(exc.code)  # unknown_particle

It answers what the node says; a client that trusts no node is the light
client (``focusflow.light``), which proves each answer against a header it
verified.
"""

from focusflow.client.answers import ReportedAccount
from focusflow.client.errors import (
    BadNodeAnswerError,
    NodeRequestError,
    NodeUnreachableError,
    RemoteError,
)
from focusflow.client.node_client import DEFAULT_NODE, TIMEOUT_S, JsonObject, NodeClient, check_url
from focusflow.client.replies import MAX_ANSWER_BYTES, MAX_ANSWER_SECONDS

__all__ = [
    "DEFAULT_NODE",
    "MAX_ANSWER_BYTES",
    "MAX_ANSWER_SECONDS",
    "TIMEOUT_S",
    "BadNodeAnswerError",
    "JsonObject",
    "NodeClient",
    "NodeRequestError",
    "NodeUnreachableError",
    "RemoteError",
    "ReportedAccount",
    "check_url",
]
