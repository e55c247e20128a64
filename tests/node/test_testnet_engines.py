"""Four validator processes on loopback running the polling engines.

Real processes (``focusflow testnet --consensus snowman|fallback``), real QUIC,
every wait bounded. Snowman's polls travel to named validators only; its
decisions are notarised, so every block carries a commit certificate (at the
attestation round) that any follower checks as it checks Tendermint's. With
one of four validators killed the other three keep committing; restarted, it
catches up by block sync to the same roots.
"""

from __future__ import annotations

import json

import httpx
import pytest

from focusflow.consensus import ValidatorSet, decode_certificate, verify_certificate
from focusflow.consensus.notarise import ACCEPT_ROUND
from focusflow.testing.testnet import LocalTestnet


def certificate_at(net: LocalTestnet, k: int, height: int):
    """The commit certificate validator k serves for ``height`` (light client route)."""
    body = httpx.get(f"{net.apis[k]}/v1/light/header/{height}", timeout=10).json()
    return decode_certificate(bytes.fromhex(body["certificate_cbor"]))


@pytest.mark.parametrize("engine", ["snowman", pytest.param("fallback", marks=pytest.mark.slow)])
@pytest.mark.timeout(600)
def test_four_validators_poll_agree_and_survive_a_crash(tmp_path, engine):
    net = LocalTestnet(tmp_path / "tn", 4, extra=("--consensus", engine))
    try:
        all4 = range(4)
        h1 = net.wait_tx(0, net.submit_links(0, "alpha", 0), 60)
        net.wait_height(all4, h1 + 1, 30)
        net.assert_agree(all4, h1 + 1)
        genesis = json.loads((net.home / "genesis.json").read_text())
        assert genesis["params"]["consensus"] == {"engine": engine}
        if engine == "snowman":
            cert = certificate_at(net, 1, h1)
            assert cert.round == ACCEPT_ROUND
            vset = ValidatorSet.create(
                {bytes.fromhex(v["public_key"]): v["power"] for v in genesis["validators"]}
            )
            verify_certificate(cert, vset, genesis["chain_id"], height=h1)

        net.kill(3)
        h2 = net.wait_tx(1, net.submit_links(1, "beta", 1), 60)
        net.wait_height(range(3), h2 + 1, 30)
        net.assert_agree(range(3), h2 + 1)

        net.restart(3)
        top = max(net.height(k) for k in range(3))
        net.wait_height(all4, top + 1, 90)
        net.assert_agree(all4, top + 1)
    finally:
        net.stop()
