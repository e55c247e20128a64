"""``focusflow tx ca``: what is refused before anything is signed or sent.

The request and the revocation against real validators are in
``tests/node/test_network_ca.py``; federation votes in ``tests/chain/test_ca_chain.py``.
"""

from __future__ import annotations

import pytest

from tests.cli.helpers import assert_user_error, run_cli


@pytest.mark.parametrize(
    "args",
    [
        ("request", "web-1", "zz"),
        ("request", "web-1", "ab" * 31),
        ("request", "x", "ab" * 32),
        ("revoke", "ab" * 15),
        ("revoke", "not hex at all, not even close"),
        ("withdraw", "ab" * 31),
        ("federate", "/nonexistent/root.pem"),
    ],
)
def test_bad_arguments_are_user_errors(capsys, tmp_path, args):
    result = run_cli(capsys, "tx", "ca", *args, "--home", tmp_path, "--node", "http://127.0.0.1:9")
    assert_user_error(result, "invalid_parameter" if args[1:2] != ("x",) else "invalid_name")


def test_a_root_that_is_not_pem_is_refused(capsys, tmp_path):
    bad = tmp_path / "root.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    result = run_cli(
        capsys, "tx", "ca", "federate", bad, "--home", tmp_path, "--node", "http://127.0.0.1:9"
    )
    assert_user_error(result, "invalid_parameter")
