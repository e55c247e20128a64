"""A network of rollups on loopback: a hub and rollup chains as real processes
(``focusflow testnet --rollups``), relayers between them, every wait bounded.

What users rely on: every node says its place (``GET /v1/rollup``); a link sent
to any node of the network lands on the rollup that owns it, whether the user
signs for that chain (nodes forward it) or lets the CLI pick; a rollup refuses
a link of another bucket with ``wrong_bucket`` naming the owner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from focusflow.core.cid import cid_from_bytes, cid_of_text, cid_to_bytes
from focusflow.focus.buckets import link_bucket
from focusflow.light.client import LightClient, Node, genesis_trust
from focusflow.light.store import LightStore
from focusflow.testing.process import SOURCE, node_env
from focusflow.testing.rollups import RollupNet
from tests.api.conftest import browser, chromium_path, playwright_api  # noqa: F401 (fixtures)

UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    # A rollup silent 3 s is held stale (10 merge intervals by default).
    extra = ("--stale-after-ms", "3000")
    net = RollupNet(tmp_path_factory.mktemp("rollups") / "net", rollups=2, extra=extra)
    yield net
    net.stop()


def texts_of_bucket(bucket: int, buckets: int, tag: str) -> tuple[str, str]:
    """Two texts whose particles make a link of ``bucket``."""
    for i in range(1000):
        src = cid_to_bytes(cid_of_text(f"{tag}-src-{i}"))
        if link_bucket([src], buckets) == bucket:
            return f"{tag}-src-{i}", f"{tag}-dst-{i}"
    raise AssertionError("no source in the bucket")


def link_of_bucket(bucket: int, buckets: int, tag: str) -> list[bytes]:
    return [cid_to_bytes(cid_of_text(t)) for t in texts_of_bucket(bucket, buckets, tag)]


def test_every_node_says_its_place_and_knows_the_others(net):
    status, hub = net.get(net.hub[0], "/v1/rollup")
    assert status == 200 and hub["role"] == "hub" and hub["bucket"] is None
    assert hub["buckets"] == 2 and hub["rule"] == "source"
    assert [r["chain_id"] for r in hub["rollups"]] == net.chain_ids
    assert all(r["apis"] for r in hub["rollups"])
    for b, apis in enumerate(net.rollups):
        status, doc = net.get(apis[0], "/v1/rollup")
        assert status == 200 and (doc["role"], doc["bucket"], doc["buckets"]) == ("rollup", b, 2)
        assert doc["hub"]["apis"] == net.hub


def test_a_rollup_refuses_another_buckets_link_and_a_node_forwards_a_foreign_tx(net):
    theirs = link_of_bucket(1, 2, "refused")
    nonce = net.nonce(net.rollups[0][0], net.dev)
    r = net.submit(net.rollups[0][0], net.chain_ids[0], [theirs], nonce)
    assert r.status_code == 202, r.text
    receipt = net.wait_tx(net.rollups[0][0], r.json()["hash"], 30)
    assert receipt["code"] == "wrong_bucket"
    assert f"belongs to bucket 1 (chain {net.chain_ids[1]})" in receipt["log"]
    # Signed for rollup 1 but sent to the hub: the hub's node forwards it.
    nonce1 = net.nonce(net.rollups[1][0], net.dev)
    r = net.submit(net.hub[0], net.chain_ids[1], [theirs], nonce1)
    assert r.status_code == 202, r.text
    assert r.headers["x-forwarded-to"] == net.rollups[1][0]
    assert net.wait_tx(net.rollups[1][0], r.json()["hash"], 30)["code"] == "ok"


def test_the_cli_routes_each_link_to_its_owner(net):
    a = texts_of_bucket(0, 2, "cli")
    b = texts_of_bucket(1, 2, "cli")
    home = net.home / "hub" / "v0"
    args = [
        sys.executable, "-m", "focusflow", "tx", "link", "--text", *a, *b,
        "--home", str(home), "--node", net.hub[0], "--wait", "--json",
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=node_env(SOURCE))
    assert out.returncode == 0, out.stderr + out.stdout
    txs = json.loads(out.stdout)["txs"]
    assert sorted(doc["chain_id"] for doc in txs) == sorted(net.chain_ids)
    assert all(doc["status"] == "committed" and doc["code"] == "ok" for doc in txs)


def wait_for(what: str, check, timeout: float, net: RollupNet):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout}s\n{net.logs()}")


def global_value(net: RollupNet, cid: str) -> float | None:
    r = httpx.get(f"{net.hub[0]}/v1/global/particles/{cid}", timeout=10)
    return r.json()["focus"] if r.status_code == 200 else None


def test_relayers_carry_ranks_and_the_hub_publishes_the_global_focus(net, tmp_path):
    a = link_of_bucket(0, 2, "global")
    b = link_of_bucket(1, 2, "global")
    for bucket, link in ((0, a), (1, b)):
        api = net.rollups[bucket][0]
        r = net.submit(api, net.chain_ids[bucket], [link], net.nonce(api, net.dev))
        assert r.status_code == 202, r.text
        assert net.wait_tx(api, r.json()["hash"], 30)["code"] == "ok"
    targets = [cid_from_bytes(a[1]), cid_from_bytes(b[1])]
    wait_for(
        "both links in the global snapshot",
        lambda: all(global_value(net, c) for c in targets),
        120,
        net,
    )
    status = httpx.get(f"{net.hub[0]}/v1/global/status", timeout=10).json()
    assert status["snapshot"]["round"] >= 1 and status["age_ms"] is not None
    assert [r["bucket"] for r in status["rollups"]] == [0, 1]
    assert all(r["height"] > 0 and r["last_rank"] for r in status["rollups"])
    top = httpx.get(f"{net.hub[0]}/v1/global/top", params={"k": 5}, timeout=10).json()
    assert abs(sum(row["focus"] for row in top["rows"])) <= 1.0 + 1e-9
    assert len(top["rows"]) == min(5, status["snapshot"]["particles"])
    # A light client that trusts only the hub's genesis checks a particle's
    # global focus down to the hub's state root.
    chain_id, genesis_set = genesis_trust(net.home / "hub" / "v0" / "genesis.json")
    with Node(net.hub[0]) as node:
        client = LightClient(LightStore(tmp_path / "light", chain_id), node)
        client.trust_genesis(genesis_set)
        answer = client.global_particle(targets[0])
    assert answer.focus_q > 0 and answer.particle == targets[0]
    # The CLI asks any node's hub.
    out = subprocess.run(
        [sys.executable, "-m", "focusflow", "query", "top", "--global", "--json",
         "--node", net.rollups[1][0], "-k", "3"],
        capture_output=True, text=True, timeout=60, env=node_env(SOURCE),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["rows"]) == 3


def test_the_hubs_page_shows_the_rollups_and_the_snapshots_age(browser, net, tmp_path):  # noqa: F811
    """In headless Chromium: the hub's network panel lists the rollups with the
    heights the hub verified and the global snapshot's age; a rollup's names its
    bucket and hub (a chain on its own hides it: tests/api/test_web_page.py)."""
    page = browser.new_page()
    summary = "document.querySelector('#network-summary').textContent"
    try:
        page.goto(net.hub[0] + "/")
        page.wait_for_selector("#network:not([hidden])", timeout=UI_TIMEOUT_MS)
        page.wait_for_function(f"{summary}.startsWith('global snapshot')", timeout=UI_TIMEOUT_MS)
        rows = page.locator("#network-rollups tr")
        assert rows.count() == 2
        assert [rows.nth(i).get_attribute("data-bucket") for i in range(2)] == ["0", "1"]
        heights = [int(rows.nth(i).locator(".height").text_content() or "0") for i in range(2)]
        assert all(h > 0 for h in heights)
        assert (page.locator("#network-age").text_content() or "").endswith(" s")
        page.screenshot(path=str(tmp_path / "network.png"))
        page.goto(net.rollups[1][0] + "/")
        page.wait_for_function(f"{summary}.startsWith('rollup of bucket 1')", timeout=UI_TIMEOUT_MS)
        assert page.locator("#network-table").is_hidden()
    finally:
        page.close()


def test_a_halted_rollup_is_held_stale_and_the_others_go_on(net):
    """Rollup 1's validator stops (SIGSTOP: its chain halts, as partitioned).
    The hub keeps merging rollup 0's ranks; rollup 1's values are held at the
    last proven ones and listed stale; it returns to the snapshot when it resumes."""
    api1 = net.rollups[1][0]

    def status():  # type: ignore[no-untyped-def]
        return httpx.get(f"{net.hub[0]}/v1/global/status", timeout=10).json()

    wait_for("a first snapshot", lambda: status()["snapshot"], 120, net)
    net.pause(api1)
    try:
        wait_for("bucket 1 held stale", lambda: 1 in status()["snapshot"]["stale"], 60, net)
        before = status()["snapshot"]["round"]
        link = link_of_bucket(0, 2, "while-halted")
        api0 = net.rollups[0][0]
        r = net.submit(api0, net.chain_ids[0], [link], net.nonce(api0, net.dev))
        assert net.wait_tx(api0, r.json()["hash"], 30)["code"] == "ok"
        cid = cid_from_bytes(link[1])
        wait_for("rollup 0's new link in the snapshot", lambda: global_value(net, cid), 60, net)
        after = status()["snapshot"]
        assert after["round"] > before and 1 in after["stale"] and 0 not in after["stale"]
    finally:
        net.resume(api1)
    wait_for("bucket 1 back", lambda: 1 not in status()["snapshot"]["stale"], 90, net)
