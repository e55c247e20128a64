"""``focusflow tx ca``: what is refused before anything is signed or sent.

The request and the revocation against real validators are in
``tests/node/test_network_ca.py``.
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
    ],
)
def test_bad_arguments_are_user_errors(capsys, tmp_path, args):
    result = run_cli(capsys, "tx", "ca", *args, "--home", tmp_path, "--node", "http://127.0.0.1:9")
    assert_user_error(result, "invalid_parameter" if args[1:2] != ("x",) else "invalid_name")
