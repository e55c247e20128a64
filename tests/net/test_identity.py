from __future__ import annotations

import pytest

from focusflow.core.keys import KeyPair
from focusflow.net import PeerAddress, PeerAuthError
from focusflow.net.errors import NetError
from focusflow.net.identity import (
    check_auth,
    check_server_certificate,
    new_nonce,
    node_id_of_certificate,
    self_signed_certificate,
    sign_auth,
)

SERVER, CLIENT, OTHER = (KeyPair.from_seed(bytes([i]) * 32) for i in (1, 2, 3))


def test_certificate_carries_the_node_key_and_is_deterministic() -> None:
    cert = self_signed_certificate(SERVER)
    assert node_id_of_certificate(cert) == SERVER.public_key
    assert cert == self_signed_certificate(SERVER)
    check_server_certificate(cert, SERVER.public_key)
    with pytest.raises(PeerAuthError):
        check_server_certificate(cert, OTHER.public_key)
    with pytest.raises(PeerAuthError):
        check_server_certificate(None, SERVER.public_key)


def test_auth_signature_binds_server_client_and_nonce() -> None:
    nonce = new_nonce()
    signature = sign_auth(CLIENT, SERVER.public_key, nonce)
    check_auth(SERVER.public_key, CLIENT.public_key, nonce, signature)
    for server, client, n in [
        (OTHER.public_key, CLIENT.public_key, nonce),  # relayed to another server
        (SERVER.public_key, OTHER.public_key, nonce),  # claimed by another client
        (SERVER.public_key, CLIENT.public_key, new_nonce()),  # replayed
    ]:
        with pytest.raises(PeerAuthError):
            check_auth(server, client, n, signature)


def test_peer_address_text_form() -> None:
    addr = PeerAddress(SERVER.public_key, "127.0.0.1", 9000)
    assert PeerAddress.parse(str(addr)) == addr
    six = PeerAddress(SERVER.public_key, "::1", 9000)
    assert str(six).endswith("@[::1]:9000") and PeerAddress.parse(str(six)) == six
    for bad in ["", "zz@127.0.0.1:1", f"{SERVER.public_key.hex()}@:1", "ab@h:1"]:
        with pytest.raises(NetError):
            PeerAddress.parse(bad)
