"""A node home's files are durable and private: the genesis, the admin token, the
config and the validator key are each written to a temporary file, fsynced,
renamed into place and the directory fsynced; the chain's data directory is
created owner-only (0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from focusflow.node.home import (
    CONSENSUS_FEE_FLOAT,
    VALIDATOR_FUNDS,
    VALIDATOR_STAKE,
    init_devnet,
    init_testnet,
    init_validator,
)


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The paths of every file and directory fsynced while the test runs."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _synced_then_renamed(seen: list[str], final: Path) -> bool:
    """Whether a temporary file beside ``final`` was fsynced, ``final`` exists and
    its directory was fsynced after that."""
    tmp = [i for i, p in enumerate(seen) if Path(p).parent == final.parent and final.name in p]
    dirs = [i for i, p in enumerate(seen) if Path(p) == final.parent]
    return final.exists() and bool(tmp) and any(d > tmp[-1] for d in dirs)


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def test_devnet_home_files_are_fsynced_and_renamed(tmp_path, fsynced):
    home, created = init_devnet(tmp_path / "h")
    assert created
    for f in (home.genesis, home.admin_token, home.validator_key):
        assert _synced_then_renamed(fsynced, f), (f, fsynced)
    assert not [p for p in home.path.iterdir() if p.name.endswith(".tmp")]


def test_testnet_and_validator_homes_fsync_config_too(tmp_path, fsynced):
    homes = init_testnet(tmp_path / "net", 2, 27000)
    for home in homes:
        for f in (home.genesis, home.admin_token, home.validator_key, home.config):
            assert _synced_then_renamed(fsynced, f), (f, fsynced)
    fsynced.clear()
    home, _ = init_validator(
        tmp_path / "new",
        homes[0].load_genesis(),
        name="n",
        p2p="127.0.0.1:1",
        api="127.0.0.1:2",
        peers=[],
    )
    for f in (home.genesis, home.admin_token, home.validator_key, home.config):
        assert _synced_then_renamed(fsynced, f), (f, fsynced)


def test_data_dir_is_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        home, _ = init_devnet(tmp_path / "h")
        homes = init_testnet(tmp_path / "net", 2, 27100)
    finally:
        os.umask(old)
    for h in (home, *homes):
        assert h.data.is_dir() and stat.S_IMODE(h.data.stat().st_mode) == 0o700
        assert stat.S_IMODE(h.admin_token.stat().st_mode) == 0o600
        assert stat.S_IMODE(h.validator_key.stat().st_mode) == 0o600


def test_each_created_network_gets_its_own_chain_id(tmp_path):
    """Two devnets (or testnets) made the same way never share a chain id, so a
    transaction or vote signed for one is refused by the other; an existing home
    keeps its id, and an explicit id is used as given."""
    a, _ = init_devnet(tmp_path / "a")
    b, _ = init_devnet(tmp_path / "b")
    ids = [a.load_genesis().chain_id, b.load_genesis().chain_id]
    assert ids[0] != ids[1] and all(i.startswith("focusflow-devnet-") for i in ids)
    assert all(len(i) == len("focusflow-devnet-") + 12 for i in ids)
    again, created = init_devnet(tmp_path / "a")
    assert not created and again.load_genesis().chain_id == ids[0]
    n1 = init_testnet(tmp_path / "t1", 2, 27200)
    n2 = init_testnet(tmp_path / "t2", 2, 27200)
    t1 = {h.load_genesis().chain_id for h in n1}
    t2 = {h.load_genesis().chain_id for h in n2}
    assert len(t1) == 1 and len(t2) == 1 and t1 != t2  # one id per network
    assert next(iter(t1)).startswith("focusflow-testnet-")
    named, _ = init_devnet(tmp_path / "named", chain_id="my-chain")
    assert named.load_genesis().chain_id == "my-chain"


def test_validator_homes_keep_an_account_key_apart_from_the_consensus_key(tmp_path):
    """New homes hold ``account_key`` (0600), a key other than ``validator_key``;
    a testnet's genesis puts each validator's funds with its account key and
    leaves its consensus key the bond and a fee float. A home made before the
    split (no account_key) keeps using its consensus key as the account."""
    home, _ = init_devnet(tmp_path / "d")
    homes = init_testnet(tmp_path / "net", 2, 27300)
    joined, _ = init_validator(
        tmp_path / "j", homes[0].load_genesis(), name="j", p2p="127.0.0.1:1",
        api="127.0.0.1:2", peers=[],
    )  # fmt: skip
    for h in (home, *homes, joined):
        assert stat.S_IMODE(h.account_key.stat().st_mode) == 0o600
        assert h.load_account_key().seed != h.load_validator_key().seed
    genesis = homes[0].load_genesis()
    funds = {a.address: (a.balance, a.stake) for a in genesis.accounts}
    for h in homes:
        consensus = h.load_validator_key().address_raw
        account = h.load_account_key().address_raw
        assert funds[consensus] == (CONSENSUS_FEE_FLOAT, VALIDATOR_STAKE)
        assert funds[account] == (VALIDATOR_FUNDS, 0)
    home.account_key.unlink()  # as a home made before the split
    assert home.load_account_key().seed == home.load_validator_key().seed
    again, created = init_devnet(tmp_path / "d")
    assert not created and again.load_account_key().seed == again.load_validator_key().seed
