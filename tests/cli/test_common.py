"""How CLI arguments become particles, addresses and node URLs."""

from __future__ import annotations

import json

import pytest

from focusflow.cli.common import address, particle
from focusflow.cli.node_address import node_url
from focusflow.client import DEFAULT_NODE
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.errors import InvalidAddressError, InvalidCIDError, InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore

V0 = "QmPcfxEfW317u3bbz8MbEhjoMZ5HMFsx5TbsEHWPd1kLLw"
V1 = cid_of_text("hello")


def test_cids_are_taken_as_cids():
    assert particle(V0) == (V0, cid_to_bytes(V0))
    assert particle(V1) == (V1, cid_to_bytes(V1))


def test_text_becomes_its_cid():
    assert particle("hello world")[0] == cid_of_text("hello world")
    assert particle(V0, as_text=True)[0] == cid_of_text(V0)


@pytest.mark.parametrize("typo", [V0[:-1] + "0", V0[:-1] + "l", "bafkrei" + "0" * 52])
def test_a_broken_cid_is_an_error_not_text(typo):
    with pytest.raises(InvalidCIDError):
        particle(typo)
    assert particle(typo, as_text=True)[0] == cid_of_text(typo)


def test_empty_particle_refused():
    with pytest.raises(InvalidParameterError):
        particle("")


def test_address_or_key_name(tmp_path):
    key = KeyPair.from_seed(bytes(32))
    Keystore(tmp_path / "keys").add("bob", key, None)
    home = str(tmp_path)
    assert address(key.address, home) == key.address
    assert address("bob", home) == key.address
    with pytest.raises(InvalidAddressError, match="no key named"):
        address("carol", home)
    with pytest.raises(InvalidAddressError):
        address("a/b", home)


def test_node_url_resolution(tmp_path):
    assert node_url(None, tmp_path)[0] == DEFAULT_NODE
    (tmp_path / "node.json").write_text(json.dumps({"api": "http://127.0.0.1:4000/"}))
    assert node_url(None, tmp_path)[0] == "http://127.0.0.1:4000"
    assert node_url("http://h:1", tmp_path)[0] == "http://h:1"
    (tmp_path / "node.json").write_text("{broken")
    assert node_url(None, tmp_path)[0] == DEFAULT_NODE
    for bad in ["ftp://h", "h:1", "http://", "http://h:99999"]:
        with pytest.raises(InvalidParameterError):
            node_url(bad, tmp_path)
