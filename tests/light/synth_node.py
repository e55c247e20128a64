"""A light client's view of a :class:`SyntheticChain`: its answers, in process.

The property tests run hundreds of histories; over HTTP each would pay for a
server. ``ChainNode`` is a :class:`focusflow.light.Node` whose requests are
answered by the synthetic chain's own route handler (the same JSON a node
serves), so everything the client does with an answer is the real code.
"""

from __future__ import annotations

from typing import Any

from focusflow.light.client import Node
from focusflow.light.errors import NodeRequestError
from focusflow.light.synthetic import SyntheticChain


class ChainNode(Node):
    def __init__(self, chain: SyntheticChain, url: str = "synthetic://node") -> None:
        self.chain = chain
        self.url = url
        self.asked: list[str] = []

    def close(self) -> None:
        return None

    def get(self, path: str, params: dict | None = None) -> Any:
        self.asked.append(path)
        status, body = self.chain.answer(path, params)
        if status != 200:
            raise NodeRequestError(
                f"{path}: {body['error']['message']}", node_code=body["error"]["code"]
            )
        return body
