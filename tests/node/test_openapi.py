"""Schemathesis against our own OpenAPI on a live devnet, every check enabled.

The schema is the contract, checked both ways: what it allows must be
accepted (``positive_data_acceptance``), what it forbids refused
(``negative_data_rejection``), every answer must match its documented
status, type and shape, an undeclared method must get 405 with ``Allow``,
and no request may cause a 5xx. It runs all of schemathesis's phases
(examples, coverage, fuzzing, stateful) through its command line, in its own
process, with a fixed seed and a bounded number of cases per operation.
``openapi_hooks`` supplies what a schema cannot state: bech32 checksums,
signed transactions, a program that parses. The devnet exempts loopback
from the per-client rate limit, so each case reaches its route.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.api.params import ACCOUNT_PATTERN
from focusflow.node.home import init_devnet
from focusflow.services.auth.passwords import PasswordStore
from focusflow.testing.devnet import start_devnet
from tests.helpers import ROOT

ST = Path(sys.executable).with_name("schemathesis")
FUZZ_USER = "fuzz"
FUZZ_PASSWORD = "correct horse battery staple"


def _run_schemathesis(tmp_path: Path, max_examples: int, timeout: float) -> None:
    home = tmp_path / "home"
    init_devnet(home)
    (home / "config.json").write_text(json.dumps({"api_limits": {"exempt_loopback": True}}))
    # an operator whose password the hooks put into positive login cases
    PasswordStore(home / "passwords.json").set(FUZZ_USER, FUZZ_PASSWORD, ["views"])
    net = start_devnet(home)
    try:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]),
            SCHEMATHESIS_HOOKS="tests.node.openapi_hooks",
            FOCUSFLOW_OPENAPI_HOME=str(home),
            FOCUSFLOW_OPENAPI_API=net.api,
            FOCUSFLOW_OPENAPI_USER=FUZZ_USER,
            FOCUSFLOW_OPENAPI_PASSWORD=FUZZ_PASSWORD,
        )
        r = subprocess.run(
            [
                str(ST),
                "run",
                f"{net.api}/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                str(max_examples),
                "--workers",
                "1",
                "--seed",
                "20240601",
                "--no-shrink",
                "--suppress-health-check",
                "all",
                "--request-timeout",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp_path,
        )
    finally:
        net.stop()
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-4000:]


def _schemas(node):
    """Every JSON Schema object under ``node``."""
    if isinstance(node, dict):
        if "type" in node or "anyOf" in node:
            yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_schema_states_what_the_server_checks(shared_devnet):
    """Integer bounds are integers within int64; CIDs, addresses and view names
    carry patterns; hand-parsed bodies are declared and closed."""
    with shared_devnet.client() as c:
        doc = c.get("/openapi.json").json()
    integers = [s for s in _schemas(doc) if s.get("type") == "integer"]
    assert integers
    for schema in integers:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in schema:
                assert type(schema[key]) is int and -(2**63) <= schema[key] < 2**63, schema
    params = {
        (path, p["name"]): p["schema"]
        for path, item in doc["paths"].items()
        for op in item.values()
        for p in op.get("parameters", ())
    }
    assert "pattern" in params[("/v1/focus/particles/{cid}", "cid")]
    assert params[("/v1/accounts/{address}", "address")]["pattern"] == ACCOUNT_PATTERN
    assert "pattern" in params[("/v1/query/views/{name}", "name")]
    assert params[("/v1/particles/{cid}/links", "direction")]["enum"] == ["in", "out"]
    assert params[("/v1/da/{height}/shares/{row}/{col}", "row")]["maximum"] == 1023
    for path in ("/v1/txs", "/v1/txs/batch", "/v1/query", "/v1/query/views", "/v1/infer"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["additionalProperties"] is False, path


def test_api_conforms_to_its_schema(tmp_path):
    _run_schemathesis(tmp_path, max_examples=10, timeout=240)


@pytest.mark.slow
def test_api_conforms_to_its_schema_exhaustively(tmp_path):
    _run_schemathesis(tmp_path, max_examples=200, timeout=1800)
