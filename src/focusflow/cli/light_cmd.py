"""``focusflow light``: a client that verifies what a node says (docs/light.md).

``sync`` verifies the node's headers by commit certificates from genesis or a
trusted height and hash into ``<home>/light.json``; ``query`` asks the node for
a balance, a name, a particle's focus or links and prints only what the proofs
show against a verified header; ``sample`` samples a block's shares against the
data root of a verified header.

Exit status: 0 verified; 3 the node's answer does not verify (one ``error:``
line naming why: ``bad_certificate``, ``bad_proof``, ``fork``, ...); 2 bad input
(no store yet, unreachable node, bad option).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, TypeVar

import typer

from focusflow.cli.common import loading, particle
from focusflow.cli.da_cmd import fetch_share, square_width
from focusflow.core.errors import FocusflowError, InputFileError, InvalidParameterError
from focusflow.core.keys import decode_address
from focusflow.light.errors import EXIT_VERIFICATION, BadEncodingError
from focusflow.light.trust import DEFAULT_TRUSTING_PERIOD_S

if TYPE_CHECKING:
    from cryptography import x509

    from focusflow.light.client import LightClient, Node
    from focusflow.light.verify import LightBlock

light_app = typer.Typer(help="Light client: verify a node's headers and answers.")
query_app = typer.Typer(help="Ask a node and verify its answer against a verified header.")
light_app.add_typer(query_app, name="query")

#: celestia-node's light nodes sample 16 shares per block.
DEFAULT_SAMPLES = 16

NodeOpt = typer.Option(..., "--node", help="The node's API, e.g. http://127.0.0.1:26657.")
HomeOpt = typer.Option(..., "--home", help="Directory of the light client's verified headers.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")
TimeoutOpt = typer.Option(10.0, "--timeout", help="Seconds to wait for each answer.")
PeriodOpt = typer.Option(
    DEFAULT_TRUSTING_PERIOD_S,
    "--trusting-period",
    help="Seconds a verified header stays a root for skipping verification.",
)


@contextmanager
def _client(node: str, home: str, timeout: float, period: float) -> Iterator[LightClient]:
    """A light client over the store in ``home`` asking ``node``; the connection
    to the node is closed when the block ends (a command also runs in-process,
    from tests and scripts, where nothing else would close it)."""
    from focusflow.light.client import LightClient, Node
    from focusflow.light.store import LightStore

    if not timeout > 0 or not period > 0:
        raise InvalidParameterError("--timeout and --trusting-period must be > 0")
    store = LightStore.open(Path(home))
    with Node(node, timeout) as asked:
        yield LightClient(store, asked, trusting_period_s=period)


#: What a verified query returns (an ``answers.*Answer``, a block).
_Answer = TypeVar("_Answer")


class SampleDoc(TypedDict):
    """``focusflow light sample``: one round of sampling a verified block's square.

    ``samples`` counts the distinct shares sampled, which ``confidence`` is
    computed from; ``requested`` is what ``--samples`` asked for, more than the
    square holds when the square is small (a 2 x 2 square has 4 shares).
    """

    height: int
    samples: int
    requested: int
    width: int | None
    shares: int | None
    verified: int
    available: bool
    confidence: float
    data_root: str
    block_hash: str
    reason: str | None


def _spelled(value: object) -> str:
    """One value as a person reads it: no Python reprs (None, True, quotes)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _print(data: Mapping[str, object], as_json: bool) -> None:
    """``data`` as one JSON object, or one ``key: value`` line per field; a list
    field is its count, then one indented line per item (a link reads
    ``FROM -> TO by NEURON``)."""
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if isinstance(value, list):
            print(f"{key}: {len(value)}")
            for item in value:
                print(f"  {_item(item)}")
        else:
            print(f"{key}: {_spelled(value)}")


def _item(item: object) -> str:
    if isinstance(item, Mapping) and {"from", "to", "neuron"} <= item.keys():
        return f"{item['from']} -> {item['to']} by {item['neuron']}"
    if isinstance(item, Mapping):
        return ", ".join(f"{k} {_spelled(v)}" for k, v in item.items())
    return _spelled(item)


@light_app.command("sync")
def sync_cmd(
    node: str = NodeOpt,
    home: str = HomeOpt,
    genesis: Path | None = typer.Option(
        None, "--genesis", help="Genesis file: chain id and the validators of height 1."
    ),
    trust_height: int | None = typer.Option(
        None, "--trust-height", min=1, help="Start from this height instead of genesis."
    ),
    trust_hash: str | None = typer.Option(
        None, "--trust-hash", help="Hash (hex) of the header at --trust-height."
    ),
    witness: list[str] = typer.Option(
        [], "--witness", help="Another node whose header must agree (repeatable)."
    ),
    federated_root: Path | None = typer.Option(
        None,
        "--federated-root",
        help="Your own network's CA root (PEM): trust a header of this other network "
        "because its validators hold certificates from a CA your network vouches for.",
    ),
    cross: Path | None = typer.Option(
        None, "--cross", help="The cross-certificate (PEM) your network's CA signed for it."
    ),
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Verify the node's headers up to its newest and store them in --home."""
    from focusflow.light.client import LightClient, Node, genesis_trust
    from focusflow.light.store import LightStore

    if (trust_height is None) != (trust_hash is None):
        raise InvalidParameterError("--trust-height and --trust-hash go together")
    if (federated_root is None) != (cross is None):
        raise InvalidParameterError("--federated-root and --cross go together")
    trusted_hash = _hash(trust_hash) if trust_hash is not None else None
    chain_id, genesis_set = genesis_trust(genesis) if genesis is not None else (None, None)
    federated = None
    if federated_root is not None and cross is not None:
        federated = (_read_pem(federated_root), _read_pem(cross))
        if chain_id is None:
            with Node(node, timeout) as asked:
                chain_id = _chain_id(asked)
    store = LightStore.open(Path(home), chain_id)
    with Node(node, timeout) as primary:
        client = LightClient(store, primary, trusting_period_s=trusting_period)
        if trust_height is not None and trusted_hash is not None:
            client.trust_hash(trust_height, trusted_hash)
        elif federated is not None and len(store) == 0:
            _, trust = client.trust_federated(*federated, trust_height)
            if not as_json:
                print(
                    f"trusted by federation: validators holding {trust.power} of "
                    f"{trust.total} power hold the federated CA's certificates"
                )
        elif len(store) == 0:
            if genesis_set is None:
                raise InvalidParameterError("a new light store needs --genesis")
            client.trust_genesis(genesis_set)
        try:
            with loading(f"verifying the headers of {node}", not as_json):
                head = client.sync()
                for url in witness:
                    with Node(url, timeout) as other:
                        client.check_witness(other, head)
        finally:
            if len(store):
                store.save()
    _print(
        {"height": head.height, "hash": head.hash.hex(), "verified_headers": client.verified},
        as_json,
    )


def _read_pem(path: Path) -> x509.Certificate:
    from cryptography import x509

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InputFileError(f"{path} is not a PEM certificate") from None


def _chain_id(node: Node) -> str:
    """The chain id the node's newest header names (checked with its signatures
    once the header is verified)."""
    doc = node.header(None)
    chain_id = doc.get("chain_id") if isinstance(doc, dict) else None
    if not isinstance(chain_id, str) or not chain_id:
        raise InvalidParameterError("the node's header names no chain id")
    return chain_id


def _hash(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidParameterError("--trust-hash must be 64 hex digits")
    return raw


def _run_query(client: LightClient, ask: Callable[[], _Answer]) -> _Answer:
    try:
        return ask()
    finally:
        client.store.save()


@query_app.command("particle")
def query_particle(
    cid: str = typer.Argument(..., help="The particle's CID, or text (hashed to its CID)."),
    node: str = NodeOpt,
    home: str = HomeOpt,
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A particle's committed focus, proven against a verified header's focus root,
    and its text when the node keeps one (hashed to the CID here)."""
    cid, _ = particle(cid)
    with _client(node, home, timeout, trusting_period) as client:
        a = _run_query(client, lambda: client.particle(cid))
        text = client.text(cid)
    _print(
        {
            "particle": a.particle,
            "text": text,
            "focus": a.focus,
            "focus_q": a.focus_q,
            "index": a.index,
            "height": a.height,
            "verified": True,
        },
        as_json,
    )


@query_app.command("balance")
def query_balance(
    address: str = typer.Argument(..., help="A focus1... address."),
    node: str = NodeOpt,
    home: str = HomeOpt,
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """An account's balance, nonce and bond, proven against a verified state root."""
    raw = decode_address(address)
    with _client(node, home, timeout, trusting_period) as client:
        a = _run_query(client, lambda: client.balance(raw))
    _print(
        {
            "address": a.address,
            "balance": a.balance,
            "nonce": a.nonce,
            "bonded": a.bonded,
            "height": a.height,
            "verified": True,
        },
        as_json,
    )


@query_app.command("name")
def query_name(
    name: str = typer.Argument(..., help="A registered name."),
    node: str = NodeOpt,
    home: str = HomeOpt,
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A name's particle and owner (or proven unregistered: both null)."""
    if not 1 <= len(name) <= 64:
        raise InvalidParameterError("a name is 1 to 64 characters")
    with _client(node, home, timeout, trusting_period) as client:
        a = _run_query(client, lambda: client.name(name))
    _print(
        {"name": a.name, "cid": a.cid, "owner": a.owner, "height": a.height, "verified": True},
        as_json,
    )


@query_app.command("links")
def query_links(
    cid: str = typer.Argument(..., help="The particle's CID, or text (hashed to its CID)."),
    node: str = NodeOpt,
    home: str = HomeOpt,
    direction: str = typer.Option("out", "--direction", help="out or in."),
    offset: int = typer.Option(0, "--offset", min=0, help="Links to skip."),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="Links to ask for."),
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A page of a particle's links, each proven by the message that made it.

    Each link printed exists; that the page is complete cannot be proven.
    """
    if direction not in ("in", "out"):
        raise InvalidParameterError("--direction is in or out")
    cid, _ = particle(cid)
    with _client(node, home, timeout, trusting_period) as client:
        a = _run_query(client, lambda: client.links(cid, direction, offset, limit))
    _print(
        {
            "particle": a.particle,
            "direction": a.direction,
            "links": a.links,
            "unproven": a.unproven,
            "total_stated": a.total_stated,
            "height": a.height,
            "verified": True,
        },
        as_json,
    )


@light_app.command("sample")
def sample_cmd(
    height: int | None = typer.Argument(
        None, min=1, help="Block height to sample (as `focusflow da sample HEIGHT`)."
    ),
    node: str = NodeOpt,
    height_option: int | None = typer.Option(
        None, "--height", min=1, hidden=True, help="Deprecated: give the height as an argument."
    ),
    samples: int = typer.Option(DEFAULT_SAMPLES, "--samples", min=1, help="Shares to sample."),
    home: str = HomeOpt,
    seed: int | None = typer.Option(None, "--seed", help="Seed the coordinates (reproducible)."),
    trusting_period: float = PeriodOpt,
    timeout: float = TimeoutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Sample a block's shares against the data root of a verified header.

    Exit status 0: available; 3: unavailable or the header does not verify.
    """
    height = _sample_height(height, height_option)
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    with _client(node, home, timeout, trusting_period) as client:
        block = _run_query(client, lambda: client.block_at(height))
        result = sample_verified(client.node, block, samples, rng)
    if as_json:
        print(json.dumps(result))
    else:
        _print_sample(result)
    if not result["available"]:
        raise SystemExit(EXIT_VERIFICATION)


def _sample_height(argument: int | None, option: int | None) -> int:
    """The height to sample: the argument, as every command that names a block
    takes it; ``--height``, the older spelling, still works with a warning."""
    if argument is not None and option is not None and argument != option:
        raise InvalidParameterError(
            f"two heights: {argument} and --height {option}; give the height once"
        )
    if option is not None:
        print(
            "warning: --height is deprecated; give the height as an argument: "
            f"focusflow light sample {option} ...",
            file=sys.stderr,
        )
        return option
    if argument is None:
        raise InvalidParameterError("give the block height: focusflow light sample HEIGHT ...")
    return argument


def _print_sample(doc: SampleDoc) -> None:
    word = "available" if doc["available"] else "unavailable"
    print(f"block {doc['height']}: {word} (hash {doc['block_hash']})")
    if doc["width"] is not None and doc["shares"] is not None:
        width, n = doc["width"], doc["samples"]
        whole = " (every share)" if n == doc["shares"] else ""
        print(
            f"  {doc['verified']} of {n} distinct shares verified{whole}, of the "
            f"{doc['shares']} shares of the {width} x {width} square"
        )
        if doc["requested"] > n:
            print(f"  asked for {doc['requested']} samples: the square has only {n} shares")
        print(
            f"  confidence {100 * doc['confidence']:.4f} %: an unrecoverable square fails "
            f"at least one of these {n} shares with at least this probability"
        )
    if doc["reason"]:
        print(f"  {doc['reason']}")


def sample_verified(node: Node, block: LightBlock, samples: int, rng: random.Random) -> SampleDoc:
    """Sample ``samples`` shares of ``block``'s square against its verified data root.

    The row and column roots must hash to the header's ``data_root`` (da_cmd's
    ``square_width``), each share's proof must verify against it (da_cmd's
    ``fetch_share``); a missing or failing share counts as unavailable. The
    shares drawn are distinct (at most the square's), and the confidence is
    that of the distinct shares. A fraud proof the node holds for the block
    (``GET /v1/da/{height}/fraud``) that verifies against the data root is
    BadEncodingError.
    """
    from focusflow.da import Sampler

    data_root = block.header.data_root
    _check_fraud(node, block)
    k, why = square_width(node.api, block.height, data_root)
    doc: SampleDoc = {
        "height": block.height,
        "samples": 0,
        "requested": samples,
        "width": None,
        "shares": None,
        "verified": 0,
        "available": False,
        "confidence": 0.0,
        "data_root": data_root.hex(),
        "block_hash": block.hash.hex(),
        "reason": why or None,
    }
    if not k:
        return doc
    sampler = Sampler(data_root, 2 * k, block.height, samples, rng=rng)
    for request in sampler.requests():
        sampler.receive(request, fetch_share(node.api, request))
    result = sampler.result()
    n = len(result.samples)
    shares = (2 * k) ** 2
    doc["samples"] = n
    doc["width"] = 2 * k
    doc["shares"] = shares
    doc["verified"] = n - len(result.failed)
    doc["available"] = result.available
    # every share checked: nothing withheld can have been missed
    doc["confidence"] = 1.0 if n == shares else result.confidence
    doc["reason"] = None if result.available else f"{len(result.failed)} of {n} samples failed"
    return doc


def _check_fraud(node: Node, block: LightBlock) -> None:
    """Refuse the block if the node holds a bad-encoding proof that verifies."""
    try:
        from focusflow.da import befp_from_json, verify_bad_encoding_proof
    except ImportError:  # a DA layer without fraud proofs in JSON
        return
    try:
        doc = node.api.da_fraud(block.height)
        if doc is None:
            return
        proof = befp_from_json(doc.get("proof"))
    except (ValueError, AttributeError, FocusflowError):
        return  # no proof, or not one: nothing proven against the block
    if verify_bad_encoding_proof(block.header.data_root, proof):
        raise BadEncodingError(
            f"block {block.height}'s square is badly encoded: a fraud proof verifies "
            "against its verified data root"
        )


__all__ = ["light_app", "sample_verified"]
