"""The web page's verified mode: what its checks cost in the browser.

Times ``static/verify.js`` in headless Chromium (Debian's, through Playwright:
nothing downloaded) on the vectors its tests use, made by the chain's Python
code: a header and its commit certificate signed by every validator of sets of
4 and 100 (real Ed25519; CometBFT's light-client benchmark uses 100), and one
particle's focus proof in a state of 100,000 particles (the particle list
chunk and the focus record against the state root, the focus chunk's RFC 6962
path to the focus root). Each figure is the mean of ``--runs`` checks after one
untimed check.

    .venv/bin/python bench/web_verify.py [--runs 20]
"""

from __future__ import annotations

import argparse
import sys

from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from focusflow.api.app import STATIC
from focusflow.core.cid import cid_from_bytes
from focusflow.core.encoding import encode
from focusflow.testing.web import (
    VERIFY_FOCUS,
    VERIFY_HEADER,
    VERIFY_PAGE,
    VerifiedChain,
    find_chromium,
    serve,
)

TIMED = """async (a) => {
  const f = %s;
  if (await f(a.args) !== "ok") return "refused";
  const t0 = performance.now();
  for (let i = 0; i < a.runs; i++) if (await f(a.args) !== "ok") return "refused";
  return (performance.now() - t0) / a.runs;
}"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium found (install Debian's chromium package, or set $CHROMIUM)")
    app = Starlette()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    with serve(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{url}/static/style.css")
        page.evaluate(VERIFY_PAGE)
        print(f"Chromium {browser.version}, {args.runs} runs each")
        chain = None
        for n in (4, 100):
            chain = VerifiedChain(powers=(10,) * n, n_particles=100_000)
            ms = page.evaluate(TIMED % VERIFY_HEADER, {"args": chain.answer(), "runs": args.runs})
            print(f"header + certificate, {n} validators: {ms:.2f} ms")
        index = 77_777
        proof = chain.particle_proof(index)
        focus = {
            "header": encode(chain.header.to_cbor()).hex(),
            "cid": cid_from_bytes(chain.cids[index]),
            "proof": proof,
        }
        ms = page.evaluate(TIMED % VERIFY_FOCUS, {"args": focus, "runs": args.runs})
        print(f"particle focus proof, 100,000 particles: {ms:.2f} ms")
        browser.close()


if __name__ == "__main__":
    main()
