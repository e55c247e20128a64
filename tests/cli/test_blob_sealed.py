"""Private blobs through the command line, run as processes against a devnet.

``focusflow keys kem NAME`` prints a wallet key's ML-KEM-768 public key;
``blob put FILE --seal KEY`` seals the file before it leaves, so the node holds
only ciphertext (checked in its answers and in every file of its home);
``blob get`` recognises the sealed blob and opens it with the recipient's key,
refuses another key with ``sealed_blob_error`` and writes nothing, and writes
the sealed bytes as they are with ``--raw``. ``blob put`` off a terminal
writes nothing to stderr (no progress bar label).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from focusflow.testing.devnet import start_devnet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("sealed") / "home")
    yield net
    net.stop()


def focusflow(home: Path, *args: object, stdout=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), FOCUSFLOW_HOME=str(home))
    env.pop("FOCUSFLOW_PASSPHRASE", None)
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *map(str, args)],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=120,
    )


def one_error(r: subprocess.CompletedProcess, code: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert lines[0].endswith(f"[{code}]"), r.stderr


def test_blob_put_off_a_terminal_writes_nothing_to_stderr(devnet, tmp_path):
    src = tmp_path / "plain.bin"
    src.write_bytes(os.urandom(3 << 20))
    r = focusflow(devnet.home, "blob", "put", src)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines()[0].startswith("bafy")


def test_a_sealed_blob_is_ciphertext_on_the_node_and_opens_only_for_its_recipient(devnet, tmp_path):
    home = devnet.home
    made = focusflow(home, "keys", "add", "alice", "--unencrypted")
    assert made.returncode == 0, made.stderr
    with (tmp_path / "alice.kem").open("w") as f:
        kem = focusflow(home, "keys", "kem", "alice", stdout=f)
    assert kem.returncode == 0, kem.stderr
    public = (tmp_path / "alice.kem").read_text().strip()
    assert len(public) == 2368
    shown = json.loads(focusflow(home, "keys", "kem", "alice", "--json").stdout)
    assert shown["kem_public_key"] == public and len(shown["key_id"]) == 64

    marker = f"the plaintext marker {os.urandom(12).hex()} "
    plaintext = (marker * 2000).encode()  # compressible: Brotli runs before the encryption
    src = tmp_path / "secret.txt"
    src.write_bytes(plaintext)
    put = focusflow(home, "blob", "put", src, "--seal", tmp_path / "alice.kem", "--json")
    assert put.returncode == 0 and put.stderr == "", put.stderr
    doc = json.loads(put.stdout)
    assert doc["sealed"] is True and doc["recipients"] == 1
    cid = doc["cid"]

    # the node holds the sealed bytes only: in what it serves and in its files
    stored = httpx.get(f"{devnet.api}/v1/blobs/{cid}", timeout=30).content
    assert stored[:4] == b"FFSB" and marker.encode() not in stored
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < (256 << 20):
            assert marker.encode() not in path.read_bytes(), path

    # the recipient opens it: the file is the plaintext
    out = tmp_path / "opened.txt"
    got = focusflow(home, "blob", "get", cid, "--out", out, "--key", "alice", "--json")
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == plaintext
    assert json.loads(got.stdout) == {
        "cid": cid, "size": len(stored), "out": str(out), "sealed": True,
        "opened_size": len(plaintext),
    }  # fmt: skip

    # another key: one precise error, nothing written
    wrong = tmp_path / "wrong.txt"
    refused = focusflow(home, "blob", "get", cid, "--out", wrong, "--key", "dev")
    one_error(refused, "sealed_blob_error")
    assert "not sealed to key dev" in refused.stderr
    assert not wrong.exists() and not wrong.with_name("wrong.txt.part").exists()

    # --raw: the sealed bytes as the node holds them
    raw = tmp_path / "raw.bin"
    assert focusflow(home, "blob", "get", cid, "--out", raw, "--raw").returncode == 0
    assert raw.read_bytes() == stored

    # a key that is not one is refused before anything is sent
    bad = focusflow(home, "blob", "put", src, "--seal", "abcd")
    one_error(bad, "invalid_parameter")
    assert "ML-KEM-768 public key" in bad.stderr
