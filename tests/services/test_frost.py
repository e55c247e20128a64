"""FROST(Ed25519, SHA-512) against RFC 9591's own test vectors (Appendix E.1),
and its signatures checked as plain Ed25519 by ``cryptography`` (OpenSSL)."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from focusflow.services.trust import frost

# RFC 9591, Appendix E.1, FROST(Ed25519, SHA-512): MIN_PARTICIPANTS 2,
# MAX_PARTICIPANTS 3, signers 1 and 3, message "test".
E1 = {
    "group_secret_key": "7b1c33d3f5291d85de664833beb1ad469f7fb6025a0ec78b3a790c6e13a98304",
    "group_public_key": "15d21ccd7ee42959562fc8aa63224c8851fb3ec85a3faf66040d380fb9738673",
    "message": "74657374",
    "coefficient": "178199860edd8c62f5212ee91eff1295d0d670ab4ed4506866bae57e7030b204",
    "shares": {
        1: "929dcc590407aae7d388761cddb0c0db6f5627aea8e217f4a033f2ec83d93509",
        2: "a91e66e012e4364ac9aaa405fcafd370402d9859f7b6685c07eed76bf409e80d",
        3: "d3cb090a075eb154e82fdb4b3cb507f110040905468bb9c46da8bdea643a9a02",
    },
    # per signer: hiding and binding nonce randomness (hr, br), nonces (hn, bn),
    # nonce commitments (hc, bc) and binding factor (rho)
    "round_one": {
        1: {
            "hr": "06894e04ee4aceec8619d5f6a0a180e2f47194d2ac306cba586b555e7c48d765",
            "br": "40d6f879ff22e22409f7d808fed81f37118e7d3e4af71c0f44c60207553bcbce",
            "hn": "ef6599dea4010581a72b3018c37c29a4341d7cab0773e8687ca74dcf14009701",
            "bn": "2baadfa0c69aa60d517ad4751de372a73f9d89cfc39026601f18458cdec12605",
            "hc": "9b116f12589591a7e23fe8048059ab10ab48e67739e7a2fb3890f61a7999478c",
            "bc": "c39b66b7dfccb122da24f13587f9a08c4347cae70046ca15169adf90ba65854d",
            "rho": "ff960a65374e216a0918729b153466016664fa980d409bc3f308daa7acb30d0d",
        },
        3: {
            "hr": "fa5d950626782aade9e33fa781376d4888c2d1de7c37518bc248eb818ed0cdde",
            "br": "7459a4d14ded0e365b085271be8dc6600d5b88f3978a2174297ffa32001a5afc",
            "hn": "80f8d9a4b8f9366e1a0b618107c907cd3ee29fa9bb40b4691cc1bde696240005",
            "bn": "2610b664a5a187b4855e87d2ff485bebdf043dc2f161fcd4854cd01dc0276404",
            "hc": "e679a2a971748ccfaabead4dbe8ac1def61275c186c79d471e1e45091ad1e687",
            "bc": "b2a942478453fabb6bd3181c56ba657413447b4136e1daea2484d396d1a516b3",
            "rho": "279d48ec56f16d234c09ea62f3d02ab776ee38e03f66b20f939f1316e13df10f",
        },
    },
    "sig_shares": {
        1: "60997f0142e43e8005027fe5ab7447dac00d22c2d7ddd9571a02613ba7d81c08",
        3: "79390e78bc59699c7af831f8f5fb478ec871a85f561a8641b5670ac4443f720f",
    },
    "sig": "154fb694ee7fcb37bf2381d94488c2a84b03b3352ad085feca81ad26d45852b7"
    "ecfe971ce4da95c4a95db93ac376b053897fca212ef85f99cf696bffeb178f07",
}


def _s(hexed: str) -> int:
    return frost.decode_scalar(bytes.fromhex(hexed))


def _ed25519_ok(public: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def test_rfc9591_appendix_e1():
    group, shares = frost.deal(_s(E1["group_secret_key"]), 2, 3, [_s(E1["coefficient"])])
    assert group.hex() == E1["group_public_key"]
    assert {s.identifier: frost.scalar_bytes(s.secret).hex() for s in shares} == E1["shares"]
    msg = bytes.fromhex(E1["message"])
    by_id = {s.identifier: s for s in shares}
    nonces, commitments = {}, []
    for i, out in E1["round_one"].items():
        randomness = (
            bytes.fromhex(out["hr"]),
            bytes.fromhex(out["br"]),
        )
        n, c = frost.commit(by_id[i], randomness)
        assert frost.scalar_bytes(n.hiding).hex() == out["hn"]
        assert frost.scalar_bytes(n.binding).hex() == out["bn"]
        assert c.hiding.hex() == out["hc"]
        assert c.binding.hex() == out["bc"]
        nonces[i] = n
        commitments.append(c)
    factors = frost.binding_factors(group, commitments, msg)
    assert {i: frost.scalar_bytes(f).hex() for i, f in factors.items()} == {
        i: out["rho"] for i, out in E1["round_one"].items()
    }
    sig_shares = {i: frost.sign(by_id[i], nonces[i], msg, commitments) for i in nonces}
    assert {i: frost.scalar_bytes(z).hex() for i, z in sig_shares.items()} == E1["sig_shares"]
    for i, z in sig_shares.items():
        frost.verify_share(i, by_id[i].public, z, msg, commitments, group)
    sig = frost.aggregate(commitments, msg, group, list(sig_shares.values()))
    assert sig.hex() == E1["sig"]
    assert _ed25519_ok(group, sig, msg)  # a plain RFC 8032 signature, checked by OpenSSL


def _sign_with(signers, msg):
    rounds = [frost.commit(s) for s in signers]
    commitments = [c for _, c in rounds]
    shares = [frost.sign(s, n, msg, commitments) for s, (n, _) in zip(signers, rounds, strict=True)]
    return commitments, shares


def test_any_threshold_of_signers_signs_and_fewer_do_not():
    group, shares = frost.deal(frost.h3(b"a test secret"), 3, 5)
    msg = b"issue a certificate for node-7"
    for signers in itertools.combinations(shares, 3):
        commitments, sig_shares = _sign_with(list(signers), msg)
        sig = frost.aggregate(commitments, msg, group, sig_shares)
        assert _ed25519_ok(group, sig, msg)
        assert not _ed25519_ok(group, sig, msg + b"!")
    commitments, sig_shares = _sign_with(shares[:2], msg)  # two of a 3-of-5 key
    assert not _ed25519_ok(group, frost.aggregate(commitments, msg, group, sig_shares), msg)


def test_a_cheating_signer_is_named():
    group, shares = frost.deal(frost.h3(b"another secret"), 2, 3)
    msg = b"revoke serial 42"
    commitments, sig_shares = _sign_with(shares[:2], msg)
    bad = (sig_shares[1] + 1) % frost.L
    frost.verify_share(1, shares[0].public, sig_shares[0], msg, commitments, group)
    with pytest.raises(frost.FrostError, match="participant 2"):
        frost.verify_share(2, shares[1].public, bad, msg, commitments, group)
    sig = frost.aggregate(commitments, msg, group, [sig_shares[0], bad])
    assert not _ed25519_ok(group, sig, msg)


def test_bad_inputs_are_refused():
    _, shares = frost.deal(frost.h3(b"x"), 2, 3)
    n1, c1 = frost.commit(shares[0])
    _, c2 = frost.commit(shares[1])
    msg = b"m"
    with pytest.raises(frost.FrostError):  # the same participant twice
        frost.sign(shares[0], n1, msg, [c1, c1])
    with pytest.raises(frost.FrostError):  # its own commitment missing
        frost.sign(shares[0], n1, msg, [c2])
    low_order = bytes(32)  # all-zero bytes encode a point of small order
    bad = frost.Commitment(2, low_order, c2.binding)
    with pytest.raises(frost.FrostError, match="group element"):
        frost.sign(shares[0], n1, msg, [c1, bad])
    with pytest.raises(frost.FrostError, match="canonical scalar"):
        frost.decode_scalar(frost.L.to_bytes(32, "little"))
    with pytest.raises(frost.FrostError):
        frost.deal(1, 1, 3)
    with pytest.raises(frost.FrostError):
        frost.lagrange(4, [1, 2])


def _threshold_signer(signers):
    def sign(data: bytes) -> bytes:
        commitments, shares = _sign_with(signers, data)
        return frost.aggregate(commitments, data, signers[0].group_public_key, shares)

    return sign


def _openssl_verify(*args: str) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl binary is missing: ./dev test installs it"
    return subprocess.run([openssl, "verify", *args], capture_output=True, text=True, check=False)


def test_a_certificate_chain_signed_by_a_key_no_one_holds(tmp_path):
    """A CA root and a node certificate, each signed by 3 of 5 FROST holders: the
    real ``openssl verify`` accepts the chain (and the root's own signature, with
    ``-check_ss_sig``), and refuses either once a byte of its signature changes."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from focusflow.services.trust.threshold_ca import sign_certificate, threshold_root

    group, shares = frost.deal(frost.h3(b"the network's CA"), 3, 5)
    root = threshold_root("net", group, _threshold_signer([shares[0], shares[2], shares[4]]))
    now = dt.datetime.now(dt.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-7.net")]))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True),
        group,
        _threshold_signer([shares[1], shares[3], shares[4]]),  # another 3 of the 5
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(root.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    ok = _openssl_verify(
        "-check_ss_sig", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr

    for name, cert in (("root", root), ("leaf", leaf)):
        der = bytearray(cert.public_bytes(serialization.Encoding.DER))
        der[-1] ^= 1
        bad = x509.load_der_x509_certificate(bytes(der)).public_bytes(pem)
        (tmp_path / f"bad-{name}.pem").write_bytes(bad)
    bad_root = _openssl_verify(
        "-check_ss_sig", "-CAfile", str(tmp_path / "bad-root.pem"), str(tmp_path / "leaf.pem")
    )
    bad_leaf = _openssl_verify(
        "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "bad-leaf.pem")
    )
    assert bad_root.returncode != 0 and bad_leaf.returncode != 0


def _dkg(n: int, t: int, cheat: tuple[int, int] | None = None):
    """Every participant's round one, the shares each sends each other (one of
    them altered when ``cheat`` = (sender, receiver)), and the broadcasts."""
    polys, broadcasts = {}, []
    for i in range(1, n + 1):
        polys[i], b = frost.dkg_round1(i, t)
        broadcasts.append(b)
    sent = {j: {i: frost.dkg_share_for(polys[i], j) for i in polys} for j in polys}
    if cheat is not None:
        sender, receiver = cheat
        sent[receiver][sender] = (sent[receiver][sender] + 1) % frost.L
    return broadcasts, sent


def test_a_dealerless_key_signs_like_a_dealt_one():
    """Pedersen's DKG: 5 participants, threshold 3, no one ever holds the key;
    any 3 of the resulting shares sign, checked by OpenSSL's Ed25519."""
    broadcasts, sent = _dkg(5, 3)
    shares = [frost.dkg_finish(j, broadcasts, sent[j], 3) for j in range(1, 6)]
    group = shares[0].group_public_key
    assert all(s.group_public_key == group for s in shares)
    msg = b"a dealerless key"
    for signers in ([shares[0], shares[1], shares[2]], [shares[1], shares[3], shares[4]]):
        commitments, sig_shares = _sign_with(signers, msg)
        assert _ed25519_ok(group, frost.aggregate(commitments, msg, group, sig_shares), msg)


def test_dkg_names_a_cheating_participant():
    broadcasts, sent = _dkg(4, 2, cheat=(3, 1))
    with pytest.raises(frost.FrostError, match="participant 3's share for 1"):
        frost.dkg_finish(1, broadcasts, sent[1], 2)
    frost.dkg_finish(2, broadcasts, sent[2], 2)  # the others' shares are fine
    # a proof of knowledge made for another identifier (a copied broadcast) fails
    copied = frost.DkgRound1(4, broadcasts[0].commitments, broadcasts[0].proof)
    with pytest.raises(frost.FrostError, match="proof of knowledge"):
        frost.dkg_check_broadcast(copied, 2)
    with pytest.raises(frost.FrostError, match="another degree"):
        frost.dkg_check_broadcast(broadcasts[0], 3)


def _node_cert(root, name: str, group: bytes, sign):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from focusflow.services.trust.threshold_ca import sign_certificate

    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(root.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    return sign_certificate(builder, group, sign)


def test_federation_by_cross_certified_roots_and_its_withdrawal(tmp_path):
    """Network A (3 of 5) vouches for network B's root (2 of 3) with a
    cross-certificate its holders sign: openssl, trusting only A's root, then
    accepts B's node through it (and not without it, nor a name outside what A
    permitted); once A's holders sign a CRL revoking it, openssl refuses."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from focusflow.services.trust.threshold_ca import cross_certify, threshold_crl, threshold_root

    group_a, shares_a = frost.deal(frost.h3(b"network A"), 3, 5)
    group_b, shares_b = frost.deal(frost.h3(b"network B"), 2, 3)
    sign_a = _threshold_signer(shares_a[:3])
    sign_b = _threshold_signer(shares_b[1:])
    root_a = threshold_root("a.net", group_a, sign_a)
    root_b = threshold_root("b.net", group_b, sign_b)
    node_b = _node_cert(root_b, "node-1.b.net", group_b, sign_b)
    stray_b = _node_cert(root_b, "node-1.a.net", group_b, sign_b)  # a name B may not vouch for
    cross = cross_certify(root_a, _threshold_signer(shares_a[2:]), root_b, permitted_dns=["b.net"])

    def write(name, obj):
        (tmp_path / name).write_bytes(obj.public_bytes(Encoding.PEM))
        return str(tmp_path / name)

    a, x, n, s = (
        write("a.pem", root_a),
        write("cross.pem", cross),
        write("node.pem", node_b),
        write("stray.pem", stray_b),
    )
    assert _openssl_verify("-CAfile", a, "-untrusted", x, n).returncode == 0
    assert _openssl_verify("-CAfile", a, n).returncode != 0  # no cross-certificate, no trust
    stray = _openssl_verify("-CAfile", a, "-untrusted", x, s)
    assert stray.returncode != 0 and "permitted subtree violation" in stray.stdout + stray.stderr

    crl_a = write("a.crl", threshold_crl(root_a, sign_a, [cross.serial_number]))
    crl_b = write("b.crl", threshold_crl(root_b, sign_b, []))
    withdrawn = _openssl_verify(
        "-crl_check_all", "-CRLfile", crl_a, "-CRLfile", crl_b, "-CAfile", a, "-untrusted", x, n
    )
    assert withdrawn.returncode != 0 and "revoked" in withdrawn.stdout + withdrawn.stderr
    crl_a_empty = write("a0.crl", threshold_crl(root_a, sign_a, []))
    kept = _openssl_verify(
        "-crl_check_all",
        "-CRLfile",
        crl_a_empty,
        "-CRLfile",
        crl_b,
        "-CAfile",
        a,
        "-untrusted",
        x,
        n,
    )
    assert kept.returncode == 0, kept.stdout + kept.stderr
