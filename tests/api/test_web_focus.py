"""Personal focus in a real headless Chromium (``static/light/focus.js``,
``static/light/links.js``, ``static/light/gpu.js``).

The browser's tri-kernel is compared with the engine's ``personalized_focus``
(float64, numpy backend) on random graphs, on the CPU and with the series on
WebGPU (Chromium's SwiftShader adapter); its neighbourhood walk runs against
the node's real app over a real chain on loopback, with the Python light
client's pages and proofs as the reference; a node that rewrites a proven link
is caught.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.cid import cid_from_bytes
from focusflow.core.errors import FocusflowError
from focusflow.focus.params import make_params
from focusflow.focus.personal import personalized_focus
from focusflow.light.answers import verify_links
from focusflow.light.client import LightClient, Node
from focusflow.light.store import LightStore
from focusflow.testing.chains import particle
from focusflow.testing.lightnode import build_chain, node_app, serve
from tests.api.conftest import module_page

UI_TIMEOUT_MS = 20_000


class SlowStatus:
    """ASGI wrapper: ``GET /v1/status`` answered ``lie["status_delay"]`` seconds late."""

    def __init__(self, app: Any, lie: dict[str, Any]) -> None:
        self.app = app
        self.lie = lie

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        delay = self.lie.get("status_delay", 0)
        if scope["type"] == "http" and scope["path"] == "/v1/status" and delay:
            await asyncio.sleep(delay)
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """A chain of 8 blocks (a hub linking to p1..p8, p_h -> p_h+1) behind the
    node's real app; ``lie["on"]`` makes the app rewrite links pages."""
    chain = build_chain(tmp_path_factory.mktemp("focus") / "c", 8)
    lie: dict[str, Any] = {"on": None, "status_delay": 0}

    def rewrite(path: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        if lie["on"] is None or "/proofs/links/" not in path or not doc.get("links"):
            return None
        changed = copy.deepcopy(doc)
        if lie["on"] == "other_target":
            changed["links"][0]["to"] = cid_from_bytes(particle("nowhere"))
        elif lie["on"] == "other_block":
            changed["block_hash"] = "00" * 32
        return changed

    url, stop = serve(SlowStatus(node_app(chain, rewrite), lie))
    try:
        yield chain, url, lie
    finally:
        stop()
        chain.close()


@pytest.fixture
def js(browser, served):
    """A page of the node's origin with the light modules as ``window.L``."""
    _, url, _ = served
    with module_page(browser, url, UI_TIMEOUT_MS) as page:
        yield page


def random_graph(seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = (rng.random(m) ** 2 * n).astype(np.int64)  # skewed: hubs and dangling particles
    dst = rng.integers(0, n, m)
    w = rng.random(m) + 0.05
    return src, dst, w


def reference(n: int, src, dst, w, context: list[int], **params: Any) -> np.ndarray:
    keep = src != dst
    g = sp.csr_matrix((w[keep], (src[keep], dst[keep])), shape=(n, n))
    blend = {"weights": tuple(params.pop("weights"))} if "weights" in params else {}
    fp = make_params(None, tol=1e-12, **blend, **params)
    return personalized_focus(g, np.asarray(context), params=fp, backend="numpy").focus


JS_FOCUS = """async (c) => {
  const g = L.focus.prepareGraph(c.n, c.src, c.dst, c.w);
  const r = await L.focus.personalFocus(g, c.context, { tol: 1e-12, ...c.params });
  return { focus: Array.from(r.focus), converged: r.converged, iterations: r.iterations };
}"""


@pytest.mark.parametrize(
    ("seed", "n", "m", "context", "params"),
    [
        (1, 200, 800, [0], {}),
        (2, 300, 600, [5, 5, 17], {}),  # repeats weigh more
        (3, 150, 900, [1], {"alpha": 0.6, "mu": 0.3, "tau": 2.5, "weights": [0.4, 0.4, 0.2]}),
        (4, 120, 500, [2], {"weights": [1.0, 0.0, 0.0]}),  # personalized PageRank alone
        (5, 400, 300, [7], {"anderson": 0}),  # mostly unlinked particles; the plain iteration
    ],
)
def test_the_browsers_personal_focus_is_the_engines(js, seed, n, m, context, params):
    src, dst, w = random_graph(seed, n, m)
    want = reference(n, src, dst, w, context, **dict(params))
    case = {"n": n, "src": src.tolist(), "dst": dst.tolist(), "w": w.tolist()}
    got = js.evaluate(JS_FOCUS, {**case, "context": context, "params": params})
    assert got["converged"]
    assert np.abs(np.asarray(got["focus"]) - want).sum() < 1e-9


def test_the_series_is_only_as_accurate_as_each_step_needs(js):
    """Far from the equilibrium a step's series is loose, near it the series
    is applied to the change since its last application (the engine's rules):
    fewer than half the passes of the whole series every step, and the answer
    is still the accurate map's fixed point."""
    n, m = 2000, 8000
    src, dst, w = random_graph(6, n, m)
    want = reference(n, src, dst, w, [3])
    got = js.evaluate(
        """async (c) => {
          const g = L.focus.prepareGraph(c.n, c.src, c.dst, c.w);
          const r = await L.focus.personalFocus(g, [3], { tol: 1e-8 });
          return { focus: Array.from(r.focus), converged: r.converged,
                   iterations: r.iterations, passes: r.passes, terms: r.terms };
        }""",
        {"n": n, "src": src.tolist(), "dst": dst.tolist(), "w": w.tolist()},
    )
    assert got["converged"]
    whole = got["iterations"] * (got["terms"] - 1)
    assert 0 < got["passes"] < whole / 2, (got["passes"], whole)
    assert np.abs(np.asarray(got["focus"]) - want).sum() < 1e-7


def test_bad_graphs_and_parameters_are_refused_with_a_code(js):
    cases = [
        ("prepareGraph(0, [], [], [])", "1 to"),
        ("prepareGraph(3, [0], [5], [1])", "outside"),
        ("prepareGraph(3, [0, 1], [1], [1])", "one entry per link"),
        ("prepareGraph(3, [0], [1], [-1])", "weight"),
        ("prepareGraph(3, [0], [1], [NaN])", "weight"),
        ("personalFocus(prepareGraph(3, [0], [1], [1]), [])", "context is empty"),
        ("personalFocus(prepareGraph(3, [0], [1], [1]), [3])", "out of range"),
        ("personalFocus(prepareGraph(3, [0], [1], [1]), [0], { alpha: 1 })", "alpha"),
        (
            "personalFocus(prepareGraph(3, [0], [1], [1]), [0], { weights: [0, 0.5, 0.5] })",
            "lambda_d",
        ),
        ("personalFocus(prepareGraph(3, [0], [1], [1]), [0], { maxIter: 1e9 })", "maxIter"),
    ]
    for call, words in cases:
        got = js.evaluate(
            f"""async () => {{
            const {{ prepareGraph, personalFocus }} = L.focus;
            try {{ await {call}; return null; }}
            catch (err) {{ return [err.name, err.code, err.message]; }}
          }}"""
        )
        assert got is not None and got[:2] == ["FocusError", "invalid_parameter"], call
        assert words in got[2], (call, got)


def python_pages(url: str, chain, tmp_path, cid: str) -> set[tuple[str, str]]:
    """Every link of ``cid`` in both directions, as the Python light client proves them."""
    with Node(url) as node:
        client = LightClient(LightStore(tmp_path, chain.chain_id), node)
        client.trust_genesis(chain.validators_at(1))
        client.sync()
        found = set()
        for direction in ("out", "in"):
            page = client.links(cid, direction, 0, 100)
            found |= {(link["from"], link["to"]) for link in page.links}
        return found


JS_WALK = """async (a) => {
  const store = new L.store.MemoryStore(a.chainId);
  const client = new L.client.LightClient(store, new L.client.Node(""));
  await client.trustGenesis(null);
  const hood = await L.links.neighbourhood(client, a.cid, { hops: a.hops });
  const g = L.focus.prepareGraph(hood.n, hood.src, hood.dst, hood.w);
  const r = await L.focus.personalFocus(g, [0], { tol: 1e-12 });
  return { ...hood, focus: Array.from(r.focus) };
}"""


def test_a_neighbourhood_walked_with_proofs_and_its_focus(js, served, tmp_path):
    chain, url, lie = served
    lie["on"] = None
    hub = cid_from_bytes(particle("hub"))
    got = js.evaluate(JS_WALK, {"chainId": chain.chain_id, "cid": hub, "hops": 1})
    edges = {(got["cids"][s], got["cids"][d]) for s, d in zip(got["src"], got["dst"], strict=True)}
    assert edges == python_pages(url, chain, tmp_path, hub)
    assert len(edges) == 8 and got["cut"] is False and got["unproven"] == 0
    assert got["heights"] == [chain.height]
    # two hops add the chain p1 -> p2 -> ... -> p9
    two = js.evaluate(JS_WALK, {"chainId": chain.chain_id, "cid": hub, "hops": 2})
    assert two["links"] == 16 and two["n"] == 10
    n, src, dst = two["n"], np.asarray(two["src"]), np.asarray(two["dst"])
    want = reference(n, src, dst, np.ones(len(src)), [0])
    assert np.abs(np.asarray(two["focus"]) - want).sum() < 1e-9


@pytest.mark.parametrize(
    ("lie_name", "check"), [("other_target", "wrong_value"), ("other_block", "wrong_value")]
)
def test_a_node_rewriting_a_proven_link_is_caught(js, served, lie_name, check):
    chain, _, lie = served
    lie["on"] = lie_name
    try:
        got = js.evaluate(
            """async (a) => {
            const store = new L.store.MemoryStore(a.chainId);
            const client = new L.client.LightClient(store, new L.client.Node(""));
            await client.trustGenesis(null);
            try { await L.links.neighbourhood(client, a.cid); return null; }
            catch (err) { return [err.name, err.check, err.message]; }
          }""",
            {"chainId": chain.chain_id, "cid": cid_from_bytes(particle("hub"))},
        )
    finally:
        lie["on"] = None
    assert got is not None and got[0] == "VerifyError" and got[1] == check, got


def test_a_walk_stops_at_its_bounds(js, served):
    chain, _, lie = served
    lie["on"] = None
    got = js.evaluate(
        """async (a) => {
        const store = new L.store.MemoryStore(a.chainId);
            const client = new L.client.LightClient(store, new L.client.Node(""));
        await client.trustGenesis(null);
        const few = await L.links.neighbourhood(client, a.cid, { hops: 2, maxLinks: 3 });
        // p8: one link out, two in; the budget ends inside the walk's last page
        const last = await L.links.neighbourhood(client, a.p8, { hops: 1, maxLinks: 2 });
        let bad = null;
        try { await L.links.neighbourhood(client, "notacid"); } catch (err) { bad = err.check; }
        let hops = null;
        try { await L.links.neighbourhood(client, a.cid, { hops: 9 }); }
        catch (err) { hops = err.check; }
        return { links: few.links, cut: few.cut, bad, hops, last: [last.links, last.cut] };
      }""",
        {
            "chainId": chain.chain_id,
            "cid": cid_from_bytes(particle("hub")),
            "p8": cid_from_bytes(particle("p8")),
        },
    )
    assert got == {
        "links": 3,
        "cut": True,
        "bad": "malformed",
        "hops": "malformed",
        "last": [2, True],
    }


def test_the_page_computes_personal_focus_beside_the_verified_global_values(
    browser, served, tmp_path
):
    """Verified mode's light panel: a particle's 1-hop neighbourhood fetched with
    proofs, its personal focus computed in the page (the engine's answer on the
    same graph), each listed particle's committed focus verified beside it; a
    node rewriting a link is listed as a problem and nothing is shown."""
    chain, url, lie = served
    lie["on"] = None
    hub = cid_from_bytes(particle("hub"))
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/?verified=1", wait_until="domcontentloaded")
        page.wait_for_selector('#light-status[data-state="synced"]')
        page.fill("#light-focus-cid", hub)
        page.click("#light-focus-form button")
        page.wait_for_selector('#light-focus-status[data-state="done"]')
        assert page.get_attribute("#light-focus-status", "data-links") == "8"
        items = page.locator("#light-focus li")
        assert items.count() == 9
        shown = {
            items.nth(i).get_attribute("data-cid"): float(items.nth(i).get_attribute("data-focus"))
            for i in range(9)
        }
        names = [hub] + [cid_from_bytes(particle(f"p{h}")) for h in range(1, 9)]
        src, dst = np.zeros(8, dtype=np.int64), np.arange(1, 9)
        want = reference(9, src, dst, np.ones(8), [0])
        assert sum(abs(shown[c] - want[i]) for i, c in enumerate(names)) < 1e-5
        assert items.nth(0).get_attribute("data-cid") == hub
        with Node(url) as node:
            client = LightClient(LightStore(tmp_path, chain.chain_id), node)
            client.trust_genesis(chain.validators_at(1))
            client.sync()
            for i in range(9):
                c = items.nth(i).get_attribute("data-cid")
                assert (
                    int(items.nth(i).get_attribute("data-global-q")) == client.particle(c).focus_q
                )

        lie["on"] = "other_target"
        page.click("#light-focus-form button")
        page.wait_for_selector('#light-focus-status[data-state="failed"][data-check="wrong_value"]')
        assert items.count() == 0
        page.wait_for_selector('#verify-problems li[data-check="wrong_value"]')
    finally:
        lie["on"] = None
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


#: Chromium's WebGPU on SwiftShader, its software adapter (no GPU on CI machines).
WEBGPU_FLAGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
]


@pytest.fixture(scope="module")
def gpu_browser(chromium_path, playwright_api):
    browser = playwright_api.chromium.launch(
        executable_path=chromium_path, headless=True, args=WEBGPU_FLAGS, timeout=60_000
    )
    yield browser
    browser.close()


@pytest.fixture
def gpu_js(gpu_browser, served):
    _, url, _ = served
    with module_page(gpu_browser, url, UI_TIMEOUT_MS) as page:
        has = """async () => {
          const gpu = await L.gpu.gpuDevice();
          gpu?.device.destroy();
          return !!gpu;
        }"""
        if not page.evaluate(has):
            pytest.fail("Chromium started with WebGPU on SwiftShader has no adapter")
        yield page


@pytest.mark.parametrize(("seed", "n", "m"), [(11, 200, 800), (12, 2000, 9000), (13, 300, 250)])
def test_the_webgpu_light_mode_reaches_the_engines_answer(gpu_js, seed, n, m):
    """The series on WebGPU (float32) inside the float64 iteration, at the light
    mode's looser tolerance: within 5e-5 in L1 of the engine's tight answer, on
    the software adapter, which it names as such."""
    src, dst, w = random_graph(seed, n, m)
    want = reference(n, src, dst, w, [0])
    got = gpu_js.evaluate(
        """async (c) => {
        const gpu = await L.gpu.gpuDevice();
        const g = L.focus.prepareGraph(c.n, c.src, c.dst, c.w);
        const r = await L.focus.personalFocus(g, [0], {}, { gpu });
        gpu.device.destroy(); // the GPU process is the page's too: leave it nothing to do
        return { focus: Array.from(r.focus), path: r.path, converged: r.converged,
                 passes: r.passes, software: gpu.software };
      }""",
        {"n": n, "src": src.tolist(), "dst": dst.tolist(), "w": w.tolist()},
    )
    assert got["path"] == "webgpu" and got["converged"] and got["passes"] > 0
    assert got["software"] is True
    assert np.abs(np.asarray(got["focus"]) - want).sum() < 5e-5


def test_the_page_takes_the_software_adapter_only_when_asked(gpu_browser, served):
    _, url, lie = served
    lie["on"] = None
    hub = cid_from_bytes(particle("hub"))
    context = gpu_browser.new_context()
    try:
        paths = {}
        for query in ("", "&gpu=1"):
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(f"{url}/?verified=1{query}", wait_until="domcontentloaded")
            page.wait_for_selector('#light-status[data-state="synced"]')
            page.fill("#light-focus-cid", hub)
            page.click("#light-focus-form button")
            page.wait_for_selector('#light-focus-status[data-state="done"]')
            paths[query] = page.get_attribute("#light-focus-status", "data-path")
            assert page.locator("#light-focus li").first.get_attribute("data-cid") == hub
            page.close()
    finally:
        context.close()
    assert paths == {"": "cpu", "&gpu=1": "webgpu"}


def test_the_light_client_starts_when_the_chain_id_arrives_late(browser, served):
    """The page's status answer comes 3 s late, no block comes after it, and one of
    the page's first reads fails (this in-process node has no consensus state for
    /v1/validators): the light panel, loaded before the chain id was known, still
    syncs, rather than waiting for a block that never comes."""
    _, url, lie = served
    lie["status_delay"] = 3
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(f"{url}/?verified=1", wait_until="domcontentloaded")
        page.wait_for_selector('#light-status[data-state="synced"]')
    finally:
        lie["status_delay"] = 0
        context.close()


HOSTILE_VALUES: list[Any] = [None, 0, -1, 2**53 + 1, 1.5, "", "zz", [], {}, True, "00" * 33]


def mutated(doc: Any, rng: random.Random) -> Any:
    """``doc`` with one to three of its values replaced, hex digits changed,
    list items dropped or repeated, or keys removed: what a hostile node may send."""
    d = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        parent, key = _random_slot(d, rng)
        value = parent[key]
        r = rng.random()
        if isinstance(value, str) and value and r < 0.4:
            i = rng.randrange(len(value))
            parent[key] = value[:i] + rng.choice("0f9aZ") + value[i + 1 :]
        elif isinstance(value, list) and value and r < 0.5:
            if rng.random() < 0.5:
                del value[rng.randrange(len(value))]
            else:
                value.append(copy.deepcopy(rng.choice(value)))
        elif isinstance(parent, dict) and r < 0.6:
            del parent[key]
        else:
            parent[key] = rng.choice(
                [None, 0, -1, 2**53 + 1, 1.5, "", "zz", [], {}, True, "00" * 33]
            )
    return d


def _random_slot(doc: Any, rng: random.Random) -> tuple[Any, Any]:
    """A (container, key) pair somewhere in ``doc``, deeper ones as likely as shallow."""
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            slots.append((node, k))
            if isinstance(v, dict | list):
                walk(v)

    walk(doc)
    return rng.choice(slots)


def test_hostile_links_pages_get_the_python_clients_verdict(js, served, tmp_path):
    """300 seeded mutations of a true links page: the browser accepts exactly the
    pages the Python light client accepts, with the same links, and refuses every
    other one with a VerifyError, never another exception."""
    chain, url, lie = served
    lie["on"] = None
    hub = cid_from_bytes(particle("hub"))
    with Node(url) as node:
        client = LightClient(LightStore(tmp_path, chain.chain_id), node)
        client.trust_genesis(chain.validators_at(1))
        block = client.sync()
        doc = httpx.get(f"{url}/v1/light/proofs/links/{hub}", params={"limit": 5}).json()
        rng = random.Random(11)
        cases = [doc] + [mutated(doc, rng) for _ in range(300)]
        want = []
        for case in cases:
            try:
                page = verify_links(case, block, hub, "out")
                want.append([*sorted((x["from"], x["to"]) for x in page.links), page.unproven])
            except FocusflowError:
                want.append(None)
    got = js.evaluate(
        """async (a) => {
        const store = new L.store.MemoryStore(a.chainId);
        const client = new L.client.LightClient(store, new L.client.Node(""));
        await client.trustGenesis(null);
        const block = await client.sync(a.height);
        const out = [];
        for (const doc of a.cases) {
          try {
            const page = await L.links.verifyLinks(doc, block, a.cid, "out");
            out.push([...page.links.map((x) => [x.from, x.to]).sort(), page.unproven]);
          } catch (err) {
            out.push(err instanceof L.V.VerifyError ? null : `${err.name}: ${err.message}`);
          }
        }
        return out;
      }""",
        {"chainId": chain.chain_id, "height": block.height, "cid": hub, "cases": cases},
    )
    assert [g for g in got if isinstance(g, str)] == []  # no exception other than VerifyError
    py = [None if w is None else [list(x) for x in w[:-1]] + [w[-1]] for w in want]
    assert got == py
    assert got[0] is not None and sum(g is None for g in got) > 150  # both verdicts reached


def test_a_links_page_over_its_bound_is_not_read(js, served):
    """A page of more links than the route serves (100) is refused before any of
    its proofs is checked: a node cannot make the browser verify a page of any size."""
    chain, url, lie = served
    lie["on"] = None
    hub = cid_from_bytes(particle("hub"))
    doc = httpx.get(f"{url}/v1/light/proofs/links/{hub}", params={"limit": 1}).json()
    doc["links"] = doc["links"] * 101
    got = js.evaluate(
        """async (a) => {
        const store = new L.store.MemoryStore(a.chainId);
        const client = new L.client.LightClient(store, new L.client.Node(""));
        await client.trustGenesis(null);
        const block = await client.sync(a.doc.height);
        try { await L.links.verifyLinks(a.doc, block, a.cid, "out"); return null; }
        catch (err) { return [err.name, err.check, err.message]; }
      }""",
        {"chainId": chain.chain_id, "doc": doc, "cid": hub},
    )
    assert got is not None and got[:2] == ["VerifyError", "malformed"] and "at most 100" in got[2]
