"""The node's web page in a real headless Chromium against a real devnet process.

The test starts ``focusflow devnet`` on a free loopback port, opens ``/`` in
Debian's Chromium (driven by Playwright through the system browser: nothing is
downloaded), submits signed link transactions through the REST API and checks
that the page, without a reload, shows the new top particle and the height, that
search, the link graph and error messages work, and that the page reconnects
when the node restarts. A screenshot goes to the test's ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore

SRC = Path(__file__).resolve().parents[2] / "src"
BLOCK_TIME = "0.2s"
START_TIMEOUT = 60.0  # seconds for a devnet to answer its first /v1/status
UI_TIMEOUT_MS = 20_000  # bound of every wait on the page
FEE = 10_000

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """A Chromium on this machine: $CHROMIUM, then the usual names on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).is_file():
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    """JSON in, JSON out; an API error raises HTTPError with its JSON body readable."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


class Devnet:
    """One ``focusflow devnet`` process (restartable on the same home and port)."""

    def __init__(self, home: Path, port: int, log: Path) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        paths = [str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "focusflow", "devnet",
                "--home", str(self.home),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--block-time", BLOCK_TIME,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"devnet exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http("GET", f"{self.url}/v1/status", timeout=2)["height"] >= 1:
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"devnet did not answer in {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"devnet ignored SIGTERM for 20 s:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def status(self) -> dict:
        return http("GET", f"{self.url}/v1/status")

    def dev_key(self) -> KeyPair:
        return Keystore(self.home / "keys").load("dev")

    def link(self, pairs: list[tuple[str, str]], timeout: float = 30.0) -> dict:
        """Link CID pairs in one transaction from the dev key; the committed tx answer."""
        key = self.dev_key()
        nonce = http("GET", f"{self.url}/v1/accounts/{key.address}")["nonce"]
        msg = Msg("link", {"links": [[cid_to_bytes(a), cid_to_bytes(b)] for a, b in pairs]})
        tx = make_tx(key, self.status()["chain_id"], nonce, FEE, [msg])
        tx_hash = http("POST", f"{self.url}/v1/txs", {"tx": tx.encoded.hex()})["hash"]
        assert tx_hash == tx.hash.hex()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = http("GET", f"{self.url}/v1/txs/{tx_hash}")
            if got["status"] == "committed":
                assert got["code"] == "ok", got
                return got
            time.sleep(0.1)
        raise AssertionError(f"tx {tx_hash} not committed in {timeout} s:\n{self.log()}")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        if os.geteuid() == 0:
            pytest.fail("no Chromium found; as root this test must run: apt-get install chromium")
        reason = "no Chromium found (install Debian's chromium package, or set $CHROMIUM)"
        print(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    base = tmp_path_factory.mktemp("devnet")
    node = Devnet(base / "home", free_port(), base / "devnet.log")
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            # --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root)
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            timeout=60_000,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, devnet):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{devnet.url}/", wait_until="domcontentloaded")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def height_on(page) -> int:
    text = page.text_content("#height") or ""
    return int(text) if text.isdigit() else -1


def test_page_shows_new_top_particle_and_height_live(page, devnet, tmp_path):
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function("/^\\d+$/.test(document.querySelector('#height').textContent)")
    assert page.text_content("#chain-id") == devnet.status()["chain_id"]
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    # the height follows the blocks without a reload
    h0 = height_on(page)
    page.wait_for_function(f"Number(document.querySelector('#height').textContent) > {h0}")

    # a new particle that everyone links to becomes the top one
    tag = f"web-test-{os.getpid()}-{time.time_ns()}"
    hub = cid_of_text(f"{tag} hub")
    spokes = [cid_of_text(f"{tag} spoke {i}") for i in range(5)]
    committed = devnet.link([(s, hub) for s in spokes])
    page.wait_for_selector(f'#top-list li:first-child[data-cid="{hub}"]')
    page.wait_for_function(
        f"Number(document.querySelector('#height').textContent) >= {committed['height']}"
    )
    assert devnet.status()["height"] >= height_on(page) >= committed["height"]
    assert page.locator(f'#blocks tr[data-height="{committed["height"]}"]').count() == 1
    assert page.evaluate("window.notReloaded === true")

    # search by text opens the hub and its links as a graph; a click opens a neighbour
    page.fill("#search", f"{tag} hub")
    page.click("#search-go")
    page.wait_for_selector(f'#particle[data-cid="{hub}"] #particle-focus')
    assert page.text_content("#particle-rank") == "1"
    assert page.text_content("#particle-links-in") == "5"
    page.wait_for_function("document.querySelectorAll('#graph .node').length === 6")
    page.wait_for_timeout(1000)  # let the layout settle for the picture
    shot = tmp_path / "web-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    page.locator(f'#graph .node[data-cid="{spokes[0]}"]').click()
    page.wait_for_selector(f'#particle[data-cid="{spokes[0]}"] #particle-focus')
    page.wait_for_function("document.querySelectorAll('#graph .node').length === 2")

    # an API error is shown readably, with its code
    page.select_option("#search-mode", "cid")
    page.fill("#search", "not-a-cid")
    page.click("#search-go")
    page.wait_for_selector("#error:not([hidden])")
    assert page.get_attribute("#error", "data-code") == "invalid_cid"
    assert "not-a-cid" in page.text_content("#error-text")


def test_page_reconnects_after_node_restart(page, devnet):
    page.wait_for_selector('#live[data-state="open"]')
    devnet.stop()
    page.wait_for_selector('#live[data-state="down"]')
    h0 = height_on(page)
    devnet.start()
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function(f"Number(document.querySelector('#height').textContent) > {h0}")
