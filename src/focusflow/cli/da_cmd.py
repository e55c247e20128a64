"""``focusflow da sample``: a data-availability light client over a node's REST API.

It trusts the block header alone: the data root comes from
``GET /v1/blocks/{height}``; the row and column roots from
``GET /v1/da/{height}`` must hash to it (they fix the square's width ``2k``);
then ``s`` random coordinates are sampled with
``GET /v1/da/{height}/shares/{row}/{col}`` and each share's proof is verified
against the data root. A share that is missing (any answer but 200, a
timeout) or whose proof fails counts as unavailable.

Exit status: 0 available, 3 unavailable, 2 bad input (unknown block,
unreachable node, bad option). docs/da.md, *Chain integration*, is the
contract, with the confidence formula.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import typer

from focusflow.client import NodeRequestError
from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.core.hashing import merkle_root

if TYPE_CHECKING:
    from focusflow.client import NodeClient
    from focusflow.da import SampleRequest, ShareProof

#: docs/da.md: 25 samples detect a withheld block with 99.9 % confidence
#: (focusflow.da.DEFAULT_SAMPLES; not imported here so that every CLI command
#: does not pay for loading numba).
DEFAULT_SAMPLES = 25

da_app = typer.Typer(help="Data availability: sample a block's shares from a node.")

EXIT_AVAILABLE = 0
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


class VerdictDoc(TypedDict):
    """``focusflow da sample --json``: one sampling round."""

    height: int
    node: str
    data_root: str
    k: int | None
    width: int | None
    available: bool
    confidence: float
    samples: int
    requested: int
    shares: int | None
    verified: int
    failed: list[list[int]]
    failed_fraction: float | None
    reason: str | None


@dataclass
class Verdict:
    """What one sampling round found; ``reason`` says why, when unavailable."""

    height: int
    data_root: bytes
    k: int | None
    available: bool
    confidence: float
    samples: list[tuple[int, int]] = field(default_factory=list)
    requested: int = 0
    failed: list[tuple[int, int]] = field(default_factory=list)
    reason: str = ""

    def to_json(self, node: str) -> VerdictDoc:
        n = len(self.samples)
        return {
            "height": self.height,
            "node": node,
            "data_root": self.data_root.hex(),
            "k": self.k,
            "width": None if self.k is None else 2 * self.k,
            "available": self.available,
            "confidence": self.confidence,
            "samples": n,
            "requested": self.requested,
            "shares": None if self.k is None else (2 * self.k) ** 2,
            "verified": n - len(self.failed),
            "failed": [list(c) for c in self.failed],
            "failed_fraction": len(self.failed) / n if n else None,
            "reason": self.reason or None,
        }


def header_data_root(api: NodeClient, height: int) -> bytes:
    """The data root of the block header at ``height`` (the only thing trusted).

    Any failure to get it is ``node_request_failed``: without a header there
    is nothing to sample against (bad input, exit 2, not unavailability)."""
    try:
        block = api.block(height)
    except NodeRequestError as exc:
        if exc.status == 404:
            raise NodeRequestError(f"the node has no block at height {height}") from None
        raise NodeRequestError(exc.message, status=exc.status, node_code=exc.node_code) from None
    try:
        root = bytes.fromhex(block["data_root"])
    except (ValueError, KeyError, TypeError):
        raise DecodeError(f"block {height}: the header's data_root is not 32 hex bytes") from None
    if len(root) != 32:
        raise DecodeError(f"block {height}: the header's data_root is not 32 hex bytes")
    return root


def square_width(api: NodeClient, height: int, data_root: bytes) -> tuple[int, str]:
    """``(k, "")`` when the node's row and column roots hash to ``data_root``; else ``(0, why)``."""
    try:
        body = api.da_roots(height)
    except NodeRequestError as exc:
        if exc.status is None:
            return 0, f"the node does not answer /v1/da/{height}: {exc.code}"
        return 0, f"the node does not serve the square's roots ({exc.status})"
    try:
        k = body["k"]
        rows = [bytes.fromhex(x) for x in body["row_roots"]]
        cols = [bytes.fromhex(x) for x in body["col_roots"]]
    except (ValueError, KeyError, TypeError):
        return 0, "the node's square roots are malformed"
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k & (k - 1):
        return 0, f"the node's k={k!r} is not a power of two"
    if len(rows) != 2 * k or len(cols) != 2 * k or merkle_root(rows + cols) != data_root:
        return 0, "the node's row and column roots do not hash to the header's data root"
    return k, ""


def fetch_share(api: NodeClient, request: SampleRequest) -> ShareProof | None:
    """The share at the request's coordinates with its proof, or None if not served."""
    try:
        body = api.da_share(request.height, request.row, request.col)
        if (body.get("row"), body.get("col")) != (request.row, request.col):
            return None
        from focusflow.da import proof_from_json

        return proof_from_json(request.row, request.col, body["share"], body["proof"])
    except (NodeRequestError, ValueError, KeyError, TypeError, AttributeError, DecodeError):
        return None


def sample_block(
    node: str,
    height: int,
    samples: int = DEFAULT_SAMPLES,
    seed: int | None = None,
    timeout: float = 10.0,
) -> Verdict:
    """Run the light client against ``node``; NodeRequestError when it cannot start."""
    if samples < 1:
        raise InvalidParameterError(f"--samples must be at least 1, got {samples}")
    if height < 0:
        raise InvalidParameterError(f"height must be >= 0, got {height}")
    if not node.startswith(("http://", "https://")):
        raise InvalidParameterError(f"--node must be an http:// or https:// URL, got {node!r}")
    if not timeout > 0:
        raise InvalidParameterError(f"--timeout must be > 0, got {timeout}")
    from focusflow.client import NodeClient

    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    with NodeClient(node, timeout=timeout) as api:
        data_root = header_data_root(api, height)
        k, why = square_width(api, height, data_root)
        if not k:
            return Verdict(height, data_root, None, False, 0.0, requested=samples, reason=why)
        from focusflow.da import Sampler

        sampler = Sampler(data_root, 2 * k, height, samples, rng=rng)
        for request in sampler.requests():
            sampler.receive(request, fetch_share(api, request))
    result = sampler.result()
    reason = ""
    if not result.available:
        reason = f"{len(result.failed)} of {len(result.samples)} samples missing or invalid"
    shares = (2 * k) ** 2
    return Verdict(
        height,
        data_root,
        k,
        result.available,
        # every share checked: nothing withheld can have been missed
        1.0 if len(result.samples) == shares else result.confidence,
        list(result.samples),
        samples,
        sorted(result.failed),
        reason,
    )


def _print_text(verdict: Verdict) -> None:
    n = len(verdict.samples)
    word = "available" if verdict.available else "unavailable"
    print(f"block {verdict.height}: {word}")
    if verdict.k is None:
        print(f"  {verdict.reason}")
        return
    width = 2 * verdict.k
    ok = n - len(verdict.failed)
    whole = ", every share" if n == width * width else ""
    print(
        f"  {ok} of {n} distinct shares verified (extended square {width} x {width} of "
        f"{width * width} shares{whole}, k = {verdict.k})"
    )
    if verdict.requested > n:
        print(f"  asked for {verdict.requested} samples: the square has only {n} shares")
    if verdict.failed:
        shown = ", ".join(f"({r}, {c})" for r, c in verdict.failed[:10])
        more = f", ... ({len(verdict.failed) - 10} more)" if len(verdict.failed) > 10 else ""
        print(f"  missing or invalid: {shown}{more}")
    print(
        f"  confidence {100 * verdict.confidence:.4f} %: an unrecoverable square fails at "
        f"least one of these {n} shares with at least this probability"
    )


@da_app.command("sample")
def sample_cmd(
    height: int = typer.Argument(..., help="Block height to check."),
    node: str = typer.Option(..., "--node", help="The node's API, e.g. http://127.0.0.1:26657."),
    samples: int = typer.Option(
        DEFAULT_SAMPLES, "--samples", help="Shares to sample (default: 99.9 % confidence)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed the coordinates (reproducible)."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each answer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Sample a block's data square from a node and say whether it is available.

    Exit status 0: available; 3: unavailable; 2: bad input.
    """
    verdict = sample_block(node, height, samples, seed, timeout)
    if as_json:
        print(json.dumps(verdict.to_json(node)))
    else:
        _print_text(verdict)
    raise SystemExit(EXIT_AVAILABLE if verdict.available else EXIT_UNAVAILABLE)
