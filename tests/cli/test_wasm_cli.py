"""``focusflow tx wasm`` and ``query wasm`` against a real devnet process: a counter
contract written in WAT, uploaded from the file, instantiated, executed, queried; and
the README's contract example run as written, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

from focusflow.core.keys import encode_address, hex_address
from tests.chain.test_wasm import COUNTER
from tests.cli.helpers import assert_user_error, run_cli
from tests.helpers import ROOT


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
    contract = encode_address(bytes.fromhex(address))
    # The address is printed before the transaction is sent, in both spellings.
    assert made.json()["contract"] == contract
    assert made.json()["contract_hex"] == hex_address(bytes.fromhex(address))
    for _ in range(2):
        done = run_cli(
            capsys, "tx", "wasm", "execute", contract, "--msg", '{"increment": {}}', "--wait"
        )
        assert done.code == 0, done.err
    info = run_cli(capsys, "query", "wasm", contract, "--json").json()
    assert info["label"] == "c" and info["code"] == code
    answer = run_cli(capsys, "query", "wasm", contract, "--msg", '{"get": {}}', "--json").json()
    assert int.from_bytes(bytes.fromhex(answer["answer_hex"]), "little") == 2
    # An answer that is not JSON is shown as hex, byte for byte.
    shown = run_cli(capsys, "query", "wasm", contract, "--msg", '{"get": {}}')
    assert shown.code == 0 and "0200000000000000" in shown.out, shown
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


def contracts_block() -> list[str]:
    """The commands of the README's contract example, comments cut off."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Contracts", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_contract_example_runs_as_written(env):
    """Each command as the README writes it, in the user's shell; the placeholders
    filled from what the command before printed, the address in each spelling."""
    shell = {**os.environ, "FOCUSFLOW_HOME": str(env.home)}

    def run(command: str) -> str:
        done = subprocess.run(
            shlex.split(command), cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        return done.stdout

    store, instantiate, execute, query = contracts_block()
    code = re.search(r"^code ([0-9a-f]{64})$", run(store), re.M).group(1)
    made = run(instantiate.replace("<code hash>", code))
    found = re.search(r"^contract (focus1\w+) \((0x[0-9a-fA-F]{40})\)$", made, re.M)
    bech, hexed = found.groups()
    assert (
        hex_address(bytes.fromhex(hexed[2:])) == hexed
        and encode_address(bytes.fromhex(hexed[2:])) == bech
    )
    assert 'answer {"count":0}' in made
    assert 'answer {"count":1}' in run(execute.replace("<address>", hexed))
    assert json.loads(run(query.replace("<address>", bech))) == {"count": 1}
    assert json.loads(run(query.replace("<address>", hexed.lower()))) == {"count": 1}


def test_an_address_with_a_broken_checksum_is_refused(env, capsys):
    """A mixed-case 0x address whose EIP-55 checksum is wrong is a typo: refused
    before anything is signed, naming the right spelling."""
    good = hex_address(bytes(range(1, 21)))
    flip = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
    bad = good[:flip] + good[flip].swapcase() + good[flip + 1 :]
    result = run_cli(capsys, "tx", "wasm", "execute", bad, "--msg", "{}")
    assert_user_error(result, "invalid_address")
    assert good in result.err
