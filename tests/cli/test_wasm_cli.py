"""``focusflow tx wasm`` and ``query wasm`` against a real devnet process: a counter
contract written in WAT, uploaded from the file, instantiated, executed, queried."""

from __future__ import annotations

from tests.chain.test_wasm import COUNTER
from tests.cli.helpers import assert_user_error, run_cli


def test_a_counter_from_a_wat_file(env, capsys, tmp_path):
    source = tmp_path / "counter.wat"
    source.write_text(COUNTER)
    stored = run_cli(capsys, "tx", "wasm", "store", source, "--wait", "--json")
    assert stored.code == 0, stored.err
    code = stored.json()["code_hash"]
    assert stored.json()["events"][0]["code"] == code
    made = run_cli(capsys, "tx", "wasm", "instantiate", code, "--label", "c", "--wait", "--json")
    assert made.code == 0, made.err
    address = made.json()["events"][0]["contract"]
    from focusflow.core.keys import encode_address

    contract = encode_address(bytes.fromhex(address))
    for _ in range(2):
        done = run_cli(
            capsys, "tx", "wasm", "execute", contract, "--msg", '{"increment": {}}', "--wait"
        )
        assert done.code == 0, done.err
    info = run_cli(capsys, "query", "wasm", contract, "--json").json()
    assert info["label"] == "c" and info["code"] == code
    answer = run_cli(capsys, "query", "wasm", contract, "--msg", '{"get": {}}', "--json").json()
    assert int.from_bytes(bytes.fromhex(answer["answer_hex"]), "little") == 2
    failed = run_cli(capsys, "tx", "wasm", "execute", contract, "--msg", '{"loop": {}}',
                     "--gas", "100000", "--wait")  # fmt: skip
    assert failed.code != 0 and "wasm_out_of_gas" in failed.err


def test_bad_input_is_refused_before_anything_is_sent(env, capsys, tmp_path):
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    assert_user_error(run_cli(capsys, "tx", "wasm", "store", junk), "invalid_wasm")
    assert_user_error(
        run_cli(capsys, "tx", "wasm", "execute", "focus1xyz", "--msg", "{}"), "invalid_address"
    )
    nobody = "focus1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq3vdwty"
    assert_user_error(
        run_cli(capsys, "tx", "wasm", "execute", nobody, "--msg", "{"), "invalid_parameter"
    )
    assert_user_error(run_cli(capsys, "tx", "wasm", "instantiate", "ab"), "invalid_parameter")
