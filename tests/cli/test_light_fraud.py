"""``focusflow light sample`` and bad-encoding fraud proofs.

The chain's block 1 carries a badly encoded square (the DA layer's test switch);
the node holds the fraud proof for it. The light client checks that proof
against the data root of header 1 it verified itself, and refuses the block
(exit 3, ``bad_encoding``); a proof that does not verify is no evidence and
sampling goes on.
"""

from __future__ import annotations

import pytest

from focusflow.api.state import state_of
from focusflow.chain.da_commit import FraudRecord, block_square
from focusflow.da import find_bad_encoding
from focusflow.node.faults import bad_encoding
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx
from focusflow.testing.lightnode import _now, node_app, serve
from tests.cli.helpers import run_cli


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("fraud")
    chain = new_chain(root / "c", genesis(focus={"mode": "diffusion"}))
    with bad_encoding():
        chain.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c")))], time_ms=_now())
        square = block_square(chain.block_record(1).block.txs)
    record = chain.block_record(1)
    proof = find_bad_encoding(square)
    assert proof is not None
    gen = root / "genesis.json"
    genesis(focus={"mode": "diffusion"}).save(gen)
    yield chain, square, FraudRecord(record.block.header, record.commit, proof), gen
    chain.close()


def _node(chain, square, rewrite=None):
    """The node's app over ``chain``, its DA store holding block 1's bad square (a
    node rebuilding it from the transactions would encode it correctly)."""
    app = node_app(chain, rewrite)
    runtime = state_of(app if rewrite is None else app.app).node
    runtime.da.remember(1, square)
    return app, runtime


def _sample(capsys, url, home):
    return run_cli(capsys, "light", "sample", 1, "--node", url, "--samples", 16,
                   "--home", home, "--json")  # fmt: skip


def test_a_verified_fraud_proof_refuses_the_block(bad, tmp_path, capsys):
    chain, square, fraud, gen = bad
    app, runtime = _node(chain, square)
    url, stop = serve(app)
    try:
        home = tmp_path / "light"
        r = run_cli(capsys, "light", "sync", "--node", url, "--genesis", gen, "--home", home)
        assert r.code == 0, r
        assert _sample(capsys, url, home).code == 0  # no proof held yet: shares verify
        runtime.da.record_fraud(fraud)
        r = _sample(capsys, url, home)
        lines = r.err.strip().splitlines()
        assert r.code == 3 and len(lines) == 1 and lines[0].endswith("[bad_encoding]"), r
    finally:
        stop()


def test_a_fraud_proof_that_does_not_verify_is_no_evidence(bad, tmp_path, capsys):
    chain, square, fraud, gen = bad

    def forge(path, doc):
        if path.endswith("/fraud"):
            proof = dict(doc["proof"])
            proof["axis_root"] = "00" * (len(proof["axis_root"]) // 2)
            return {**doc, "proof": proof}
        return None

    app, runtime = _node(chain, square, forge)
    runtime.da.record_fraud(fraud)
    url, stop = serve(app)
    try:
        home = tmp_path / "light"
        assert run_cli(capsys, "light", "sync", "--node", url, "--genesis", gen,
                       "--home", home).code == 0  # fmt: skip
        r = _sample(capsys, url, home)
        assert r.code == 0 and r.json()["available"] is True, r
    finally:
        stop()
