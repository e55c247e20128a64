"""What ``focusflow light`` and ``focusflow da sample`` print, run as processes.

A real chain served by the node's app on loopback (focusflow.testing.lightnode);
each command runs as ``python -m focusflow ...`` in a subprocess, as a user runs
it. The human output must read as lines for people (no Python reprs such as
``None``, ``True``, ``{'from': ...}``); both sampling commands take the height
the same way (an argument; ``--height`` still works for ``light sample``, with a
warning); and both report what was sampled: distinct shares, at most the
square's, and the confidence of those.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.core.cid import cid_from_bytes
from focusflow.da.sampling import detection_probability
from focusflow.testing.chains import genesis, particle
from focusflow.testing.lightnode import build_chain, node_app, serve

ROOT = Path(__file__).resolve().parents[2]
HUB = cid_from_bytes(particle("hub"))
REPR = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|[{}\[\]']")


def focusflow(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A served chain and a light home synced against it; (node url, home)."""
    root = tmp_path_factory.mktemp("lightout")
    chain = build_chain(root / "a", 6)
    gen = root / "genesis.json"
    genesis(focus={"mode": "diffusion"}).save(gen)
    url, stop = serve(node_app(chain))
    home = root / "light"
    r = focusflow("light", "sync", "--node", url, "--genesis", gen, "--home", home)
    assert r.returncode == 0, r.stderr
    yield url, home
    stop()
    chain.close()


def test_human_output_has_no_python_reprs(synced):
    url, home = synced
    links = focusflow("light", "query", "links", HUB, "--node", url, "--home", home)
    assert links.returncode == 0, links.stderr
    assert not REPR.search(links.stdout), links.stdout
    lines = links.stdout.splitlines()
    assert "links: 6" in lines and "verified: yes" in lines, lines
    assert sum(1 for line in lines if line.startswith(f"  {HUB} -> ") and " by focus1" in line) == 6
    nobody = focusflow("light", "query", "name", "nobody", "--node", url, "--home", home)
    assert nobody.returncode == 0, nobody.stderr
    assert not REPR.search(nobody.stdout), nobody.stdout
    assert "cid: none" in nobody.stdout.splitlines()
    # --json is unchanged: the same fields, JSON values
    doc = json.loads(
        focusflow(
            "light", "query", "name", "nobody", "--node", url, "--home", home, "--json"
        ).stdout
    )
    assert doc["cid"] is None and doc["owner"] is None and doc["verified"] is True


def test_both_sampling_commands_take_the_height_alike_and_say_what_they_sampled(synced):
    url, home = synced
    light = focusflow("light", "sample", 3, "--node", url, "--home", home, "--samples", 10_000,
                      "--json")  # fmt: skip
    assert light.returncode == 0, light.stderr
    got = json.loads(light.stdout)
    shares = got["shares"]
    assert shares == got["width"] ** 2 and shares < 10_000
    # what was sampled: every distinct share once, not 10 000 draws
    assert (got["samples"], got["requested"], got["verified"]) == (shares, 10_000, shares)
    assert got["available"] is True and got["confidence"] == 1.0

    da = focusflow("da", "sample", 3, "--node", url, "--samples", 10_000, "--json")
    assert da.returncode == 0, da.stderr
    assert {k: json.loads(da.stdout)[k] for k in ("height", "samples", "requested", "shares")} == {
        "height": 3, "samples": shares, "requested": 10_000, "shares": shares,
    }  # fmt: skip

    text = focusflow("light", "sample", 3, "--node", url, "--home", home, "--samples", 10_000)
    assert text.returncode == 0 and text.stderr == "", text.stderr
    assert not REPR.search(text.stdout), text.stdout
    assert f"{shares} of {shares} distinct shares verified (every share)" in text.stdout
    assert f"asked for 10000 samples: the square has only {shares} shares" in text.stdout

    # fewer samples than shares: that many distinct ones, the confidence of that many
    one = json.loads(
        focusflow(
            "light", "sample", 3, "--node", url, "--home", home, "--samples", 1, "--json"
        ).stdout
    )
    assert one["samples"] == one["verified"] == one["requested"] == 1
    assert one["confidence"] == detection_probability(one["width"] // 2, 1)

    # the older --height still works, with one warning line
    old = focusflow("light", "sample", "--height", 3, "--node", url, "--home", home, "--json")
    assert old.returncode == 0, old.stderr
    assert json.loads(old.stdout)["height"] == 3
    assert old.stderr.startswith("warning: --height is deprecated") and old.stderr.count("\n") == 1
    # two different heights, or none, are refused with one error line
    both = focusflow("light", "sample", 2, "--height", 3, "--node", url, "--home", home)
    assert both.returncode == 2 and both.stderr.strip().endswith("[invalid_parameter]"), both
    none = focusflow("light", "sample", "--node", url, "--home", home)
    assert none.returncode == 2 and none.stderr.strip().endswith("[invalid_parameter]"), none
