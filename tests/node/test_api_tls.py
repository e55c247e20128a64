"""The node's API over TLS with operators' client certificates (``node.api_tls``,
``services.auth.certificates``): a real devnet process serving HTTPS, certificates
from our standalone CA, clients in httpx (OpenSSL through Python's ssl), the real
``openssl s_client`` and ``focusflow blob put`` itself."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.node.api_tls import ApiTls
from focusflow.node.home import init_devnet
from focusflow.services.auth.certificates import ClientCertificates
from focusflow.services.auth.tokens import UnauthorizedError
from focusflow.services.trust.ca import StandaloneCa
from focusflow.testing.devnet import start_devnet
from tests.cli.helpers import run_cli


def _files(ca: StandaloneCa, name: str, where: Path) -> tuple[Path, Path]:
    """``name``'s certificate (with its chain) and key under ``where``."""
    issued = ca.issue(name)
    where.mkdir(parents=True, exist_ok=True)
    cert, key = where / f"{name}.pem", where / f"{name}.key"
    cert.write_bytes(issued.cert_pem + ca.intermediate.public_bytes(_PEM))
    key.write_bytes(issued.key_pem)
    return cert, key


_PEM = Encoding.PEM


def _bundle(ca: StandaloneCa, path: Path) -> Path:
    path.write_bytes(ca.root.public_bytes(_PEM) + ca.intermediate.public_bytes(_PEM))
    return path


def _client(root: Path, cert: tuple[Path, Path] | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(root))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return httpx.Client(verify=context, timeout=10)


def _probe(root: Path) -> ssl.SSLContext:
    """The start-up probe's context: it asks by IP (node.json's address), which
    the certificate (for ``localhost``) does not name; every test asks by name."""
    context = ssl.create_default_context(cafile=str(root))
    context.check_hostname = False
    return context


@pytest.fixture(scope="module")
def tls_net(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    ca = StandaloneCa.init(base / "ca")
    other = StandaloneCa.init(base / "other", name="elsewhere")
    home = base / "home"
    init_devnet(home)
    tls = base / "tls"  # outside the home: a new home holds only its config.json
    server = _files(ca, "localhost", tls)
    people = {n: _files(ca, n, base / "people") for n in ("alice", "bob", "mallory")}
    people["stranger"] = _files(other, "alice", base / "strangers")
    (tls / "crl.pem").write_bytes(ca.crl())
    _bundle(ca, tls / "clients.pem")
    config = {
        "api_tls": {
            "cert": str(tls / "localhost.pem"),
            "key": str(tls / "localhost.key"),
            "client_ca": str(tls / "clients.pem"),
            "client_crl": str(tls / "crl.pem"),
            "client_roles": {"alice": ["blobs"], "mallory": ["blobs"]},
        },
        "api_limits": {"exempt_loopback": True},
    }
    (home / "config.json").write_text(json.dumps(config))
    root = base / "root.pem"
    root.write_bytes(ca.root.public_bytes(_PEM))
    net = start_devnet(home, verify=_probe(root))
    api = net.api.replace("127.0.0.1", "localhost")
    try:
        yield {"ca": ca, "api": api, "root": root, "people": people, "net": net, "home": home,
               "server": server, "base": base}  # fmt: skip
    finally:
        net.stop()


def _put(tls_net, who: str | None, headers: dict | None = None) -> int:
    cert = tls_net["people"][who] if who else None
    with _client(tls_net["root"], cert) as c:
        return c.post(f"{tls_net['api']}/v1/blobs", content=b"hello", headers=headers).status_code


def test_the_api_speaks_tls_and_a_client_certificate_authenticates(tls_net):
    assert tls_net["api"].startswith("https://")
    with _client(tls_net["root"], None) as c:
        assert c.get(f"{tls_net['api']}/v1/status").status_code == 200  # reads need nothing
    # no certificate, no bearer: 401; the admin token still works over TLS
    assert _put(tls_net, None) == 401
    admin = {"Authorization": f"Bearer {tls_net['net'].admin_token()}"}
    assert _put(tls_net, None, admin) == 200
    # alice's certificate has the blobs role; bob's names no role: 403
    assert _put(tls_net, "alice") == 200
    assert _put(tls_net, "bob") == 403
    # a bearer header decides alone: a wrong one is 401 even with alice's certificate
    assert _put(tls_net, "alice", {"Authorization": "Bearer wrong"}) == 401
    # alice may not use the faucet (no such grant)
    with _client(tls_net["root"], tls_net["people"]["alice"]) as c:
        body = {"address": KeyPair.generate().address, "amount": 1}
        r = c.post(f"{tls_net['api']}/v1/admin/faucet", json=body)
        assert r.status_code == 403, r.text


def test_a_revoked_certificate_is_refused_once_the_crl_says_so(tls_net):
    assert _put(tls_net, "mallory") == 200
    ca = tls_net["ca"]
    ca.revoke(x509.load_pem_x509_certificate(tls_net["people"]["mallory"][0].read_bytes()))
    crl = tls_net["base"] / "tls" / "crl.pem"
    tmp = crl.with_suffix(".new")
    tmp.write_bytes(ca.crl())
    tmp.replace(crl)
    assert _put(tls_net, "mallory") == 401
    assert _put(tls_net, "alice") == 200


def test_a_certificate_of_another_ca_and_plain_http_are_refused(tls_net):
    with pytest.raises(httpx.HTTPError):
        _put(tls_net, "stranger")  # the handshake fails: its issuer is not a client CA
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_net["api"].replace("https://", "http://") + "/v1/status", timeout=5)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
def test_openssl_s_client_is_asked_for_a_certificate_and_its_request_is_authorized(tls_net):
    host_port = tls_net["api"].removeprefix("https://")
    cert, key = tls_net["people"]["alice"]
    request = (
        b"POST /v1/blobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello"
    )
    command = ["openssl", "s_client", "-connect", host_port, "-servername", "localhost",
               "-CAfile", str(tls_net["root"]), "-cert", str(cert), "-key", str(key),
               "-verify_return_error", "-ign_eof"]  # fmt: skip
    out = subprocess.run(command, input=request, capture_output=True, timeout=30)
    text = (out.stdout + out.stderr).decode(errors="replace")
    assert out.returncode == 0, text
    assert "Verify return code: 0 (ok)" in text, text
    # a CertificateRequest came (OpenSSL prints its signature algorithms only then)
    assert "Requested Signature Algorithms" in text, text
    # and alice's certificate, sent by OpenSSL's own client, authorized the put
    assert "HTTP/1.1 200" in text and '"cid"' in text, text


def test_the_cli_authenticates_with_a_client_certificate_from_the_environment(
    tls_net, capsys, monkeypatch, tmp_path
):
    cert, key = tls_net["people"]["alice"]
    monkeypatch.setenv("FOCUSFLOW_TLS_CA", str(tls_net["root"]))
    monkeypatch.setenv("FOCUSFLOW_TLS_CERT", str(cert))
    monkeypatch.setenv("FOCUSFLOW_TLS_KEY", str(key))
    monkeypatch.delenv("FOCUSFLOW_TOKEN", raising=False)
    src = tmp_path / "f.txt"
    src.write_bytes(b"from the cli over mutual TLS")
    empty_home = tmp_path / "nohome"  # no admin token to fall back on
    empty_home.mkdir()
    r = run_cli(capsys, "blob", "put", src, "--node", tls_net["api"], "--home", empty_home,
                "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["size"] == src.stat().st_size
    monkeypatch.delenv("FOCUSFLOW_TLS_KEY")
    r = run_cli(capsys, "blob", "put", src, "--node", tls_net["api"], "--home", empty_home)
    assert r.code != 0 and "FOCUSFLOW_TLS_KEY" in r.err


def test_require_client_cert_refuses_a_handshake_without_one(tmp_path):
    ca = StandaloneCa.init(tmp_path / "ca")
    home, tls = tmp_path / "home", tmp_path / "tls"
    init_devnet(home)
    _files(ca, "localhost", tls)
    _bundle(ca, tls / "clients.pem")
    alice = _files(ca, "alice", tmp_path / "people")
    (home / "config.json").write_text(json.dumps({"api_tls": {
        "cert": str(tls / "localhost.pem"), "key": str(tls / "localhost.key"),
        "client_ca": str(tls / "clients.pem"), "require_client_cert": True,
        "client_roles": {"alice": ["blobs"]}}}))  # fmt: skip
    root = tmp_path / "root.pem"
    root.write_bytes(ca.root.public_bytes(_PEM))
    context = _probe(root)
    context.load_cert_chain(str(alice[0]), str(alice[1]))
    net = start_devnet(home, verify=context)
    try:
        api = net.api.replace("127.0.0.1", "localhost")
        with _client(root, alice) as c:
            assert c.get(f"{api}/v1/status").status_code == 200
        with pytest.raises(httpx.HTTPError), _client(root, None) as c:
            c.get(f"{api}/v1/status")
    finally:
        net.stop()


def test_api_tls_settings_are_checked(tmp_path):
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    ok = ApiTls.from_json({"cert": "c.pem", "key": "k.pem"}, tmp_path)
    assert ok is not None and ok.certificates() is None
    assert ApiTls.from_json(None, tmp_path) is None
    for bad in (
        {"cert": "c.pem"},
        {"cert": "c.pem", "key": "missing.pem"},
        {"cert": "c.pem", "key": "k.pem", "extra": 1},
        {"cert": "c.pem", "key": "k.pem", "require_client_cert": True},
        {"cert": "c.pem", "key": "k.pem", "client_roles": {"a": ["admin"]}},
        {"cert": "c.pem", "key": "k.pem", "client_roles": []},
        "yes",
    ):
        with pytest.raises(InvalidParameterError):
            ApiTls.from_json(bad, tmp_path)


def test_a_stale_or_forged_crl_refuses_every_certificate(tmp_path):
    ca = StandaloneCa.init(tmp_path / "ca")
    bundle = _bundle(ca, tmp_path / "clients.pem")
    cert, _ = _files(ca, "alice", tmp_path / "p")
    pem = cert.read_text()
    crl = tmp_path / "crl.pem"
    crl.write_bytes(ca.crl())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    stale = ClientCertificates({"alice": ["blobs"]}, bundle, crl, clock=lambda: later)
    with pytest.raises(UnauthorizedError) as raised:
        stale.identify(pem)
    assert "next update" in raised.value.reason
    fresh = ClientCertificates({"alice": ["blobs"]}, bundle, crl)
    assert fresh.identify(pem).roles == ("blobs",)
    # a CRL no client CA signed stops the node at start
    other = StandaloneCa.init(tmp_path / "other")
    forged = tmp_path / "forged.pem"
    forged.write_bytes(other.crl())
    with pytest.raises(InvalidParameterError, match="signed"):
        ClientCertificates({}, bundle, forged)
    # swapped in later, it makes every request unauthorized (fail closed)
    crl.write_bytes(other.crl())
    with pytest.raises(UnauthorizedError) as raised:
        fresh.identify(pem)
    assert "revocation cannot be checked" in raised.value.reason
