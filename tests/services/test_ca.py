"""The standalone CA and its log, checked by the real OpenSSL binary and by RFC 6962.

``openssl verify`` (an independent X.509 path validator) accepts what the CA
issues and, given the CA's CRL, refuses what it revoked; every certificate's
inclusion proof recomputes the log's root by RFC 6962's recursion (the test's
own, in test_ctlog.py) from the certificate's DER.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from focusflow.cli.main import main
from focusflow.services.trust.ctlog import leaf_hash, verify_consistency, verify_inclusion
from tests.services.test_ctlog import rfc_root_from_path

OPENSSL = shutil.which("openssl")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def openssl_verify(ca, cert, crl=None) -> subprocess.CompletedProcess:
    assert OPENSSL is not None, "the openssl binary is missing: ./dev test installs it"
    args = [OPENSSL, "verify", "-CAfile", str(ca / "ca" / "root.pem")]
    args += ["-untrusted", str(ca / "ca" / "intermediate.pem")]
    if crl is not None:
        args += ["-crl_check", "-CRLfile", str(crl)]
    return subprocess.run([*args, str(cert)], capture_output=True, text=True, check=False)


def test_issued_certificates_verify_with_openssl_and_revoked_ones_fail(tmp_path, capsys):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    home = tmp_path / "ca"
    assert cli(capsys, "ca", "init", "--home", str(home))[0] == 0
    names = ["node-a.example", "node-b.example", "svc.example"]
    for name in names:
        code, out, err = cli(
            capsys,
            "ca",
            "issue",
            "--home",
            str(home),
            "--name",
            name,
            "--out",
            str(tmp_path / name),
            "--json",
        )
        assert code == 0, err
        assert json.loads(out)["name"] == name
        assert openssl_verify(home, tmp_path / name / "cert.pem").returncode == 0
    revoked = tmp_path / names[1] / "cert.pem"
    assert cli(capsys, "ca", "revoke", "--home", str(home), "--cert", str(revoked))[0] == 0
    crl = tmp_path / "crl.pem"
    assert cli(capsys, "ca", "crl", "--home", str(home), "--out", str(crl))[0] == 0
    bad = openssl_verify(home, revoked, crl)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    for name in (names[0], names[2]):
        assert openssl_verify(home, tmp_path / name / "cert.pem", crl).returncode == 0

    # Every certificate is in the log: its proof gives the root from its DER.
    roots = set()
    for i, name in enumerate(names):
        code, out, _ = cli(
            capsys,
            "ct",
            "proof",
            "--home",
            str(home),
            "--cert",
            str(tmp_path / name / "cert.pem"),
            "--json",
        )
        proof = json.loads(out)
        assert code == 0 and proof["leaf_index"] == i and proof["tree_size"] == 3
        der = x509.load_pem_x509_certificate(
            (tmp_path / name / "cert.pem").read_bytes()
        ).public_bytes(Encoding.DER)
        path = [bytes.fromhex(p) for p in proof["audit_path"]]
        root = bytes.fromhex(proof["root_hash"])
        assert rfc_root_from_path(der, i, 3, path) == root
        assert verify_inclusion(leaf_hash(der), i, 3, path, root)
        assert not verify_inclusion(leaf_hash(der + b"x"), i, 3, path, root)
        roots.add(proof["root_hash"])
    assert len(roots) == 1
    code, out, _ = cli(
        capsys, "ct", "consistency", "--home", str(home), "--first", "1", "--second", "3", "--json"
    )
    cons = json.loads(out)
    assert code == 0
    assert verify_consistency(
        1, 3, [bytes.fromhex(p) for p in cons["proof"]],
        bytes.fromhex(cons["first_root"]), bytes.fromhex(cons["second_root"]),
    )  # fmt: skip


def test_bad_requests_get_precise_errors_and_change_nothing(tmp_path, capsys):
    home = tmp_path / "ca"
    other = tmp_path / "other"
    code, _, err = cli(
        capsys, "ca", "issue", "--home", str(home), "--name", "x", "--out", str(tmp_path / "x")
    )
    assert code == 2 and "[ca_error]" in err and "no CA here" in err
    assert cli(capsys, "ca", "init", "--home", str(home))[0] == 0
    root = (home / "ca" / "root.pem").read_bytes()
    code, _, err = cli(capsys, "ca", "init", "--home", str(home))
    assert code == 2 and "[ca_error]" in err and (home / "ca" / "root.pem").read_bytes() == root
    assert cli(capsys, "ca", "init", "--home", str(other))[0] == 0
    assert (
        cli(
            capsys,
            "ca",
            "issue",
            "--home",
            str(other),
            "--name",
            "o.example",
            "--out",
            str(tmp_path / "o"),
        )[0]
        == 0
    )
    for bad_name in ("", "-lead", "a b", "x" * 254, "bad/slash"):
        code, _, err = cli(
            capsys,
            "ca",
            "issue",
            "--home",
            str(home),
            "--name",
            bad_name,
            "--out",
            str(tmp_path / "b"),
        )
        assert code == 2 and "[invalid_parameter]" in err, (bad_name, err)
    code, _, err = cli(
        capsys,
        "ca",
        "issue",
        "--home",
        str(home),
        "--name",
        "h.example",
        "--hours",
        "0",
        "--out",
        str(tmp_path / "h"),
    )
    assert code == 2 and "[invalid_parameter]" in err
    # A certificate of another CA is not this one's to revoke or prove.
    foreign = tmp_path / "o" / "cert.pem"
    for args in (("ca", "revoke", "--cert", str(foreign)), ("ct", "proof", "--cert", str(foreign))):
        code, _, err = cli(capsys, *args, "--home", str(home))
        assert code == 2 and "[ca_error]" in err and "not issued by this CA" in err
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    code, _, err = cli(capsys, "ca", "revoke", "--home", str(home), "--cert", str(junk))
    assert code == 2 and "not a PEM certificate" in err
    assert (
        cli(
            capsys,
            "ca",
            "issue",
            "--home",
            str(home),
            "--name",
            "n.example",
            "--out",
            str(tmp_path / "n"),
        )[0]
        == 0
    )
    cert = str(tmp_path / "n" / "cert.pem")
    assert cli(capsys, "ca", "revoke", "--home", str(home), "--cert", cert)[0] == 0
    code, _, err = cli(capsys, "ca", "revoke", "--home", str(home), "--cert", cert)
    assert code == 2 and "revoked already" in err
    code, _, err = cli(
        capsys, "ct", "consistency", "--home", str(home), "--first", "2", "--second", "1"
    )
    assert code == 2 and "[invalid_parameter]" in err
    # Nothing above logged a certificate in this CA but n.example.
    code, out, _ = cli(capsys, "ct", "proof", "--home", str(home), "--cert", cert, "--json")
    assert json.loads(out)["tree_size"] == 1


@pytest.mark.parametrize("torn", [1, 3, 7])
def test_a_torn_last_entry_is_not_an_entry(tmp_path, torn):
    from focusflow.services.trust.ca import StandaloneCa

    ca = StandaloneCa.init(tmp_path / "ca")
    ca.issue("a.example")
    with ca.entries_path.open("ab") as fh:
        fh.write(b"\0\0\4\0" + b"x" * torn)  # a crash mid-append: 1,024 bytes announced
    assert len(ca.entries()) == 1
    # The next issue cuts the torn tail: its leaf index is the one the log holds.
    issued = ca.issue("b.example")
    assert issued.leaf_index == 1 and len(ca.entries()) == 2
    assert ca.log().size == 2


def _openssl_dgst_verify(tmp_path, public_pem, data: bytes, der: bytes) -> bool:
    assert OPENSSL is not None, "the openssl binary is missing: ./dev test installs it"
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "sig.der").write_bytes(der)
    args = [OPENSSL, "dgst", "-sha256", "-verify", str(public_pem), "-signature"]
    args += [str(tmp_path / "sig.der"), str(tmp_path / "data.bin")]
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    return r.returncode == 0 and "Verified OK" in r.stdout


def test_signed_tree_heads_verify_with_openssl_and_bind_the_proofs(tmp_path, capsys):
    """``ct sth`` signs RFC 6962's TreeHeadSignature with the log's key: the real
    openssl checks the signature over the bytes RFC 6962 lays out (written here
    from the RFC, not by our encoder), an inclusion proof recomputes the signed
    root, and any changed field fails both openssl and our verifier."""
    import struct

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from focusflow.services.trust.sth import SignedTreeHead, TreeHeadError, verify_tree_head

    home = tmp_path / "ca"
    assert cli(capsys, "ca", "init", "--home", str(home))[0] == 0
    for name in ("a.example", "b.example", "c.example"):
        args = ["ca", "issue", "--home", str(home), "--name", name, "--out", str(tmp_path / name)]
        assert cli(capsys, *args)[0] == 0
    code, out, err = cli(capsys, "ct", "sth", "--home", str(home), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tree_size"] == 3
    signature = bytes.fromhex(doc["tree_head_signature"])
    assert signature[:2] == bytes([4, 3])  # sha256, ecdsa (RFC 5246 section 7.4.1.4.1)
    (length,) = struct.unpack(">H", signature[2:4])
    der = signature[4:]
    assert length == len(der)
    # RFC 6962 section 3.5: version v1 (0), signature_type tree_hash (1), uint64
    # timestamp, uint64 tree_size, the 32-byte root
    signed = (
        bytes([0, 1])
        + doc["timestamp"].to_bytes(8, "big")
        + doc["tree_size"].to_bytes(8, "big")
        + bytes.fromhex(doc["sha256_root_hash"])
    )
    public_pem = home / "ct" / "log_pub.pem"
    assert _openssl_dgst_verify(tmp_path, public_pem, signed, der)
    tampered = signed[:-1] + bytes([signed[-1] ^ 1])
    assert not _openssl_dgst_verify(tmp_path, public_pem, tampered, der)

    public = load_pem_public_key(public_pem.read_bytes())
    sth = SignedTreeHead.from_json(doc)
    verify_tree_head(sth, public)
    flipped = signature[:-1] + bytes([signature[-1] ^ 1])
    for changed in (
        {**doc, "tree_size": 4},
        {**doc, "timestamp": doc["timestamp"] + 1},
        {**doc, "sha256_root_hash": "00" * 32},
        {**doc, "tree_head_signature": flipped.hex()},
        {**doc, "tree_head_signature": "0503" + signature[2:].hex()},  # sha384: not ours
        {**doc, "tree_head_signature": signature[:-1].hex()},  # length no longer matches
    ):
        with pytest.raises(TreeHeadError):
            verify_tree_head(SignedTreeHead.from_json(changed), public)
    with pytest.raises(TreeHeadError):
        SignedTreeHead.from_json({"tree_size": 1})

    # a certificate's proof recomputes the root the log signed
    cert = str(tmp_path / "b.example" / "cert.pem")
    code, out, _ = cli(capsys, "ct", "proof", "--home", str(home), "--cert", cert, "--json")
    proof = json.loads(out)
    assert proof["tree_size"] == sth.tree_size and bytes.fromhex(proof["root_hash"]) == sth.root
