"""The devnet's Ethereum accounts, derived without eth-account, against it and
against published vectors."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from eth_account.hdaccount.mnemonic import Mnemonic

from focusflow.node.hd_wallet import HdPathError, derive_key, eth_address, seed_of
from focusflow.node.home import ETH_DEV_ACCOUNTS, ETH_DEV_MNEMONIC, eth_dev_accounts

Account.enable_unaudited_hdwallet_features()


def test_bip32_test_vector_1():
    # BIP-32's test vector 1 (bitcoin/bips, bip-0032.mediawiki): seed
    # 000102030405060708090a0b0c0d0e0f, the private keys of chains m/0H and
    # m/0H/1/2H/2/1000000000.
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    assert derive_key(seed, "m/0'").hex() == (
        "edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea"
    )
    assert derive_key(seed, "m/0'/1/2'/2/1000000000").hex() == (
        "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8"
    )


def test_the_dev_accounts_are_anvils():
    # The accounts anvil (Foundry) and Hardhat print for the test mnemonic.
    accounts = eth_dev_accounts()
    assert len(accounts) == ETH_DEV_ACCOUNTS
    published = {
        0: ("f39fd6e51aad88f6f4ce6ab8827279cfffb92266",
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
        1: ("70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
        9: ("a0ee7a142d267c1f36714e4a8f75612f20a79720",
            "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"),
    }  # fmt: skip
    for i, (address, key) in published.items():
        assert accounts[i] == (bytes.fromhex(address), bytes.fromhex(key))
    for i, (address, key) in enumerate(accounts):
        acct = Account.from_mnemonic(ETH_DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert (address, key) == (bytes.fromhex(acct.address[2:]), bytes(acct.key))


def test_random_mnemonics_paths_and_passphrases_match_eth_account():
    rng = random.Random(7)
    words = Mnemonic()
    for _ in range(12):
        mnemonic = words.to_mnemonic(rng.randbytes(rng.choice([16, 20, 24, 32])))
        passphrase = rng.choice(["", "TREZOR", "pässwörd"])
        steps = [
            f"{rng.randrange(2**31)}{rng.choice(['', chr(39)])}" for _ in range(rng.randrange(6))
        ]
        path = "/".join(["m", *steps])
        acct = Account.from_mnemonic(mnemonic, passphrase=passphrase, account_path=path)
        key = derive_key(seed_of(mnemonic, passphrase), path)
        assert key == bytes(acct.key), (mnemonic, passphrase, path)
        assert eth_address(key) == bytes.fromhex(acct.address[2:])


@pytest.mark.parametrize(
    "path", ["", "44'/60'", "m/", "m/x", "m/-1", "m/2147483648", "m/1''", "M/0"]
)
def test_bad_paths_are_refused(path):
    with pytest.raises(HdPathError):
        derive_key(bytes(64), path)


def test_a_step_to_an_invalid_key_is_refused_not_wrapped():
    # BIP-32: a tweak at or above the group order, or a child key of 0, makes the
    # key invalid; about 2^-127 a step, so it is met here by hand.
    from focusflow.node.hd_wallet import _ORDER, _valid

    assert _valid(5, 7, "m/1") == (12).to_bytes(32, "big")
    assert _valid(_ORDER - 1, 2, "m/1") == (1).to_bytes(32, "big")
    with pytest.raises(HdPathError, match="invalid key"):
        _valid(_ORDER, 1, "m/1")
    with pytest.raises(HdPathError, match="invalid key"):
        _valid(_ORDER - 1, 1, "m/1")
