"""The network's CA as chain messages: a certificate no single member can sign.

Four members hold FROST shares of the CA key (3 of 4 sign); the key and its
self-signed root are made here by a trusted dealer, as a ceremony would hand
them out. A name's owner asks for a certificate, three members commit and
give shares, and the chain assembles it. Independent checks: the real
``openssl verify`` against the root, the RFC 6962 inclusion and consistency
proofs checked by the verifier of ``services.trust.ctlog`` against the tree
head in the state, and a follower that replays the blocks to the same head.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from focusflow.chain import Genesis, Msg
from focusflow.chain.block import sign_certificate as sign_commit
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import decode
from focusflow.core.keys import KeyPair
from focusflow.modules.ca import REQUEST_PREFIX
from focusflow.services.trust import ctlog, frost
from focusflow.services.trust.threshold_ca import sign_certificate, threshold_crl, threshold_root
from focusflow.state_schema.ca import (
    CROSS_PREFIX,
    certificate_for,
    is_revoked,
    issued,
    latest_crl,
    log_head,
    log_leaves,
)
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, VALIDATOR, new_chain, tx

DAVE = KeyPair.from_seed(b"dave".ljust(32, b"\0"))
ERIN = KeyPair.from_seed(b"erin".ljust(32, b"\0"))
MEMBERS = (ALICE, BOB, CAROL, DAVE)
#: Digests of the golden templates (test_the_templates_every_node_signs_are_the_same_bytes).
LEAF_TBS_SHA256 = "19144a11d12795da107c305d39951fc762f33c50c3cc0f671cdb720beaaac571"
CRL_TBS_SHA256 = "f3e31a6ab6bd91bb4c65bc9ff806375dc8a3ec952303b9ea5b4a83612b2ef654"
PREFIXES_SHA256 = "88161b05c98b0dc9e1d75415c2d3de31b9ab69bd1614a517a1c777d7bf415477"
#: The cross-certificate a federation vote makes (its prefix and tbsCertificate).
CROSS_SHA256 = "25deda10820291580a8c4611387a640dcab1d7d1171d311104536b21eb59a204"
#: Blocks start a minute ago: the root the dealer makes is valid from five minutes ago.
T0 = (int(time.time()) - 60) * 1000


def _group():
    group, shares = frost.deal(frost.h3(b"the network's CA key"), 3, 4)
    root = threshold_root("focusflow-test", group, lambda m: frost.sign_together(shares[:3], m))
    return group, shares, root


def _genesis(
    group: bytes, shares, root: x509.Certificate, with_ca: bool = True, validators=((VALIDATOR, 1),)
) -> Genesis:
    doc = {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": T0,
        "params": {"focus": {"mode": "diffusion"}},
        "accounts": [
            {"address": k.address, "balance": 10**12, "stake": 10**6} for k in (*MEMBERS, ERIN)
        ],
        "validators": [
            {"name": f"v{i}", "public_key": k.public_key.hex(), "power": p}
            for i, (k, p) in enumerate(validators)
        ],
    }
    if with_ca:
        doc["ca"] = {
            "threshold": 3,
            "public_key": group.hex(),
            "root": root.public_bytes(serialization.Encoding.DER).hex(),
            "members": [
                {
                    "address": k.address,
                    "identifier": s.identifier,
                    "verifying_share": s.public.hex(),
                }
                for k, s in zip(MEMBERS, shares, strict=True)
            ],
        }
    return Genesis.from_json(doc)


class Net:
    def __init__(self, tmp_path, with_ca: bool = True, validators=((VALIDATOR, 1),)) -> None:
        self.group, self.shares, self.root = _group()
        self.genesis = _genesis(self.group, self.shares, self.root, with_ca, validators)
        self.chain = new_chain(tmp_path / "c", self.genesis)
        self.tmp = tmp_path
        self.nonces: dict[str, int] = {}
        self.t = T0
        #: Every validator of the block's set precommits it (produce_block's
        #: certificate is the producer's alone, enough only for a set it dominates).
        self.keys = {k.public_key: k for k in (*MEMBERS, ERIN, VALIDATOR)}

    def produce(self, txs: list) -> Any:
        pending = self.chain.pipeline.propose(txs, time_ms=self.t, verified=False, in_place=True)
        signers = [self.keys[v.public_key] for v in self.chain.validators.validators]
        cert = sign_commit(signers, CHAIN_ID, pending.height, pending.hash)
        return self.chain.committer.commit_in_place(pending, cert)

    def send(self, key: KeyPair, msg: Msg):
        nonce = self.nonces.get(key.address, 0)
        self.t += 1000
        result = self.produce([tx(key, nonce, msg)])
        self.nonces[key.address] = nonce + 1
        return result.receipts[0]

    def issue(self, owner: KeyPair, name: str, node_key: bytes, signers=(0, 1, 2)):
        """Request, three commitments, three shares: the serial and the receipts."""
        receipt = self.send(owner, Msg("ca.request", {"name": name, "key": node_key, "hours": 24}))
        assert receipt.code == "ok", receipt.log
        serial = receipt.events[0]["serial"]
        return serial, self.sign_job(serial, signers)

    def sign_job(self, job: bytes, signers=(0, 1, 2)):
        """The members' commitments and shares for a signing job; the share receipts."""
        nonces = {}
        for i in signers:
            n, c = frost.commit(self.shares[i])
            nonces[i] = n
            body = {"serial": job, "hiding": c.hiding, "binding": c.binding}
            assert self.send(MEMBERS[i], Msg("ca.commit", body)).code == "ok"
        commitments = [
            frost.Commitment(self.shares[i].identifier, *_commit_points(nonces[i])) for i in signers
        ]
        tbs = self.pending_tbs(job)
        receipts = []
        for i in signers:
            z = frost.sign(self.shares[i], nonces[i], tbs, commitments)
            body = {"serial": job, "share": frost.scalar_bytes(z)}
            receipts.append(self.send(MEMBERS[i], Msg("ca.share", body)))
        return receipts

    def pending_tbs(self, serial: bytes) -> bytes:
        from focusflow.modules.ca import Request

        with self.chain.reader() as r:
            return Request.decode(r.get(REQUEST_PREFIX + serial)).tbs

    def certificate(self, serial: bytes) -> x509.Certificate | None:
        with self.chain.reader() as r:
            found = issued(r, serial)
        return None if found is None else x509.load_der_x509_certificate(found[1])


def _commit_points(nonces: frost.Nonces) -> tuple[bytes, bytes]:
    return frost.base_mul(nonces.hiding), frost.base_mul(nonces.binding)


def _node_key() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


def _register(net: Net, owner: KeyPair, name: str) -> None:
    body = {"name": name, "cid": raw_cid_bytes(name.encode())}
    assert net.send(owner, Msg("name.register", body)).code == "ok"


def test_three_of_four_members_issue_a_certificate_openssl_accepts(tmp_path):
    net = Net(tmp_path)
    _register(net, ERIN, "erin-node")
    key = _node_key()
    serial, receipts = net.issue(ERIN, "erin-node", key)
    assert [r.code for r in receipts] == ["ok", "ok", "ok"]
    issued = receipts[-1].events[-1]
    assert issued["type"] == "ca.issued" and issued["leaf_index"] == 0
    cert = net.certificate(serial)
    assert cert is not None
    assert cert.public_key().public_bytes_raw() == key
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["erin-node.focus"]
    assert cert.issuer == net.root.subject
    valid = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert valid.total_seconds() == 24 * 3600
    assert T0 // 1000 < cert.not_valid_before_utc.timestamp() < T0 // 1000 + 60
    with net.chain.reader() as r:
        assert r.get(REQUEST_PREFIX + serial) is None
        # found by its key, as a node finds its own and its peers'
        assert certificate_for(r, key) == (serial, cert.public_bytes(serialization.Encoding.DER))
        assert certificate_for(r, _node_key()) is None
        assert not is_revoked(r, serial)
    if shutil.which("openssl"):
        root_pem = tmp_path / "root.pem"
        leaf_pem = tmp_path / "leaf.pem"
        root_pem.write_bytes(net.root.public_bytes(serialization.Encoding.PEM))
        leaf_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        # at a time inside the leaf's validity, which begins at its block's time
        at = str(T0 // 1000 + 3600)
        out = subprocess.run(
            ["openssl", "verify", "-attime", at, "-CAfile", str(root_pem), str(leaf_pem)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    # the transparency log: an inclusion proof against the tree head in the state
    with net.chain.reader() as r:
        size, root_hash, _ = log_head(r)
        leaves = log_leaves(r, size)
    der = cert.public_bytes(serialization.Encoding.DER)
    log = ctlog.MerkleLog()
    for leaf in leaves:
        log.append_hash(leaf)
    assert size == 1 and log.root() == root_hash == ctlog.leaf_hash(der)
    # a second certificate: the head moves on, consistent with the first
    _register(net, ERIN, "erin-two")
    serial2, _ = net.issue(ERIN, "erin-two", _node_key(), signers=(1, 2, 3))
    cert2 = net.certificate(serial2)
    assert cert2 is not None
    with net.chain.reader() as r:
        size2, root2, _ = log_head(r)
        leaves = log_leaves(r, size2)
    log.append_hash(leaves[1])
    assert size2 == 2 and log.root() == root2
    der2 = cert2.public_bytes(serialization.Encoding.DER)
    proof = log.inclusion_proof(1)
    assert ctlog.verify_inclusion(ctlog.leaf_hash(der2), 1, 2, proof, root2)
    assert ctlog.verify_consistency(1, 2, log.consistency_proof(1, 2), root_hash, root2)
    follower = new_chain(tmp_path / "f", net.genesis, producer=False)
    for height in range(1, net.chain.height + 1):
        with net.chain.reader() as r:
            follower.apply_block(r.block(height))
    assert follower.head == net.chain.head


def test_the_log_head_matches_the_rfc_tree_at_every_size():
    from focusflow.chain.state import PendingState
    from focusflow.modules.ca import _append_leaf

    state = PendingState(lambda _k: None)
    log = ctlog.MerkleLog()
    for i in range(1, 40):
        entry = f"certificate {i}".encode()
        _append_leaf(state, entry)
        log.append(entry)
        size, root, _ = log_head(state)
        assert size == i and root == log.root()


def test_what_the_chain_refuses(tmp_path):
    net = Net(tmp_path)
    _register(net, ERIN, "erin-node")
    key = _node_key()
    # only the name's owner asks for its certificate
    r = net.send(BOB, Msg("ca.request", {"name": "erin-node", "key": key, "hours": 24}))
    assert r.code == "not_owner"
    r = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": key, "hours": 0}))
    assert r.code == "malformed_message"
    r = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": b"\1" * 31, "hours": 1}))
    assert r.code == "malformed_message"
    r = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": key, "hours": 24}))
    serial = r.events[0]["serial"]
    # one pending request per name: each costs every signer two transactions
    again = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": key, "hours": 24}))
    assert again.code == "ca_refused" and "already" in again.log
    rounds = [frost.commit(s) for s in net.shares]
    # no one outside the group commits; a member commits once; the set holds three
    body = {"serial": serial, "hiding": rounds[0][1].hiding, "binding": rounds[0][1].binding}
    assert net.send(ERIN, Msg("ca.commit", body)).code == "ca_refused"
    assert net.send(ALICE, Msg("ca.commit", body)).code == "ok"
    assert net.send(ALICE, Msg("ca.commit", body)).code == "ca_refused"
    share = {"serial": serial, "share": frost.scalar_bytes(1)}
    assert net.send(ALICE, Msg("ca.share", share)).code == "ca_refused"  # set not complete
    for i in (1, 2):
        c = rounds[i][1]
        body = {"serial": serial, "hiding": c.hiding, "binding": c.binding}
        assert net.send(MEMBERS[i], Msg("ca.commit", body)).code == "ok"
    c = rounds[3][1]
    body = {"serial": serial, "hiding": c.hiding, "binding": c.binding}
    r = net.send(DAVE, Msg("ca.commit", body))
    assert r.code == "ca_refused" and "full" in r.log
    # a forged share is refused and changes nothing; the honest one is kept once
    before = net.pending_tbs(serial)
    with net.chain.reader() as rd:
        pending = rd.get(REQUEST_PREFIX + serial)
    r = net.send(ALICE, Msg("ca.share", {"serial": serial, "share": frost.scalar_bytes(12345)}))
    assert r.code == "ca_refused" and "does not verify" in r.log
    with net.chain.reader() as rd:
        assert rd.get(REQUEST_PREFIX + serial) == pending
    commitments = [c for _, c in rounds[:3]]
    z = frost.sign(net.shares[0], rounds[0][0], before, commitments)
    honest = {"serial": serial, "share": frost.scalar_bytes(z)}
    assert net.send(ALICE, Msg("ca.share", honest)).code == "ok"
    assert net.send(ALICE, Msg("ca.share", honest)).code == "ca_refused"
    assert net.send(DAVE, Msg("ca.share", honest)).code == "ca_refused"  # not in the set
    unknown = {"serial": b"\0" * 16, "hiding": c.hiding, "binding": c.binding}
    assert net.send(BOB, Msg("ca.commit", unknown)).code == "ca_refused"


def test_a_chain_without_a_ca_refuses_its_messages(tmp_path):
    net = Net(tmp_path, with_ca=False)
    _register(net, ERIN, "erin-node")
    r = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": _node_key(), "hours": 1}))
    assert r.code == "ca_refused" and "no certificate authority" in r.log


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda ca: ca.update(threshold=1), "threshold"),
        (lambda ca: ca.update(threshold=5), "threshold"),
        (lambda ca: ca["members"][1].update(identifier=1), "distinct"),
        (lambda ca: ca.update(public_key="00" * 31), "public_key"),
        (lambda ca: ca.update(extra=1), "ca must be"),
    ],
)
def test_a_malformed_ca_section_is_refused(change, match):
    from focusflow.chain.errors import GenesisError

    group, shares, root = _group()
    doc = _genesis(group, shares, root).to_json()
    change(doc["ca"])
    with pytest.raises(GenesisError, match=match):
        Genesis.from_json(doc)


def _openssl_verify(
    tmp_path, root: x509.Certificate, leaf: x509.Certificate, crl=None, extra: tuple = ()
):
    files = {"root.pem": root, "leaf.pem": leaf}
    for name, obj in files.items():
        (tmp_path / name).write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    args = ["openssl", "verify", "-attime", str(T0 // 1000 + 3600), *extra]
    if crl is not None:
        (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        args += ["-crl_check", "-CRLfile", str(tmp_path / "crl.pem")]
    args += ["-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is checked against")
def test_the_requester_revokes_and_the_group_signs_the_crl(tmp_path):
    net = Net(tmp_path)
    _register(net, ERIN, "erin-node")
    serial, _ = net.issue(ERIN, "erin-node", _node_key())
    cert = net.certificate(serial)
    assert cert is not None
    assert net.send(BOB, Msg("ca.revoke", {"serial": serial})).code == "not_owner"
    receipt = net.send(ERIN, Msg("ca.revoke", {"serial": serial}))
    assert receipt.code == "ok", receipt.log
    event = receipt.events[0]
    assert event["number"] == 1
    assert net.send(ERIN, Msg("ca.revoke", {"serial": serial})).code == "ca_refused"
    # before the group signed the CRL, the certificate still verifies (no CRL yet)
    with net.chain.reader() as r:
        assert latest_crl(r) is None
        assert is_revoked(r, serial)  # what a peer's node checks, before any CRL
    assert _openssl_verify(tmp_path, net.root, cert).returncode == 0
    receipts = net.sign_job(event["crl_job"], signers=(1, 2, 3))
    assert receipts[-1].events[-1] == {"type": "ca.crl", "number": 1}
    with net.chain.reader() as r:
        number, der = latest_crl(r)
    crl = x509.load_der_x509_crl(der)
    assert number == 1 and crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    out = _openssl_verify(tmp_path, net.root, cert, crl)
    assert out.returncode != 0 and "revoked" in out.stdout + out.stderr
    # another certificate of the same CA is not on the CRL: it verifies against it
    _register(net, ERIN, "erin-two")
    other, _ = net.issue(ERIN, "erin-two", _node_key())
    out = _openssl_verify(tmp_path, net.root, net.certificate(other), crl)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_templates_every_node_signs_are_the_same_bytes():
    """Golden digests of a leaf's tbsCertificate and a CRL's tbsCertList from fixed
    inputs: every validator must build the same bytes (cryptography's DER), or the
    group's shares would sign different messages. The same digests on the dev VM's AMD
    EPYC (Python 3.11, cryptography 50.0.2) and an Intel Xeon (Python 3.12, cryptography
    50.0.2 and 47.0.0, the lower bound)."""
    import datetime as dt
    import hashlib

    from focusflow.modules.ca import Group, crl_template, cross_template, leaf_template

    group, _ = frost.deal(frost.h3(b"golden"), 2, 3)
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32).public_key().public_bytes_raw()
    issuer = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "golden root")])
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(issuer.public_key())
        .serial_number(1)
        .not_valid_before(at)
        .not_valid_after(at + dt.timedelta(days=3650))
        .sign(issuer, None)
    )
    g = Group(2, group, root.public_bytes(serialization.Encoding.DER), {})
    prefix, tbs = leaf_template(g, "golden-node", key, 12345, at, 24)
    assert prefix.endswith(b"\x03\x41\x00")  # the BIT STRING of the 64-byte signature
    crl_prefix, crl_tbs = crl_template(
        g, [(12345, 1_767_225_600), (7, 1_767_225_700)], 3, 1_767_226_000
    )
    other_key = Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
    other_name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "other root")])
    other = (
        x509.CertificateBuilder()
        .subject_name(other_name)
        .issuer_name(other_name)
        .public_key(other_key.public_key())
        .serial_number(2)
        .not_valid_before(at)
        .not_valid_after(at + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(other_key, None)
    )
    cross_prefix, cross_tbs = cross_template(g, other, 777, at, 30, ["b.net", "a.net"])
    assert hashlib.sha256(tbs).hexdigest() == LEAF_TBS_SHA256
    assert hashlib.sha256(crl_tbs).hexdigest() == CRL_TBS_SHA256
    assert hashlib.sha256(prefix + crl_prefix).hexdigest() == PREFIXES_SHA256
    assert hashlib.sha256(cross_prefix + cross_tbs).hexdigest() == CROSS_SHA256


def test_a_signing_set_that_stalls_restarts_without_its_silent_member(tmp_path):
    from focusflow.modules.ca import STALL_BLOCKS, Request

    net = Net(tmp_path)
    _register(net, ERIN, "erin-node")
    r = net.send(ERIN, Msg("ca.request", {"name": "erin-node", "key": _node_key(), "hours": 1}))
    serial = r.events[0]["serial"]
    rounds = {i: frost.commit(net.shares[i]) for i in (0, 1, 2)}
    for i, (_, c) in rounds.items():
        body = {"serial": serial, "hiding": c.hiding, "binding": c.binding}
        assert net.send(MEMBERS[i], Msg("ca.commit", body)).code == "ok"
    tbs = net.pending_tbs(serial)
    commitments = [c for _, c in rounds.values()]
    for i in (0, 1):  # member 2 (CAROL) committed and goes silent
        z = frost.sign(net.shares[i], rounds[i][0], tbs, commitments)
        body = {"serial": serial, "share": frost.scalar_bytes(z)}
        assert net.send(MEMBERS[i], Msg("ca.share", body)).code == "ok"
    restarted = None
    for _ in range(STALL_BLOCKS + 1):
        net.t += 1000
        block = net.chain.produce_block([], time_ms=net.t)
        restarted = restarted or next((e for e in block.events if e["type"] == "ca.restart"), None)
    assert restarted is not None and restarted["silent"] == [net.shares[2].identifier]
    with net.chain.reader() as rd:
        req = Request.decode(rd.get(REQUEST_PREFIX + serial))
    assert req.attempt == 1 and not req.commits and not req.shares
    c = frost.commit(net.shares[2])[1]
    body = {"serial": serial, "hiding": c.hiding, "binding": c.binding}
    r = net.send(CAROL, Msg("ca.commit", body))
    assert r.code == "ca_refused" and "unfinished" in r.log
    # the others sign with fresh nonces (a nonce never signs twice)
    receipts = net.sign_job(serial, signers=(0, 1, 3))
    assert receipts[-1].events[-1]["type"] == "ca.issued"
    assert net.certificate(serial) is not None


def _other_network(name: str = "other"):
    """Another network's threshold root and a signer of its group."""
    group, shares = frost.deal(frost.h3(f"{name} CA key".encode()), 2, 3)

    def sign(m: bytes) -> bytes:
        return frost.sign_together(shares[:2], m)

    return group, sign, threshold_root(name, group, sign)


def _leaf_of(root: x509.Certificate, group: bytes, sign, dns: str) -> x509.Certificate:
    """A node certificate of that network for ``dns``."""
    start = dt.datetime.fromtimestamp(T0 // 1000, dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(root.subject)
        .public_key(Ed25519PrivateKey.generate().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    )
    return sign_certificate(builder, group, sign)


def _verify_through(tmp_path, root, cross, leaf, crl=None):
    """``openssl verify`` trusting only ``root``, with ``cross`` as an untrusted
    intermediate (None: without it), checking the CRLs ``crl`` at every level."""
    objs = {"root.pem": root, "leaf.pem": leaf, "cross.pem": cross}
    for name, obj in objs.items():
        if obj is not None:
            (tmp_path / name).write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    if crl is not None:  # the CRLs of every level, in one file
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crl)
        (tmp_path / "crl.pem").write_bytes(pem)
    args = ["openssl", "verify", "-attime", str(T0 // 1000 + 3600)]
    if crl is not None:
        args += ["-crl_check_all", "-CRLfile", str(tmp_path / "crl.pem")]
    if cross is not None:
        args += ["-untrusted", str(tmp_path / "cross.pem")]
    args += ["-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is checked against")
def test_validators_vote_to_trust_another_network_and_to_withdraw_it(tmp_path):
    net = Net(tmp_path)
    funded = Msg("send", {"to": VALIDATOR.address_raw, "amount": 10**9})
    assert net.send(ERIN, funded).code == "ok"
    b_group, b_sign, b_root = _other_network()
    b_der = b_root.public_bytes(serialization.Encoding.DER)
    vote = {"root": b_der, "days": 30, "permitted": ["b.net"]}
    # only validators vote; what they vote on is checked first
    assert net.send(ERIN, Msg("ca.federate", vote)).code == "not_validator"
    own = net.root.public_bytes(serialization.Encoding.DER)
    for bad in (
        {**vote, "root": own},
        {**vote, "root": b"\x30\x03junk"},
        {
            **vote,
            "root": _leaf_of(b_root, b_group, b_sign, "x.b.net").public_bytes(
                serialization.Encoding.DER
            ),
        },
        {**vote, "days": 0},
        {**vote, "permitted": ["B.NET"]},
        {**vote, "permitted": ["b.net"] * 17},
    ):
        assert net.send(VALIDATOR, Msg("ca.federate", bad)).code == "malformed_message", bad
    # the one validator holds all the power: its vote decides, and the group signs
    receipt = net.send(VALIDATOR, Msg("ca.federate", vote))
    assert receipt.code == "ok", receipt.log
    (event,) = [e for e in receipt.events if e["type"] == "ca.federate"]
    serial, root_hash = event["serial"], event["root_hash"]
    assert root_hash == hashlib.sha256(b_der).digest()
    receipts = net.sign_job(serial)
    assert receipts[-1].events[-1]["type"] == "ca.federated"
    assert net.send(VALIDATOR, Msg("ca.federate", vote)).code == "ca_refused"  # trusted already
    with net.chain.reader() as r:
        cross_serial, cross_der = decode(r.get(CROSS_PREFIX + root_hash), "ca cross")
        size, _, _ = log_head(r)
    assert cross_serial == serial and size == 1  # logged like any certificate
    cross = x509.load_der_x509_certificate(cross_der)
    assert cross.subject == b_root.subject and cross.issuer == net.root.subject
    # a verifier trusting only this network accepts the other's nodes through it,
    # within the names it was limited to
    b_node = _leaf_of(b_root, b_group, b_sign, "web.b.net")
    assert _verify_through(tmp_path, net.root, cross, b_node).returncode == 0
    assert _verify_through(tmp_path, net.root, None, b_node).returncode != 0
    outside = _verify_through(
        tmp_path, net.root, cross, _leaf_of(b_root, b_group, b_sign, "a.c.org")
    )
    assert outside.returncode != 0 and "subtree" in outside.stdout + outside.stderr
    # withdrawn by vote: the cross-certificate is revoked in the group's next CRL
    assert net.send(ERIN, Msg("ca.withdraw", {"root_hash": root_hash})).code == "not_validator"
    assert net.send(VALIDATOR, Msg("ca.withdraw", {"root_hash": b"\0" * 32})).code == "ca_refused"
    receipt = net.send(VALIDATOR, Msg("ca.withdraw", {"root_hash": root_hash}))
    assert receipt.code == "ok", receipt.log
    (revoked,) = [e for e in receipt.events if e["type"] == "ca.revoke"]
    assert revoked["serial"] == serial
    net.sign_job(revoked["crl_job"], signers=(1, 2, 3))
    with net.chain.reader() as r:
        assert r.get(CROSS_PREFIX + root_hash) is None and is_revoked(r, serial)
        _, crl_der = latest_crl(r)
    crl = x509.load_der_x509_crl(crl_der)
    b_crl = threshold_crl(b_root, b_sign, [])  # the other network revokes nothing
    out = _verify_through(tmp_path, net.root, cross, b_node, [crl, b_crl])
    assert out.returncode != 0 and "revoked" in out.stdout + out.stderr
    # a CRL of this network revoking nothing passes it: what fails is the revocation
    empty = threshold_crl(net.root, lambda m: frost.sign_together(net.shares[:3], m), [])
    assert _verify_through(tmp_path, net.root, cross, b_node, [empty, b_crl]).returncode == 0


def test_federation_is_decided_by_more_than_two_thirds_of_the_power(tmp_path):
    """Four validators of power 1 (ALICE, BOB and CAROL are CA members too): two
    votes are not enough, the third decides; a second vote from one validator is
    refused; a vote for other terms is counted apart; undecided votes are dropped
    after FED_VOTE_BLOCKS; a validator holds at most MAX_FED_VOTES undecided."""
    from focusflow.modules.ca import FED_VOTE_BLOCKS, FED_VOTES_PREFIX, MAX_FED_VOTES

    net = Net(tmp_path, validators=((VALIDATOR, 1), (ALICE, 1), (BOB, 1), (CAROL, 1)))
    assert net.send(ERIN, Msg("send", {"to": VALIDATOR.address_raw, "amount": 10**9})).code == "ok"
    _, _, b_root = _other_network()
    b_der = b_root.public_bytes(serialization.Encoding.DER)
    vote = {"root": b_der, "days": 30, "permitted": []}

    def pending() -> list:
        with net.chain.reader() as r:
            return [decode(v, "votes") for _, v in r.items(FED_VOTES_PREFIX)]

    def tally(receipt) -> tuple[int, int]:
        (event,) = [e for e in receipt.events if e["type"] == "ca.vote"]
        return event["power"], event["total"]

    first = net.send(VALIDATOR, Msg("ca.federate", vote))
    assert first.code == "ok" and tally(first) == (1, 4)
    assert not [e for e in first.events if e["type"] == "ca.federate"]
    assert net.send(VALIDATOR, Msg("ca.federate", vote)).code == "already_voted"
    # the same root for other terms is another question
    other_terms = net.send(ALICE, Msg("ca.federate", {**vote, "days": 31}))
    assert other_terms.code == "ok" and tally(other_terms) == (1, 4)
    second = net.send(BOB, Msg("ca.federate", vote))
    assert second.code == "ok" and tally(second) == (2, 4)  # 2 of 4: not more than 2/3
    assert len(pending()) == 2
    third = net.send(CAROL, Msg("ca.federate", vote))
    assert third.code == "ok" and tally(third) == (3, 4)
    (decided,) = [e for e in third.events if e["type"] == "ca.federate"]
    assert decided["root_hash"] == hashlib.sha256(b_der).digest()
    assert len(pending()) == 1  # the decided question's votes are gone; ALICE's stays
    # an undecided vote is dropped after FED_VOTE_BLOCKS
    for _ in range(FED_VOTE_BLOCKS):
        net.t += 1000
        net.produce([])
    assert pending() == []
    # one validator holds at most MAX_FED_VOTES undecided
    for days in range(1, MAX_FED_VOTES + 1):
        assert net.send(ALICE, Msg("ca.federate", {**vote, "days": days})).code == "ok"
    refused = net.send(ALICE, Msg("ca.federate", {**vote, "days": MAX_FED_VOTES + 1}))
    assert refused.code == "ca_refused" and len(pending()) == MAX_FED_VOTES


def _verify_name(tmp_path, root: x509.Certificate, leaf: x509.Certificate, name: str, crl=None):
    """``openssl verify -verify_hostname <name>.focus`` (with ``-crl_check`` against
    ``crl`` when one is given): what a TLS client of the name checks."""
    return _openssl_verify(tmp_path, root, leaf, crl, ["-verify_hostname", f"{name}.focus"])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is checked against")
def test_a_name_that_changes_hands_takes_its_certificates_with_it(tmp_path):
    """The old owner's certificates for ``<name>.focus`` are revoked by the transfer
    (one CRL the group signs, which the real ``openssl verify -crl_check
    -verify_hostname`` then refuses them with) and its pending request is dropped;
    the new owner may revoke what is left for the name, and asks for its own."""
    from focusflow.modules.ca import ASKED_PREFIX

    net = Net(tmp_path)
    _register(net, ERIN, "shop")
    first, _ = net.issue(ERIN, "shop", _node_key())
    renewed, _ = net.issue(ERIN, "shop", _node_key())
    old = [net.certificate(first), net.certificate(renewed)]
    for cert in old:
        assert _verify_name(tmp_path, net.root, cert, "shop").returncode == 0
    assert _verify_name(tmp_path, net.root, old[0], "shops").returncode != 0  # the name counts
    pending = net.send(ERIN, Msg("ca.request", {"name": "shop", "key": _node_key(), "hours": 24}))
    assert pending.code == "ok"
    waiting = pending.events[0]["serial"]
    receipt = net.send(ERIN, Msg("name.transfer", {"name": "shop", "to": BOB.address_raw}))
    assert receipt.code == "ok", receipt.log
    revoked = [e for e in receipt.events if e["type"] == "ca.revoke"]
    assert sorted(e["serial"] for e in revoked) == sorted([first, renewed])
    assert len({e["crl_job"] for e in revoked}) == 1  # one CRL for both
    (cancelled,) = [e for e in receipt.events if e["type"] == "ca.cancel"]
    assert cancelled["serial"] == waiting
    with net.chain.reader() as r:
        assert is_revoked(r, first) and is_revoked(r, renewed)
        assert r.get(REQUEST_PREFIX + waiting) is None
        assert r.get(ASKED_PREFIX + b"shop") is None
    # the old owner's request is gone: no member can commit to it
    c = frost.commit(net.shares[0])[1]
    body = {"serial": waiting, "hiding": c.hiding, "binding": c.binding}
    assert net.send(ALICE, Msg("ca.commit", body)).code == "ca_refused"
    net.sign_job(revoked[0]["crl_job"], signers=(1, 2, 3))
    with net.chain.reader() as r:
        _, der = latest_crl(r)
    crl = x509.load_der_x509_crl(der)
    for cert in old:
        out = _verify_name(tmp_path, net.root, cert, "shop", crl)
        assert out.returncode != 0 and "revoked" in out.stdout + out.stderr
    # the new owner may revoke certificates of its name (these are revoked already),
    # an account that neither asked for them nor owns the name may not
    assert net.send(CAROL, Msg("ca.revoke", {"serial": first})).code == "not_owner"
    again = net.send(BOB, Msg("ca.revoke", {"serial": first}))
    assert again.code == "ca_refused" and "revoked already" in again.log
    # the new owner's own certificate verifies against the same CRL; the old
    # owner can neither ask for the name's certificate nor revoke the new one
    r = net.send(ERIN, Msg("ca.request", {"name": "shop", "key": _node_key(), "hours": 1}))
    assert r.code == "not_owner"
    fresh, _ = net.issue(BOB, "shop", _node_key())
    assert _verify_name(tmp_path, net.root, net.certificate(fresh), "shop", crl).returncode == 0
    assert net.send(ERIN, Msg("ca.revoke", {"serial": fresh})).code == "not_owner"
    # a transfer to the owner itself changes no hands: nothing is revoked
    same = net.send(BOB, Msg("name.transfer", {"name": "shop", "to": BOB.address_raw}))
    assert same.code == "ok" and not [e for e in same.events if e["type"] == "ca.revoke"]
    follower = new_chain(tmp_path / "f", net.genesis, producer=False)
    for height in range(1, net.chain.height + 1):
        with net.chain.reader() as r:
            follower.apply_block(r.block(height))
    assert follower.head == net.chain.head


def test_a_name_holds_a_bounded_number_of_live_certificates(tmp_path):
    """The chain finds a name's certificates through an index of its own (a transfer
    revokes them without scanning every certificate), so that index is bounded: past
    ``MAX_NAME_CERTS`` live ones a request is refused, until one is revoked."""
    from focusflow.modules.ca import LIVE_PREFIX, MAX_NAME_CERTS

    net = Net(tmp_path)
    _register(net, ERIN, "busy-node")
    serials = [net.issue(ERIN, "busy-node", _node_key())[0] for _ in range(MAX_NAME_CERTS)]
    body = {"name": "busy-node", "key": _node_key(), "hours": 1}
    refused = net.send(ERIN, Msg("ca.request", body))
    assert refused.code == "ca_refused" and "live certificates" in refused.log
    assert net.send(ERIN, Msg("ca.revoke", {"serial": serials[0]})).code == "ok"
    with net.chain.reader() as r:
        listed = [s for s, _ in decode(r.get(LIVE_PREFIX + b"busy-node"), "ca live")]
    assert listed == serials[1:]
    assert net.send(ERIN, Msg("ca.request", body)).code == "ok"
