"""A small HTTP client for the node's REST API (docs/api.md), used by every CLI command.

It does three things the commands would otherwise each get wrong:

* finds the node: ``--node URL``, else the ``api`` the running devnet wrote to
  ``<home>/node.json``, else ``http://127.0.0.1:26657``;
* turns the API's JSON error bodies (``{"error": {"code", "message"}}``) into a
  :class:`RemoteError` that carries the server's code, so the CLI prints
  ``error: <message> [<code>]`` exactly as it does for local errors;
* says plainly when no node answers (:class:`NodeUnreachableError`) instead of a
  traceback from the socket layer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from focusflow.core.errors import FocusflowError, InvalidParameterError

if TYPE_CHECKING:
    import httpx

DEFAULT_NODE = "http://127.0.0.1:26657"
TIMEOUT_S = 10.0


class NodeUnreachableError(FocusflowError):
    """No node answers at the URL (not running, wrong port, or too slow)."""

    code = "node_unreachable"


class RemoteError(FocusflowError):
    """The node refused a request; ``code`` is the node's own stable code."""

    code = "remote_error"

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def node_url(node: str | None, home: Path) -> tuple[str, str]:
    """``(url, where it came from)``: the flag, ``<home>/node.json``, or the default."""
    if node:
        return check_url(node), "given by --node"
    info = home / "node.json"
    try:
        api = json.loads(info.read_text()).get("api")
    except (OSError, ValueError, AttributeError):
        api = None
    if isinstance(api, str) and api:
        try:
            return check_url(api), f"from {info}"
        except InvalidParameterError:
            pass
    return DEFAULT_NODE, f"the default; no node in {info}"


def check_url(url: str) -> str:
    """An http(s) URL with a host, without its trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(f"invalid node URL {url!r}: expected http://host:port")
    try:
        parts.port  # noqa: B018 (a bad port raises ValueError only when read)
    except ValueError:
        raise InvalidParameterError(f"invalid node URL {url!r}: bad port") from None
    return url.rstrip("/")


#: A node whose API speaks TLS with its own CA (docs/trust.md, *The API over
#: TLS*): the CA bundle to verify it with, and the operator's client certificate
#: and key for mutual TLS.
ENV_TLS_CA = "FOCUSFLOW_TLS_CA"
ENV_TLS_CERT = "FOCUSFLOW_TLS_CERT"
ENV_TLS_KEY = "FOCUSFLOW_TLS_KEY"


def tls_verify() -> Any:
    """httpx's ``verify`` from the environment: the system's CAs unless
    ``$FOCUSFLOW_TLS_CA`` names a bundle, with the client certificate that
    ``$FOCUSFLOW_TLS_CERT`` and ``$FOCUSFLOW_TLS_KEY`` name (both, or neither)."""
    import ssl

    ca = os.environ.get(ENV_TLS_CA)
    cert, key = os.environ.get(ENV_TLS_CERT), os.environ.get(ENV_TLS_KEY)
    if bool(cert) != bool(key):
        raise InvalidParameterError(f"set both ${ENV_TLS_CERT} and ${ENV_TLS_KEY}, or neither")
    for name, path in ((ENV_TLS_CA, ca), (ENV_TLS_CERT, cert), (ENV_TLS_KEY, key)):
        if path and not Path(path).is_file():
            raise InvalidParameterError(f"${name}: no file {path}")
    verify: Any = ssl.create_default_context(cafile=ca) if ca else True
    if cert and key:
        if verify is True:
            verify = ssl.create_default_context()
        verify.load_cert_chain(cert, key)
    return verify


class Client:
    """Blocking JSON calls to one node; every failure is a FocusflowError."""

    def __init__(
        self, url: str, *, source: str = "given by --node", timeout: float = TIMEOUT_S
    ) -> None:
        import httpx  # here: a command that never calls a node does not load it

        self.url = check_url(url)
        self.source = source
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, trust_env=False, verify=tls_verify()
        )
        #: False once the node answered that it has no batch endpoint.
        self.batch_supported = True

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, json=body)

    def get_optional(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """Like :meth:`get`, but None where the node answers 404 (absent or not offered)."""
        try:
            return self.get(path, params)
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The answer as it came (bytes, streamed bodies); a node that does not
        answer is :class:`NodeUnreachableError` as for every call, and an error
        status the node's :class:`RemoteError`."""
        response = self._send(method, path, **kw)
        if not response.is_success:
            _decode(response, method, path)
        return response

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        """The answer with its body not yet read (``iter_bytes``); errors as :meth:`raw`."""
        import httpx

        try:
            with self._http.stream(method, path, **kw) as response:
                if not response.is_success:
                    response.read()
                    _decode(response, method, path)
                yield response
        except httpx.TransportError as exc:
            raise NodeUnreachableError(
                f"the node at {self.url} failed {method} {path}: {_reason(exc)}"
            ) from None

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """Any method and httpx arguments (raw content, headers); the JSON answer."""
        return self._call(method, path, **kw)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return _decode(self._send(method, path, **kw), method, path)

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        import httpx

        try:
            response = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise NodeUnreachableError(
                f"the node at {self.url} did not answer {method} {path} in time"
            ) from None
        except httpx.TransportError as exc:
            raise NodeUnreachableError(
                f"cannot reach a node at {self.url} ({self.source}): {_reason(exc)}; "
                "is `focusflow devnet` running? pick another with --node URL"
            ) from None
        return response

    # ------------------------------------------------------------- endpoints

    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")

    def account(self, address: str) -> dict[str, Any]:
        return self.get(f"/v1/accounts/{quote(address, safe='')}")

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self.get(f"/v1/txs/{quote(tx_hash, safe='')}")

    def submit(self, tx_bytes: bytes) -> str:
        """POST a signed transaction; its hash once the mempool took it."""
        return self.post("/v1/txs", {"tx": tx_bytes.hex()})["hash"]

    def submit_batch(self, txs: list[bytes]) -> list[dict[str, Any]] | None:
        """POST /v1/txs/batch: per transaction ``{"hash"}`` or ``{"error"}``, in order.

        None when the node has no batch endpoint (404), so callers fall back to
        one request per transaction.
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
        if not isinstance(results, list) or len(results) != len(txs):
            raise RemoteError(
                "POST /v1/txs/batch: the answer does not list one result per transaction",
                "bad_response",
                200,
            )
        return results


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return " ".join(text.split())


def _decode(response: httpx.Response, method: str, path: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if body is None:
            raise RemoteError(
                f"{method} {path}: the node answered {response.status_code} without JSON",
                "bad_response",
                response.status_code,
            )
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = str(error.get("message") or error["code"])
        raise RemoteError(message, error["code"], response.status_code)
    detail = response.text.strip()[:200] or response.reason_phrase
    code = "not_found" if response.status_code == 404 else f"http_{response.status_code}"
    raise RemoteError(
        f"{method} {path}: HTTP {response.status_code}: {detail}", code, response.status_code
    )
