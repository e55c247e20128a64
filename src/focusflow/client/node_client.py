""":class:`NodeClient`: blocking calls to one node's REST API (docs/api.md).

Every request goes through one method, :meth:`NodeClient.call` (and its
byte-answer and streaming siblings), which sends it with httpx, reads the
answer within the client's bounds (``focusflow.client.replies``) and turns
whatever went wrong into a :class:`~focusflow.client.errors.NodeRequestError`:
no node answering is ``node_unreachable``, the node's error reply is a
RemoteError carrying the node's own code, an answer that is not what the API
documents is ``bad_node_answer``. The typed methods below it name the
endpoints the CLI and the DA sampler use, so that a path is spelled once.

httpx is imported when a client is made, not with this module: every CLI
command imports the client, and ``focusflow --help`` must not pay for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from focusflow.client.answers import ReportedAccount, balances_of
from focusflow.client.errors import BadNodeAnswerError, NodeUnreachableError, RemoteError
from focusflow.client.replies import (
    MAX_ANSWER_BYTES,
    MAX_ANSWER_SECONDS,
    Asked,
    json_of,
    object_of,
    read_capped,
    refusal,
)
from focusflow.core.errors import InvalidParameterError

if TYPE_CHECKING:
    import ssl

    import httpx

#: Where ``focusflow devnet`` serves its API unless told otherwise.
DEFAULT_NODE = "http://127.0.0.1:26657"
#: Seconds each network operation (connect, each read, each write) may take.
TIMEOUT_S = 10.0
#: Bytes of an error reply read (they are a line of JSON).
MAX_ERROR_BYTES = 64 << 10

#: A JSON object of the API, as the node sent it.
JsonObject = dict[str, Any]


def check_url(url: str) -> str:
    """An http(s) URL with a host, without its trailing slash; InvalidParameterError if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(f"invalid node URL {url!r}: expected http://host:port")
    try:
        parts.port  # noqa: B018 (a bad port raises ValueError only when read)
    except ValueError:
        raise InvalidParameterError(f"invalid node URL {url!r}: bad port") from None
    return url.rstrip("/")


def _segment(text: str) -> str:
    return quote(text, safe="")


class NodeClient:
    """Blocking JSON calls to the node at ``url``; every failure is a NodeRequestError.

    ``timeout`` bounds each network operation, ``max_seconds`` an answer's
    body once its headers came, ``max_bytes`` its size (a caller may lower
    it per call). ``verify`` is httpx's: True for the system's CAs, or an
    ``ssl.SSLContext`` (a node's own CA, an operator's client certificate).
    ``source`` (where the URL came from) and ``hint`` (what to try) go into
    the message when no node answers. Proxies from the environment are not
    used: the node named is the node asked.
    """

    def __init__(
        self,
        url: str = DEFAULT_NODE,
        *,
        timeout: float = TIMEOUT_S,
        max_bytes: int = MAX_ANSWER_BYTES,
        max_seconds: float = MAX_ANSWER_SECONDS,
        verify: ssl.SSLContext | bool = True,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        import httpx

        if not timeout > 0 or not max_seconds > 0 or max_bytes < 1:
            raise InvalidParameterError("timeout, max_seconds and max_bytes must be > 0")
        self.url = check_url(url)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.source = source
        self.hint = hint
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, trust_env=False, verify=verify
        )
        #: False once the node answered that it has no batch endpoint.
        self.batch_supported = True

    def close(self) -> None:
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ any request

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON answer of any request; the node's refusal as its error."""
        asked = Asked(self.url, method, path)
        request = {"params": params, "json": json, "content": content, "headers": headers}
        with self._response(asked, request) as response:
            body = self._read(response, asked, self.max_bytes)
        return json_of(body, asked)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, json=body)

    def get_optional(self, path: str, params: Mapping[str, Any] | None = None) -> Any | None:
        """Like :meth:`get`, but None where the node answers 404 (absent, or not offered)."""
        try:
            return self.get(path, params)
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def raw(
        self,
        method: str,
        path: str,
        *,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """The answer's bytes as they came (at most ``max_bytes``); errors as :meth:`call`."""
        asked = Asked(self.url, method, path)
        cap = self.max_bytes if max_bytes is None else max_bytes
        with self._response(asked, {"headers": headers}) as response:
            return self._read(response, asked, cap)

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None
    ) -> Iterator[Iterator[bytes]]:
        """The answer's body as it arrives, in pieces of up to 1 MiB, for
        answers too large to hold (a blob): neither its size nor its time is
        capped here, so the caller checks what it reads as it reads it."""
        asked = Asked(self.url, method, path)
        with self._response(asked, {"headers": headers}) as response:
            yield response.iter_bytes(1 << 20)

    @contextlib.contextmanager
    def _response(self, asked: Asked, request: Mapping[str, Any]) -> Iterator[httpx.Response]:
        """The one place a request is sent: the response of a success status,
        its body not read yet; an error status's body read (within
        MAX_ERROR_BYTES) and raised as the refusal it is; httpx's failures,
        also those while the caller reads the body, as the client's errors."""
        import httpx

        try:
            with self._http.stream(asked.method, asked.path, **request) as response:
                if not response.is_success:
                    cap = min(self.max_bytes, MAX_ERROR_BYTES)
                    raise refusal(response.status_code, self._read(response, asked, cap), asked)
                yield response
        except httpx.DecodingError:
            raise BadNodeAnswerError(f"{asked.what}: the node's answer is not decodable") from None
        except httpx.TimeoutException:
            raise self._late(asked) from None
        except httpx.TransportError as exc:
            where = f" ({self.source})" if self.source else ""
            hint = f"; {self.hint}" if self.hint else ""
            raise NodeUnreachableError(
                f"cannot reach a node at {self.url}{where}: {_reason(exc)}{hint}"
            ) from None

    def _read(self, response: httpx.Response, asked: Asked, max_bytes: int) -> bytes:
        declared = response.headers.get("content-length")
        return read_capped(declared, response.iter_bytes(), asked, max_bytes, self.max_seconds)

    def _late(self, asked: Asked) -> NodeUnreachableError:
        return NodeUnreachableError(f"the node at {self.url} did not answer {asked.what} in time")

    def _object(self, answer: Any, path: str, method: str = "GET") -> JsonObject:
        return object_of(answer, Asked(self.url, method, path))

    def _get_object(self, path: str, params: Mapping[str, Any] | None = None) -> JsonObject:
        return self._object(self.get(path, params), path)

    def _optional_object(self, path: str) -> JsonObject | None:
        answer = self.get_optional(path)
        return None if answer is None else self._object(answer, path)

    # ------------------------------------------------------- chain and accounts

    def status(self) -> JsonObject:
        """``GET /v1/status``: the chain id, height, roots and focus of the node's head."""
        return self._get_object("/v1/status")

    def params(self) -> JsonObject | None:
        """``GET /v1/params`` (the genesis parameters), or None from a node without it."""
        return self._optional_object("/v1/params")

    def account(self, address: str) -> ReportedAccount:
        """``GET /v1/accounts/{address}``, read into numbers."""
        path = f"/v1/accounts/{_segment(address)}"
        return ReportedAccount.from_json(self._get_object(path), address)

    def account_json(self, address: str) -> JsonObject:
        """``GET /v1/accounts/{address}`` as the node sent it."""
        return self._get_object(f"/v1/accounts/{_segment(address)}")

    def balances(self, address: str) -> dict[str, int] | None:
        """``GET /v1/balances/{address}``: every liquid balance by denom; None
        from a node that does not serve them."""
        doc = self._optional_object(f"/v1/balances/{_segment(address)}")
        return None if doc is None else balances_of(doc)

    def balances_json(self, address: str) -> JsonObject:
        return self._get_object(f"/v1/balances/{_segment(address)}")

    def block(self, which: int | str = "latest") -> JsonObject:
        """``GET /v1/blocks/{height}``, ``/latest``, or ``/hash/{hash}`` for 64 hex digits."""
        if isinstance(which, int):
            return self._get_object(f"/v1/blocks/{which}")
        if which == "latest":
            return self._get_object("/v1/blocks/latest")
        return self._get_object(f"/v1/blocks/hash/{_segment(which)}")

    def blocks(self, limit: int, before: int | None = None) -> JsonObject:
        """``GET /v1/blocks``: a page of blocks, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self._get_object("/v1/blocks", params)

    def validators(self) -> JsonObject:
        return self._get_object("/v1/validators")

    # ------------------------------------------------------------ transactions

    def tx(self, tx_hash: str) -> JsonObject:
        """``GET /v1/txs/{hash}``: pending or committed, with its receipt."""
        return self._get_object(f"/v1/txs/{_segment(tx_hash)}")

    def submit(self, tx_bytes: bytes) -> str:
        """``POST /v1/txs``: the hash once the mempool took the signed transaction."""
        answer = self._object(self.post("/v1/txs", {"tx": tx_bytes.hex()}), "/v1/txs", "POST")
        tx_hash = answer.get("hash")
        if not isinstance(tx_hash, str):
            raise BadNodeAnswerError("POST /v1/txs: the answer names no hash")
        return tx_hash

    def submit_batch(self, txs: list[bytes]) -> list[JsonObject] | None:
        """``POST /v1/txs/batch``: per transaction ``{"hash"}`` or ``{"error"}``, in order.

        None when the node has no batch endpoint (404, 405), so callers fall
        back to one request per transaction.
        """
        if not self.batch_supported:
            return None
        try:
            answer = self.post("/v1/txs/batch", {"txs": [t.hex() for t in txs]})
        except RemoteError as exc:
            if exc.status in (404, 405):
                self.batch_supported = False
                return None
            raise
        results = answer.get("results") if isinstance(answer, dict) else None
        if (
            not isinstance(results, list)
            or len(results) != len(txs)
            or not all(isinstance(r, dict) for r in results)
        ):
            raise BadNodeAnswerError(
                "POST /v1/txs/batch: the answer does not list one result per transaction"
            )
        return results

    # -------------------------------------------------------------- the graph

    def focus_top(self, k: int) -> JsonObject:
        return self._get_object("/v1/focus/top", {"k": k})

    def particle_focus(self, cid: str) -> JsonObject:
        return self._get_object(f"/v1/focus/particles/{_segment(cid)}")

    def neuron_focus(self, address: str) -> JsonObject:
        return self._get_object(f"/v1/focus/neurons/{_segment(address)}")

    def syntropy(self, limit: int) -> JsonObject:
        return self._get_object("/v1/focus/syntropy", {"limit": limit})

    def particle_links(self, cid: str, direction: str, offset: int, limit: int) -> JsonObject:
        params = {"direction": direction, "offset": offset, "limit": limit}
        return self._get_object(f"/v1/particles/{_segment(cid)}/links", params)

    def cid(self, text: str) -> JsonObject:
        """``GET /v1/cid``: the CID the node makes of ``text``."""
        return self._get_object("/v1/cid", {"text": text})

    def keep_texts(self, texts: list[str]) -> JsonObject:
        """``POST /v1/particles/texts``: give the node the texts of its particles."""
        path = "/v1/particles/texts"
        return self._object(self.post(path, {"texts": texts}), path, "POST")

    def graph_page(self, what: str, start: int, limit: int) -> JsonObject:
        """``GET /v1/graph/{links|particles|neurons}``: one page of the whole graph."""
        return self._get_object(f"/v1/graph/{_segment(what)}", {"start": start, "limit": limit})

    def infer(self, request: JsonObject) -> JsonObject:
        """``POST /v1/infer``: focus-flow inference from a context (docs/infer.md)."""
        return self._object(self.post("/v1/infer", request), "/v1/infer", "POST")

    def name(self, name: str) -> JsonObject:
        return self._get_object(f"/v1/names/{_segment(name)}")

    def proof(self, key: str) -> JsonObject:
        """``GET /v1/proofs``: a state key's value and its proof against a root."""
        return self._get_object("/v1/proofs", {"key": key})

    def query(self, request: JsonObject) -> JsonObject:
        """``POST /v1/query``: a Datalog program over the committed state."""
        return self._object(self.post("/v1/query", request), "/v1/query", "POST")

    # --------------------------------------------------- contracts and the dex

    def wasm_contract(self, address: str) -> JsonObject:
        return self._get_object(f"/v1/wasm/{_segment(address)}")

    def wasm_query(self, address: str, msg: Any) -> JsonObject:
        path = f"/v1/wasm/{_segment(address)}/query"
        return self._object(self.post(path, {"msg": msg}), path, "POST")

    def pools(self) -> JsonObject:
        return self._get_object("/v1/pools")

    def pool(self, a: str, b: str) -> JsonObject | None:
        """``GET /v1/pools/{a}/{b}``, or None when the pair has no pool."""
        return self._optional_object(f"/v1/pools/{_segment(a)}/{_segment(b)}")

    def economy(self) -> JsonObject | None:
        """``GET /v1/economy``, or None from a node without it."""
        return self._optional_object("/v1/economy")

    def economy_json(self) -> JsonObject:
        return self._get_object("/v1/economy")

    # ------------------------------------------------------------ blobs, pins

    def put_blob(self, content: Iterable[bytes], headers: Mapping[str, str]) -> JsonObject:
        """``POST /v1/blobs``: the body streamed from ``content``."""
        answer = self.call("POST", "/v1/blobs", content=content, headers=headers)
        return self._object(answer, "/v1/blobs", "POST")

    def fetch_blob(self, cid: str, headers: Mapping[str, str]) -> JsonObject:
        """``POST /v1/blobs/{cid}/fetch``: have the node fetch a blob from its holders."""
        path = f"/v1/blobs/{_segment(cid)}/fetch"
        return self._object(self.call("POST", path, headers=headers), path, "POST")

    def delete_blob(self, cid: str, headers: Mapping[str, str]) -> JsonObject:
        path = f"/v1/blobs/{_segment(cid)}"
        return self._object(self.call("DELETE", path, headers=headers), path, "DELETE")

    def chunk(self, cid: str, max_bytes: int) -> bytes:
        """``GET /v1/chunks/{cid}``: one block of a blob's DAG, at most ``max_bytes``."""
        return self.raw("GET", f"/v1/chunks/{_segment(cid)}", max_bytes=max_bytes)

    def blob_bytes(self, cid: str) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """``GET /v1/blobs/{cid}`` as it streams (:meth:`stream`)."""
        return self.stream("GET", f"/v1/blobs/{_segment(cid)}")

    def blob_proof(self, cid: str, offset: int) -> JsonObject:
        return self._get_object(f"/v1/blobs/{_segment(cid)}/proof", {"offset": offset})

    def pin(self, request: str) -> JsonObject:
        return self._get_object(f"/v1/pins/{_segment(request)}")

    # ------------------------------------------------------ data availability

    def da_roots(self, height: int) -> JsonObject:
        """``GET /v1/da/{height}``: the square's row and column roots."""
        return self._get_object(f"/v1/da/{height}")

    def da_share(self, height: int, row: int, col: int) -> JsonObject:
        """``GET /v1/da/{height}/shares/{row}/{col}``: one share with its proof."""
        return self._get_object(f"/v1/da/{height}/shares/{row}/{col}")

    def da_fraud(self, height: int) -> JsonObject | None:
        """``GET /v1/da/{height}/fraud``, or None when the node holds no fraud proof."""
        return self._optional_object(f"/v1/da/{height}/fraud")


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return " ".join(text.split())


__all__ = ["DEFAULT_NODE", "TIMEOUT_S", "JsonObject", "NodeClient", "check_url"]
