"""The client against a broken or hostile node: every bad answer is a typed error
with a documented code, read within the client's bounds in bytes and time.

The node is a real HTTP server on loopback (uvicorn) whose routes answer the
way a lying or broken node would; the client is the real one over the socket.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse

from focusflow.client import (
    BadNodeAnswerError,
    NodeClient,
    NodeRequestError,
    NodeUnreachableError,
    RemoteError,
)
from focusflow.core.errors import InvalidParameterError
from focusflow.testing.lightnode import serve
from tests.cli.helpers import assert_user_error, run_cli

CAP = 4096


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _big() -> Response:
    return _json(b'{"pad": "' + b"x" * (CAP * 4) + b'"}')


def _big_chunked() -> StreamingResponse:
    def pieces():
        yield b'{"pad": "'
        while True:
            yield b"x" * 1024

    return StreamingResponse(pieces(), media_type="application/json")


async def _trickle() -> StreamingResponse:
    async def pieces():
        yield b'{"pad": "'
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield b"x"
        yield b'"}'

    return StreamingResponse(pieces(), media_type="application/json")


async def _silent() -> Response:
    await asyncio.sleep(3)
    return _json(b"{}")


def _refused() -> JSONResponse:
    message = "pay\x1b[31m more\n" + "!" * 1500
    return JSONResponse({"error": {"code": "insufficient_fee", "message": message}}, 400)


def _answer(body: bytes, status: int = 200, media_type: str = "application/json"):
    def route() -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return route


#: Each route and how it answers: a broken or lying node, one way each.
ROUTES = {
    "/big": _big,
    "/big-chunked": _big_chunked,
    "/trickle": _trickle,
    "/silent": _silent,
    "/deep": _answer(b"[" * 100 + b"]" * 100),
    # An unclosed string of escaped quotes behind enough brackets to be measured:
    # a string scan that restarts at every quote would take hours on this.
    "/quadratic": _answer(b"[" * 70 + b'"' + b'\\"' * 1_000_000),
    "/text": _answer(b"hello", media_type="text/plain"),
    "/v1/status": _answer(b"[1, 2]"),
    "/v1/accounts/{address}": _answer(b'{"address": "a", "balance": "lots", "nonce": 0}'),
    "/v1/balances/{address}": _answer(b'{"balances": {"cyb": -5}}'),
    "/refused": _refused,
    "/not-a-code": _answer(b'{"error": {"code": "Not A Code!", "message": "x"}}', 400),
    "/proxy": _answer(b"<html>Bad Gateway</html>", 502, "text/html"),
    "/v1/economy": _answer(b"", 404),
}


@pytest.fixture(scope="module")
def hostile():
    app = FastAPI()
    for path, route in ROUTES.items():
        app.add_api_route(path, route, methods=["GET"])
    url, stop = serve(app)
    yield url
    stop()


@pytest.fixture
def node(hostile):
    with NodeClient(hostile, max_bytes=CAP, max_seconds=1.0, timeout=1.0) as client:
        yield client


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_an_answer_over_the_cap_is_refused_as_it_streams_in(node, path):
    with pytest.raises(BadNodeAnswerError, match=f"over {CAP} bytes") as err:
        node.get(path)
    assert err.value.code == "bad_node_answer"


def test_a_node_that_trickles_its_answer_is_cut_off(node):
    t0 = time.monotonic()
    with pytest.raises(NodeUnreachableError, match="within 1 s") as err:
        node.get("/trickle")
    assert err.value.code == "node_unreachable" and time.monotonic() - t0 < 3


def test_a_node_that_does_not_answer_in_time(hostile):
    late = "did not answer GET /silent in time"
    with (
        NodeClient(hostile, timeout=0.3) as client,
        pytest.raises(NodeUnreachableError, match=late),
    ):
        client.get("/silent")


def test_json_nested_too_deep_is_refused_before_it_is_parsed(node):
    with pytest.raises(BadNodeAnswerError, match="deeper than 64"):
        node.get("/deep")


def test_a_string_of_escaped_quotes_is_measured_in_linear_time(hostile):
    t0 = time.monotonic()
    with NodeClient(hostile) as client, pytest.raises(BadNodeAnswerError):
        client.get("/quadratic")
    assert time.monotonic() - t0 < 5


def test_answers_that_are_not_what_the_api_says(node):
    with pytest.raises(BadNodeAnswerError, match="not JSON"):
        node.get("/text")
    with pytest.raises(BadNodeAnswerError, match="not a JSON object"):
        node.status()
    with pytest.raises(BadNodeAnswerError, match="'lots'"):
        node.account("a")
    with pytest.raises(BadNodeAnswerError, match="-5"):
        node.balances("a")


def test_the_nodes_refusal_carries_its_code_cleaned_for_a_terminal(node):
    with pytest.raises(RemoteError) as err:
        node.get("/refused")
    assert (err.value.code, err.value.status, err.value.node_code) == (
        "insufficient_fee",
        400,
        "insufficient_fee",
    )
    assert err.value.message.startswith("pay [31m more !!!")
    assert len(err.value.message) == 1000 and "\x1b" not in err.value.message


def test_an_error_without_the_nodes_reply_is_node_request_failed(node):
    for path, status in (("/not-a-code", 400), ("/proxy", 502)):
        with pytest.raises(NodeRequestError) as err:
            node.get(path)
        assert type(err.value) is NodeRequestError
        assert (err.value.code, err.value.status) == ("node_request_failed", status)
    assert "HTTP 502: <html>Bad Gateway</html>" in err.value.message


def test_a_404_without_a_reply_is_not_found_and_an_optional_route_is_none(node):
    with pytest.raises(RemoteError) as err:
        node.get("/v1/no-such-route")
    assert err.value.code == "not_found"
    assert node.economy() is None


def test_no_node_at_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (
        NodeClient(url, source="from a test", hint="start one") as client,
        pytest.raises(NodeUnreachableError) as err,
    ):
        client.status()
    assert err.value.message == (
        f"cannot reach a node at http://127.0.0.1:{port} (from a test): "
        "connection refused; start one"
    )
    assert err.value.status is None


@pytest.mark.parametrize("url", ["ftp://h", "h:1", "http://", "http://h:99999"])
def test_a_url_that_is_no_node_url(url):
    with pytest.raises(InvalidParameterError):
        NodeClient(url)


def test_the_cli_prints_a_bad_answer_as_one_error_line(hostile, capsys):
    assert_user_error(run_cli(capsys, "query", "status", "--node", hostile), "bad_node_answer")
    assert_user_error(run_cli(capsys, "query", "economy", "--node", hostile), "not_found")
