"""``focusflow query``: read the chain through the node's API, one command per endpoint.

Human tables by default, the API's JSON unchanged with ``--json`` (so scripts
see exactly docs/api.md). Particles can be given as CIDs or as text, like
``focusflow tx link``; accounts as addresses or wallet key names. ``query
proof`` also checks the state proof it receives, so its answer is one a user
need not take on trust.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from focusflow.cli.common import HomeOpt, JsonOpt, NodeOpt, address, client, console, particle
from focusflow.cli.common import print_json as _print_json
from focusflow.cli.datalog_cmd import DatalogHelp, datalog_cmd, verify_cmd
from focusflow.core.errors import BadProofError, FocusflowError, InvalidParameterError

if TYPE_CHECKING:
    from focusflow.client import NodeClient

T = TypeVar("T")

query_app = typer.Typer(
    help="Read the chain: status, accounts, blocks, focus, links, names.", no_args_is_help=True
)

TextOpt = Annotated[
    bool, typer.Option("--text", help="Take the particle argument as text, never as a CID.")
]
_HASH = re.compile(r"[0-9a-fA-F]{64}")


def _ask(home: str | None, node: str | None, question: Callable[[NodeClient], T]) -> T:
    """``question`` asked of the command's node, its connection closed after."""
    with client(home, node) as api:
        return question(api)


GlobalOpt = Annotated[
    bool,
    typer.Option(
        "--global", help="The network's global focus, from its hub (a network of rollups)."
    ),
]


def _ask_hub(home: str | None, node: str | None, path: str, **params: Any) -> Any:
    """``path`` asked of the hub of the command's node's network (the node
    itself when it is the hub)."""
    from focusflow.core.errors import InvalidParameterError

    with client(home, node) as api:
        place = api.get_optional("/v1/rollup")
        if not isinstance(place, dict) or place.get("role") not in ("hub", "rollup"):
            raise InvalidParameterError(
                "--global needs a node of a network of rollups; this node's chain is on its own"
            )
        if place["role"] == "hub":
            return api.get(path, params)
        apis = place.get("hub", {}).get("apis") or []
    if not apis:
        raise InvalidParameterError("the node knows no API of its hub: pass --node of the hub")
    with client(home, str(apis[0])) as hub:
        return hub.get(path, params)


def _kv(rows: dict[str, Any]) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)


def _flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = ", ".join(map(str, value)) if value else "-"
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(doc: Any, as_json: bool) -> None:
    if as_json:
        _print_json(doc)
    else:
        _kv(_flat(doc))


def _focus(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@query_app.command("status")
def status_cmd(home: HomeOpt = None, node: NodeOpt = None, as_json: JsonOpt = False) -> None:
    """The node: chain id, height, last block, focus work, mempool."""
    _show(_ask(home, node, lambda api: api.status()), as_json)


@query_app.command("account")
def account_cmd(
    who: Annotated[str, typer.Argument(help="An address or a wallet key name.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Balance, nonce, bonded stake and link count of an account."""
    who = address(who, home)
    _show(_ask(home, node, lambda api: api.account_json(who)), as_json)


def _block_which(block_id: str) -> int | str:
    """What ``NodeClient.block`` takes for a BLOCK argument."""
    if block_id == "latest":
        return "latest"
    if block_id.isdigit():
        return int(block_id)
    if _HASH.fullmatch(block_id):
        return block_id.lower()
    raise InvalidParameterError(
        f"block {block_id!r}: expected 'latest', a height, or a 64-hex-digit hash"
    )


@query_app.command("block")
def block_cmd(
    block_id: Annotated[
        str, typer.Argument(help="'latest', a height, or a block hash.")
    ] = "latest",
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One block's header, transactions and commit."""
    which = _block_which(block_id)
    doc = _ask(home, node, lambda api: api.block(which))
    if as_json:
        _print_json(doc)
        return
    rows = {k: v for k, v in doc.items() if k not in ("txs", "commit")}
    rows["txs"] = "\n".join(doc.get("txs") or []) or "-"
    rows["commit"] = f"{len(doc.get('commit') or [])} signature(s)"
    _kv(rows)


@query_app.command("blocks")
def blocks_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many.")] = 20,
    before: Annotated[
        int | None, typer.Option("--before", min=0, help="Only blocks below this height.")
    ] = None,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recent blocks, newest first."""
    doc = _ask(home, node, lambda api: api.blocks(limit, before))
    if as_json:
        _print_json(doc)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("height", "hash", "time_ms", "txs", "state_root"):
        table.add_column(col)
    for b in doc.get("blocks", []):
        n_txs = b.get("n_txs", len(b.get("txs") or []))
        table.add_row(
            str(b.get("height")),
            str(b.get("hash")),
            str(b.get("time_ms")),
            str(n_txs),
            str(b.get("state_root")),
        )
    console.print(table)


@query_app.command("tx")
def tx_query_cmd(
    tx_hash: Annotated[str, typer.Argument(help="The transaction's hash (hex).")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A transaction's status, block, result code and events."""
    if not _HASH.fullmatch(tx_hash):
        raise InvalidParameterError(f"transaction hash {tx_hash!r}: expected 64 hex digits")
    _show(_ask(home, node, lambda api: api.tx(tx_hash.lower())), as_json)


@query_app.command("top")
def top_cmd(
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="How many.")] = 20,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
    global_: GlobalOpt = False,
) -> None:
    """The particles with the most focus (--global: in the network's global snapshot)."""
    if global_:
        _global_top(home, node, k, as_json)
        return
    doc = _ask(home, node, lambda api: api.focus_top(k))
    if as_json:
        _print_json(doc)
        return
    rows = doc.get("particles", [])
    total = doc.get("total", len(rows))
    has_text = any(p.get("text") is not None for p in rows)
    table = Table(
        box=None,
        pad_edge=False,
        title=f"top {k} at height {doc.get('height')}",
        caption=f"{len(rows)} of {total} particles",
    )
    table.add_column("rank", justify="right")
    table.add_column("cid")
    if has_text:
        table.add_column("text")
    table.add_column("focus", justify="right")
    for p in rows:
        text = [_text(p.get("text"))] if has_text else []
        table.add_row(str(p.get("rank")), str(p.get("cid")), *text, _focus(p.get("focus")))
    console.print(table)


def _global_top(home: str | None, node: str | None, k: int, as_json: bool) -> None:
    doc = _ask_hub(home, node, "/v1/global/top", k=k)
    if as_json:
        _print_json(doc)
        return
    stale = doc.get("stale") or []
    table = Table(
        box=None,
        pad_edge=False,
        title=f"global top {k}: snapshot {doc.get('snapshot')} (hub height {doc.get('height')})",
        caption=f"stale buckets: {', '.join(map(str, stale))}" if stale else None,
    )
    table.add_column("rank", justify="right")
    table.add_column("cid")
    table.add_column("focus", justify="right")
    for i, row in enumerate(doc.get("rows", []), 1):
        table.add_row(str(i), str(row.get("particle")), _focus(row.get("focus")))
    console.print(table)


def _text(text: Any) -> str:
    """A particle's text for a table cell: one line, '-' when the node keeps none."""
    if text is None:
        return "-"
    return " ".join(str(text).split())


@query_app.command("particle")
def particle_cmd(
    target: Annotated[str, typer.Argument(help="A CID, or text.")],
    as_text: TextOpt = False,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
    global_: GlobalOpt = False,
) -> None:
    """One particle's focus, rank and link counts, and its text when the node keeps it
    (--global: its focus in the network's global snapshot, with the snapshot's proof)."""
    cid, _ = particle(target, as_text=as_text)
    if global_:
        doc = _ask_hub(home, node, f"/v1/global/particles/{cid}")
        if as_json:
            _print_json(doc)
            return
        snap = doc.get("snapshot", {})
        _kv(
            {
                "cid": doc.get("particle"),
                "global focus": doc.get("focus"),
                "snapshot": snap.get("round"),
                "hub height": snap.get("height"),
                "root": snap.get("root"),
                "stale buckets": ", ".join(map(str, snap.get("stale", []))) or None,
            }
        )
        return
    doc = _ask(home, node, lambda api: api.particle_focus(cid))
    if as_json:
        _print_json(doc)
        return
    shown = {"cid": doc.get("cid"), "text": _text(doc.get("text"))}
    _kv({**shown, **{k: v for k, v in doc.items() if k not in shown}})


@query_app.command("karma")
def karma_cmd(
    who: Annotated[str, typer.Argument(help="An address or a wallet key name.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A neuron's karma (the focus its links carry), stake and link count."""
    who = address(who, home)
    _show(_ask(home, node, lambda api: api.neuron_focus(who)), as_json)


@query_app.command("syntropy")
def syntropy_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many blocks back.")] = 20,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Syntropy (ln n - entropy of focus, in nats) block by block."""
    doc = _ask(home, node, lambda api: api.syntropy(limit))
    if as_json:
        _print_json(doc)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("height", "syntropy", "entropy", "particles"):
        table.add_column(col, justify="right")
    for h in doc.get("history", []):
        table.add_row(
            str(h.get("height")),
            _focus(h.get("syntropy")),
            _focus(h.get("entropy")),
            str(h.get("particles")),
        )
    console.print(table)


@query_app.command("links")
def links_cmd(
    target: Annotated[str, typer.Argument(help="A CID, or text.")],
    direction: Annotated[str, typer.Option("--direction", help="out or in.")] = "out",
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_text: TextOpt = False,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A particle's links (out or in), with their weight and the other end's focus."""
    if direction not in ("out", "in"):
        raise InvalidParameterError(f"--direction {direction!r}: expected 'out' or 'in'")
    cid, _ = particle(target, as_text=as_text)
    doc = _ask(home, node, lambda api: api.particle_links(cid, direction, offset, limit))
    if as_json:
        _print_json(doc)
        return
    arrow = "->" if direction == "out" else "<-"
    shown = len(doc.get("links", []))
    table = Table(
        box=None,
        pad_edge=False,
        title=f"{cid} {arrow} ({offset + 1}-{offset + shown} of {doc.get('total')})",
    )
    for col in ("cid", "text", "weight", "focus"):
        table.add_column(col)
    for link in doc.get("links", []):
        table.add_row(
            str(link.get("cid")),
            _text(link.get("text")),
            str(link.get("weight")),
            _focus(link.get("focus")),
        )
    console.print(table)


@query_app.command("name")
def name_cmd(
    name: Annotated[str, typer.Argument(help="A registered name.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The particle and owner of a name."""
    _show(_ask(home, node, lambda api: api.name(name)), as_json)


@query_app.command("wasm")
def wasm_cmd(
    contract: Annotated[
        str, typer.Argument(help="A WASM contract's address: focus1... or 0x... (either spelling).")
    ],
    msg: Annotated[
        str | None, typer.Option("--msg", help="Run its query with this JSON message.")
    ] = None,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A WASM contract: its code, creator and label; with --msg, its query's answer."""
    import json

    from focusflow.core.jsontext import too_deep

    contract = address(contract, home)
    if msg is None:
        _show(_ask(home, node, lambda api: api.wasm_contract(contract)), as_json)
        return
    if too_deep(msg, 32):
        raise InvalidParameterError("--msg nests deeper than 32 levels")
    try:
        doc = json.loads(msg)
    except ValueError:
        raise InvalidParameterError(f"--msg must be JSON, got {msg!r}") from None
    answer = _ask(home, node, lambda api: api.wasm_query(contract, doc))
    if as_json:
        _print_json(answer)
        return
    from focusflow.cli.contract_answers import NOT_JSON, decoded

    value = decoded(bytes.fromhex(answer["answer_hex"]))
    if value is NOT_JSON:
        _show(answer, as_json)
    else:
        typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@query_app.command("cid")
def cid_cmd(
    text: Annotated[str, typer.Argument(help="Any text.")],
    as_json: JsonOpt = False,
) -> None:
    """The CID of a text: CIDv1, raw, sha2-256 of its UTF-8 bytes (what nodes and
    ``tx link`` compute). A pure hash: no node is asked, none need run."""
    from focusflow.core.cid import cid_of_text

    try:
        cid = cid_of_text(text)
    except UnicodeEncodeError:
        raise InvalidParameterError("the text is not valid UTF-8") from None
    if as_json:
        _print_json({"cid": cid})
    else:
        console.print(cid)


@query_app.command("search")
def search_cmd(
    words: Annotated[str, typer.Argument(help="Words to find in particle texts.")],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=100, help="Most particles to list.")
    ] = 20,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Particles whose text the node keeps matches WORDS, without case: the whole
    text first, then by prefix, then by substring (three characters or more)."""
    params = {"q": words, "limit": limit}
    doc = _ask(home, node, lambda api: api.get("/v1/particles/search", params))
    if as_json:
        _print_json(doc)
        return
    rows = doc.get("results", [])
    table = Table(title=f"{len(rows)} particles matching {words!r} at height {doc.get('height')}")
    for col in ("text", "cid", "match", "focus"):
        table.add_column(col)
    for r in rows:
        focus = r.get("focus")
        table.add_row(
            _text(r.get("text")),
            str(r.get("cid")),
            str(r.get("match")),
            "-" if focus is None else _focus(focus),
        )
    console.print(table)


@query_app.command("proof")
def proof_cmd(
    key: Annotated[
        str | None,
        typer.Argument(help="A state key (UTF-8, or hex:<hex> for binary keys)."),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", metavar="WHO", help="Prove this account (address or key)."),
    ] = None,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A state value with its Merkle proof, checked here against the block's state root.

    The proof must verify against the returned root, and that root must be the
    ``state_root`` of the block at the returned height: a node cannot answer
    with a value its own chain does not commit to.
    """
    if (key is None) == (account is None):
        raise InvalidParameterError("give a state KEY or --account WHO (one of them)")
    if account is not None:
        from focusflow.core.keys import decode_address
        from focusflow.state_schema.accounts import account_key

        raw = account_key(decode_address(address(account, home)))
        key = "hex:" + raw.hex()
    assert key is not None
    with client(home, node) as api:
        doc = api.proof(key)
        _verify(key, doc)
        header = api.block(int(doc["height"]))
    if header.get("state_root") != doc.get("root"):
        raise BadProofError(
            f"the proof's root {doc.get('root')} is not the state root of block "
            f"{doc.get('height')} ({header.get('state_root')})"
        )
    if as_json:
        _print_json({**doc, "verified": True})
        return
    rows = {k: doc.get(k) for k in ("key", "height", "root", "value")}
    if account is not None and doc.get("value") is not None:
        from focusflow.core.encoding import decode

        try:
            balance, nonce, bonded = decode(bytes.fromhex(doc["value"]), "account")
            rows["account"] = f"balance {balance}, nonce {nonce}, bonded {bonded}"
        except (FocusflowError, ValueError, TypeError):
            rows["account"] = "(value is not an account record)"
    _kv(rows)
    what = "inclusion" if doc.get("value") is not None else "exclusion"
    console.print(f"{what} proof verified against the state root of block {doc.get('height')}")


def _verify(key: str, doc: dict[str, Any]) -> None:
    """Check the proof with the store's verifier; BadProofError if it does not hold."""
    from focusflow.store import Proof, verify_proof

    try:
        raw_key = bytes.fromhex(key[4:]) if key.startswith("hex:") else key.encode()
        root = bytes.fromhex(doc["root"])
        value = None if doc.get("value") is None else bytes.fromhex(doc["value"])
        proof = Proof.decode(bytes.fromhex(doc["proof"]))
        int(doc["height"])
    except (KeyError, TypeError, ValueError, FocusflowError) as exc:
        raise BadProofError(f"the node's proof for {key!r} is malformed: {exc}") from None
    if not verify_proof(root, raw_key, value, proof):
        raise BadProofError(f"the node's proof for {key!r} does not verify against its root")


query_app.command("datalog", help=DatalogHelp)(datalog_cmd)
query_app.command("verify")(verify_cmd)


# --------------------------------------------------------------------- the exchange


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _pool_rows(pool: dict[str, Any]) -> dict[str, Any]:
    a, b = pool.get("a"), pool.get("b")
    halted = pool.get("halted_until", -1)
    return {
        "pool": f"{a}/{b}",
        "reserves": f"{pool.get('reserve_a')} {a}, {pool.get('reserve_b')} {b}",
        "price": f"1 {a} = {_number(pool.get('price'))} {b}",
        "twap": f"1 {a} = {_number(pool.get('twap'))} {b}",
        "shares": f"{pool.get('shares')} {pool.get('share_denom')}",
        "halted until": halted if isinstance(halted, int) and halted >= 0 else "-",
    }


@query_app.command("pool")
def pool_cmd(
    a: Annotated[str, typer.Argument(help="One denom of the pair (cyb, h, lp/A/B, ...).")],
    b: Annotated[str, typer.Argument(help="The other denom; either order.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One pool: its reserves, shares, price and TWAP at the head."""
    from focusflow.chain.errors import UnknownPoolError
    from focusflow.cli.dex_cmd import fetch_pool
    from focusflow.cli.tx_cmd import check_denom

    a, b = check_denom(a, "denom"), check_denom(b, "denom")
    with client(home, node) as api:
        doc = fetch_pool(api, a, b)
    if doc is None:
        raise UnknownPoolError(f"no pool for {a} and {b}")
    if as_json:
        _print_json(doc)
        return
    rows = _pool_rows(doc)
    if "height" in doc:
        rows["height"] = doc["height"]
    _kv(rows)


@query_app.command("pools")
def pools_cmd(home: HomeOpt = None, node: NodeOpt = None, as_json: JsonOpt = False) -> None:
    """Every pool with its reserves, price and TWAP at the head."""
    doc = _ask(home, node, lambda api: api.pools())
    if as_json:
        _print_json(doc)
        return
    listed = doc.get("pools", [])
    table = Table(
        box=None,
        pad_edge=False,
        title=f"pools at height {doc.get('height')}",
        caption=None if listed else "no pools: open one with focusflow tx pool create A B X Y",
    )
    for col in ("pool", "reserves", "price", "twap", "shares", "halted until"):
        table.add_column(col)
    for pool in listed:
        table.add_row(*map(str, _pool_rows(pool).values()))
    console.print(table)


@query_app.command("balances")
def balances_cmd(
    who: Annotated[str, typer.Argument(help="An address or a wallet key name.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every token an account holds (liquid): cyb, h, pool shares, ..."""
    who = address(who, home)
    doc = _ask(home, node, lambda api: api.balances_json(who))
    if as_json:
        _print_json(doc)
        return
    table = Table(
        box=None, pad_edge=False, title=f"{doc.get('address')} at height {doc.get('height')}"
    )
    table.add_column("denom")
    table.add_column("amount", justify="right")
    for denom, amount in (doc.get("balances") or {}).items():
        table.add_row(str(denom), str(amount))
    console.print(table)


@query_app.command("economy")
def economy_cmd(home: HomeOpt = None, node: NodeOpt = None, as_json: JsonOpt = False) -> None:
    """The economy: on or off, the base fee, H's premium and the buyback share, rewards."""
    _show(_ask(home, node, lambda api: api.economy_json()), as_json)
