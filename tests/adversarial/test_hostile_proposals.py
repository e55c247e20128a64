"""A validator proposing blocks that carry execution-plane attacks it never ran
itself, on real processes.

Four validators on loopback; validator 3 is replaced by a byzantine process
(tests/adversarial/byzantine_node.py, ``hostile_txs``) whose proposals carry an
Ethereum creation with initcode over EIP-3860's limit, or a WASM module with
the ABI's export names and a wrong signature followed by its instantiation.
The honest validators execute each such block to judge it; none may crash.
They refuse it (its roots do not match what the attack does) without a step of
their consensus failing, commit the next round's blocks, and agree on every
root; no attack transaction is committed. (A step that raises is logged and
the round times out, so a byzantine proposer alone does not halt the chain;
the same transaction in every proposer's pool did.)
"""

from __future__ import annotations

import httpx


def test_proposals_carrying_attacks_do_not_halt_or_fork_the_chain(net):
    net.survive(3, "hostile_txs", times=2, pause=2)
    log = (net.home / "v3" / "hostile.log").read_text().split()
    kinds, hashes = log[0::3], log[2::3]
    assert {"evm_initcode", "wasm_mistyped"} <= set(kinds)
    for k in net.honest():
        for h in hashes:
            r = httpx.get(f"{net.apis[k]}/v1/txs/{h}", timeout=5)
            assert r.status_code == 404, (k, h, r.status_code, r.text[:200])
        log_text = (net.home / f"v{k}" / "node.log").read_text(errors="replace")
        assert "consensus step failed" not in log_text, f"validator {k} failed a step"
        assert "prevote nil: proposal does not validate" in log_text
