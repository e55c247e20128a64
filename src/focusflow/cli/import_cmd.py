"""``focusflow import bostrom`` and ``import wordnet``: bulk-load links into a running node.

``import wordnet`` reads WordNet 3.0 (``focusflow.graph.wordnet``) and either
writes it as a bostrom CSV with a particles file (``--out``) or loads it like a
bostrom file, each relation a neuron named ``wordnet:<relation>`` (``--node``),
and then gives the node the texts its particles' CIDs were made from, which the
node keeps only once links name them (``cli.particle_texts``).

Every bostrom neuron becomes a neuron of our chain with a key derived from its
bostrom address::

    seed = SHA-256("focusflow/import/bostrom/v1" 0x00 chain_id 0x00 neuron)

so the same file on the same chain always gives the same keys, the same
transactions and the same hashes. The dev key (``--from``) funds each neuron
with exactly what its transactions cost (stake, link burn, fees); the neuron
bonds its stake and signs its own links, ``--batch`` links per transaction,
in file order.

Idempotent by construction: a neuron's on-chain ``neudeg`` is how many of its
links (in file order) are already on chain, so each run sends only
``links[neudeg:]``, stakes only what its bond lacks, and funds only what its
balance lacks. A finished import re-run sends nothing; an interrupted one
resumes; a larger ``--limit`` adds the difference. Transactions still pending
from an earlier run are recomputed byte for byte, and the node's
``duplicate_tx`` answer is taken as "already sent".

Economics (src/focusflow/modules/links.py): a neuron's links need
``neudeg * min_link_weight <= bonded`` and burn ``link_burn`` each. Each
neuron bonds ``max(--stake, links * min_link_weight)``: like ``focusflow
focus compute`` without a stakes file, every neuron weighs the same and its
stake is spread over its links.

The mempool takes at most 64 nonces ahead of an account's committed one, so
work goes in rounds: fund, send up to 64 transactions per neuron, wait until
they are in blocks, read the accounts again, repeat until nothing is left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from focusflow.cli.common import (
    PASSPHRASE_NOTE,
    ChainIdOpt,
    HomeOpt,
    JsonOpt,
    MaxFeeOpt,
    NodeOpt,
    SkipInvalidOpt,
    client,
    console,
    load_key,
    loading,
    print_json,
    skipped_invalid,
    skipped_note,
)
from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.home import resolve_home
from focusflow.core.keys import KeyPair

if TYPE_CHECKING:
    from focusflow.chain.tx import Tx
    from focusflow.cli.particle_texts import TextsSent
    from focusflow.cli.txbuild import Pinned
    from focusflow.client import NodeClient, ReportedAccount
    from focusflow.graph.cybergraph import Cybergraph

import_app = typer.Typer(help="Bulk-load cyberlinks into a running node.", no_args_is_help=True)

DOMAIN = b"focusflow/import/bostrom/v1"
#: The mempool's MAX_NONCE_GAP: how far ahead of its committed nonce an account may queue.
WINDOW = 64
POLL_S = 0.2
#: Transactions per POST /v1/txs/batch, and their encoded bytes (hex doubles
#: them; the API takes request bodies up to 2 MiB).
BATCH_TXS = 1000
BATCH_BYTES = 768 << 10
#: A chain that makes no block for this long is stopped; the import gives up.
STALL_S = 60.0


class ImportFailedError(FocusflowError):
    """The import could not finish: a transaction failed or the chain stopped moving."""

    code = "import_failed"


def neuron_key(chain_id: str, neuron: str) -> KeyPair:
    """The deterministic key of a bostrom neuron on this chain."""
    return KeyPair.from_seed(sha256(DOMAIN + b"\0" + chain_id.encode() + b"\0" + neuron.encode()))


@dataclass
class Neuron:
    """One bostrom neuron's links (binary CIDs, file order) and its derived key."""

    name: str
    key: KeyPair
    links: list[list[bytes]]


@dataclass
class Plan:
    """What one neuron still needs: its signed transactions and their cost."""

    neuron: Neuron
    txs: list[Tx]  # in nonce order
    link_counts: list[int]  # links carried by each transaction
    cost: int  # fees + stake + burn of all txs
    shortfall: int  # what the dev key must send first


@dataclass
class Report:
    neurons: int = 0
    links: int = 0
    links_on_chain_before: int = 0
    links_sent: int = 0
    txs_sent: int = 0
    funding_txs: int = 0
    rounds: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: Links of the file dropped by --skip-invalid (their particles are not CIDs).
    skipped_invalid_links: int = 0
    #: Particle texts the node kept, and those it found no link for (import wordnet).
    texts_stored: int = 0
    texts_unknown: int = 0


def read_neurons(
    path: Path, chain_id: str, limit: int | None, *, skip_invalid: bool = False
) -> list[Neuron]:
    """Neurons in first-seen order with their links; the file's first ``limit`` links only.

    The reader is the graph package's (validation with line numbers, go-cyber's
    rule that a neuron's repeated link counts once, self-links dropped: the
    chain refuses them; with ``skip_invalid`` links whose particles are not
    CIDs are dropped instead of stopping the import).
    """
    from focusflow.graph.importers import read_bostrom

    return neurons_of_graph(read_bostrom(path, skip_invalid=skip_invalid), chain_id, limit)


def neurons_of_graph(graph: Cybergraph, chain_id: str, limit: int | None) -> list[Neuron]:
    """A Cybergraph's neurons with their links (its first ``limit`` links only), in
    first-seen order, each with the key ``neuron_key`` derives from its name.

    Every importer goes through here, so a WordNet relation's neuron gets its
    key exactly as a bostrom neuron does.
    """
    from focusflow.core.cid import cid_to_bytes

    batch = graph.links()
    n = len(batch) if limit is None else min(limit, len(batch))
    # an importer's graph is read from files: its keys are text
    keys = cast(list[str], graph.particles.keys())
    names = cast(list[str], graph.neurons.keys())
    raw: dict[int, bytes] = {}

    def cid(i: int) -> bytes:
        b = raw.get(i)
        if b is None:
            b = raw[i] = cid_to_bytes(keys[i])
        return b

    by_neuron: dict[int, list[list[bytes]]] = {}
    for s, d, nu in zip(
        batch.src[:n].tolist(), batch.dst[:n].tolist(), batch.neuron[:n].tolist(), strict=True
    ):
        by_neuron.setdefault(nu, []).append([cid(s), cid(d)])
    return [
        Neuron(names[nu], neuron_key(chain_id, names[nu]), links)
        for nu, links in sorted(by_neuron.items())
    ]


def plan_neuron(
    neuron: Neuron,
    account: ReportedAccount,
    pin: Pinned,
    stake: int,
    batch: int,
) -> Plan | None:
    """The transactions that bring ``neuron`` from ``account``'s state to all its links."""
    from focusflow.chain.tx import Msg
    from focusflow.cli.txbuild import build_tx, spend_of

    params = pin.params
    done = account.neudeg
    remaining = neuron.links[done:]
    if not remaining:
        return None
    target = max(stake, len(neuron.links) * params.min_link_weight)
    add_stake = max(0, target - account.bonded)
    txs: list[Tx] = []
    counts: list[int] = []
    cost = 0
    nonce = account.nonce
    for start in range(0, len(remaining), batch):
        if len(txs) == WINDOW:
            break
        chunk = remaining[start : start + batch]
        msgs = [Msg("link", {"links": chunk})]
        if not txs and add_stake:
            msgs.insert(0, Msg("stake", {"amount": add_stake}))
        tx = build_tx(
            neuron.key,
            pin.chain_id,
            nonce,
            msgs,
            params,
            max_fee=pin.max_fee,
            fee_per_byte=pin.fee_per_byte,
        )
        cost += tx.fee + spend_of(msgs, params)
        txs.append(tx)
        counts.append(len(chunk))
        nonce += 1
    return Plan(neuron, txs, counts, cost, max(0, cost - account.balance))


def _already_sent(code: str, message: str) -> bool:
    """The node holds this very transaction already (a rerun while it is pending)."""
    return code == "duplicate_tx" and "already in the mempool" in message


def _submit_all(api: NodeClient, txs: Sequence[Tx]) -> list[str]:
    """Send transactions in order, in batches where the node offers them; their hashes.

    A refusal other than "already in the mempool" stops the import with the
    node's code: the transactions after it could not be included anyway.
    """
    from focusflow.client import BadNodeAnswerError, RemoteError
    from focusflow.client.replies import remote_error

    hashes: list[str] = []
    start = 0
    while start < len(txs):
        chunk: list[Tx] = []
        size = 0
        for tx in txs[start : start + BATCH_TXS]:
            if chunk and size + len(tx.encoded) > BATCH_BYTES:
                break
            chunk.append(tx)
            size += len(tx.encoded)
        results = api.submit_batch([t.encoded for t in chunk])
        if results is None:
            results = []
            for tx in chunk:
                try:
                    results.append({"hash": api.submit(tx.encoded)})
                except RemoteError as exc:
                    results.append({"error": {"code": exc.code, "message": exc.message}})
        for tx, result in zip(chunk, results, strict=True):
            error = result.get("error")
            if error is None:
                hashes.append(str(result.get("hash", tx.hash.hex())))
                continue
            refused = remote_error(error, 400)
            if refused is None:
                raise BadNodeAnswerError(
                    f"POST /v1/txs/batch: transaction {tx.hash.hex()} has an error "
                    "that is not {code, message}"
                )
            if _already_sent(refused.code, refused.message):
                hashes.append(tx.hash.hex())
            else:
                raise RemoteError(
                    f"transaction {tx.hash.hex()} refused: {refused.message}", refused.code, 400
                )
        start += len(chunk)
    return hashes


def _await_all(
    api: NodeClient,
    queues: Sequence[Sequence[str]],
    on_commit: Callable[[int, int, dict[str, Any]], None],
) -> None:
    """Poll until every transaction is committed; ``on_commit(queue, j, record)`` once each.

    Each queue is one sender's transactions in nonce order, so only its head
    needs asking: the next cannot be in a block before it.
    """
    from focusflow.client import RemoteError

    heads = {q: 0 for q, hashes in enumerate(queues) if hashes}
    last_height, stalled_since = -1, time.monotonic()
    while heads:
        for q in list(heads):
            hashes = queues[q]
            while heads.get(q) is not None:
                j = heads[q]
                try:
                    record = api.tx(hashes[j])
                except RemoteError as exc:
                    if exc.code != "unknown_tx":
                        raise
                    raise ImportFailedError(
                        f"transaction {hashes[j]} was accepted, then dropped by the node; "
                        "run the import again to resume"
                    ) from None
                if record.get("status") != "committed":
                    break
                on_commit(q, j, record)
                if j + 1 < len(hashes):
                    heads[q] = j + 1
                else:
                    del heads[q]
        if heads:
            height = api.status()["height"]
            if height != last_height:
                last_height, stalled_since = height, time.monotonic()
            elif time.monotonic() - stalled_since > STALL_S:
                raise ImportFailedError(
                    f"the chain stopped at height {height}; run the import again to resume"
                )
            time.sleep(POLL_S)


def fund(
    api: NodeClient,
    funder: KeyPair,
    needy: list[Plan],
    pin: Pinned,
    report: Report,
) -> None:
    """Send each needy neuron its shortfall, up to max_msgs_per_tx sends a transaction."""
    from focusflow.chain.errors import InsufficientFundsError
    from focusflow.chain.tx import Msg
    from focusflow.cli.txbuild import build_tx

    params = pin.params
    per_tx = max(1, params.max_msgs_per_tx)
    account = api.account(funder.address)
    txs = []
    for k, start in enumerate(range(0, len(needy), per_tx)):
        if k == WINDOW:
            break  # the rest in the next round
        msgs = [
            Msg("send", {"to": p.neuron.key.address_raw, "amount": p.shortfall})
            for p in needy[start : start + per_tx]
        ]
        txs.append(
            build_tx(
                funder,
                pin.chain_id,
                account.nonce + k,
                msgs,
                params,
                max_fee=pin.max_fee,
                fee_per_byte=pin.fee_per_byte,
            )
        )
    need = sum(tx.fee + sum(m.body["amount"] for m in tx.msgs) for tx in txs)
    if account.balance < need:
        raise InsufficientFundsError(
            f"the funder {funder.address} has {account.balance}; funding the neurons "
            f"needs {need}; nothing was sent"
        )
    hashes = _submit_all(api, txs)
    report.funding_txs += len(hashes)

    def funded(q: int, j: int, record: dict[str, Any]) -> None:
        if record.get("code") != "ok":
            raise ImportFailedError(
                f"funding transaction {record.get('hash')} failed: "
                f"{record.get('log')} [{record.get('code')}]"
            )

    _await_all(api, [hashes], funded)


def run_import(
    api: NodeClient,
    funder: KeyPair,
    neurons: list[Neuron],
    pin: Pinned,
    *,
    stake: int,
    batch: int,
    progress: Progress | None,
) -> Report:
    """The rounds of the module docstring; returns what was done."""
    report = Report(neurons=len(neurons), links=sum(len(n.links) for n in neurons))
    failed: set[str] = set()
    task = None
    just_funded = False
    while True:
        accounts = {n.name: api.account(n.key.address) for n in neurons}
        if task is None:
            report.links_on_chain_before = sum(
                min(accounts[n.name].neudeg, len(n.links)) for n in neurons
            )
            if progress is not None:
                task = progress.add_task(
                    "links", total=report.links, completed=report.links_on_chain_before
                )
        plans = [
            p
            for n in neurons
            if n.name not in failed and (p := plan_neuron(n, accounts[n.name], pin, stake, batch))
        ]
        if not plans:
            return report
        report.rounds += 1

        needy = [p for p in plans if p.shortfall]
        if needy:
            if just_funded:
                raise ImportFailedError(
                    f"{len(needy)} neuron(s) still lack funds after being funded "
                    "(is something else spending from their keys?)"
                )
            fund(api, funder, needy, pin, report)
            just_funded = True
            continue  # re-read the balances: the plans then find no shortfall
        just_funded = False

        # Send each neuron's transactions, then wait until all are in blocks.
        all_hashes = _submit_all(api, [tx for p in plans for tx in p.txs])
        report.txs_sent += len(all_hashes)
        sent: list[tuple[Plan, list[str]]] = []
        for p in plans:
            sent.append((p, all_hashes[: len(p.txs)]))
            all_hashes = all_hashes[len(p.txs) :]
        linked_before, failed_before = report.links_sent, len(report.failed)

        def committed(
            q: int,
            j: int,
            record: dict[str, Any],
            sent: list[tuple[Plan, list[str]]] = sent,
            task: TaskID | None = task,
        ) -> None:
            p, hashes = sent[q]
            if record.get("code") == "ok":
                report.links_sent += p.link_counts[j]
                if progress is not None and task is not None:
                    progress.advance(task, p.link_counts[j])
            elif p.neuron.name not in failed:
                failed.add(p.neuron.name)
                report.failed.append(
                    {
                        "neuron": p.neuron.name,
                        "address": p.neuron.key.address,
                        "tx": hashes[j],
                        "code": record.get("code"),
                        "log": record.get("log"),
                    }
                )

        _await_all(api, [hashes for _, hashes in sent], committed)
        if report.links_sent == linked_before and len(report.failed) == failed_before:
            raise ImportFailedError("a round committed no links; stopping instead of looping")


def counting_bar(label: str, unit: str, err: Console, show: bool) -> Progress:
    """A bar counting ``unit`` done of a known total, on stderr when ``show``."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
    )


def send_texts_with_progress(
    api: NodeClient, texts: Sequence[str], err: Console, show: bool
) -> TextsSent:
    """Give the node the particles' texts in batches, with a bar on a terminal."""
    from focusflow.cli.particle_texts import send_texts

    bar = counting_bar("keeping texts", "texts", err, show)
    with bar:
        task = bar.add_task("texts", total=len(texts))
        return send_texts(api, texts, lambda n: bar.advance(task, n))


LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N links.")]
StakeOpt = Annotated[
    int, typer.Option("--stake", min=1, help="Stake each neuron bonds (at least its links).")
]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Links per transaction.")]
FunderOpt = Annotated[
    str,
    typer.Option(
        "--from", metavar="NAME", help=f"Wallet key that funds the neurons. {PASSPHRASE_NOTE}"
    ),
]


def load_graph(
    graph: Cybergraph,
    what: str,
    *,
    limit: int | None,
    stake: int,
    batch: int,
    funder: str,
    home: str | None,
    node: str | None,
    as_json: bool,
    chain_id: str | None,
    max_fee: int | None,
    texts: Sequence[str] = (),
) -> None:
    """Send a graph's first ``limit`` links to the node as its neurons' transactions,
    then ``texts`` (those its particles were made from, once the links are in), then
    print the report: the body every ``import`` command shares."""
    from focusflow.cli.txbuild import pin_chain

    key = load_key(home, funder)
    with client(home, node) as api:
        pin = pin_chain(api, resolve_home(home), chain_id, max_fee)
        neurons = neurons_of_graph(graph, pin.chain_id, limit)
        if not neurons:
            raise InvalidParameterError(f"{what}: no links to import")
        err = Console(stderr=True)
        show = not as_json and err.is_terminal
        progress = counting_bar("importing", "links", err, show)
        started = time.monotonic()
        with progress:
            report = run_import(
                api,
                key,
                neurons,
                pin,
                stake=stake,
                batch=batch,
                progress=progress,
            )
        if texts:
            sent = send_texts_with_progress(api, texts, err, show)
            report.texts_stored, report.texts_unknown = sent.stored, len(sent.unknown)
        seconds = time.monotonic() - started
    report.skipped_invalid_links = skipped_invalid(graph)
    result = {**report.__dict__, "seconds": round(seconds, 3)}
    if as_json:
        print_json(result)
    else:
        console.print(
            f"{report.neurons} neurons, {report.links} links: {report.links_on_chain_before} "
            f"were on chain, {report.links_sent} sent in {report.txs_sent} transactions "
            f"(+{report.funding_txs} funding) in {seconds:.1f}s"
        )
        if texts:
            console.print(
                f"{report.texts_stored} particle texts kept by the node"
                + (f", {report.texts_unknown} not named by a link" if report.texts_unknown else "")
            )
        note = skipped_note(report.skipped_invalid_links)
        if note:
            console.print(note)
    if report.failed:
        sys.stdout.flush()
        first = report.failed[0]
        raise ImportFailedError(
            f"{len(report.failed)} neuron(s) stopped on a failed transaction; first: "
            f"{first['neuron']} tx {first['tx']}: {first['log']} [{first['code']}]"
        )


@import_app.command("bostrom")
def bostrom_cmd(
    file: Annotated[
        Path, typer.Argument(help="Cyberlink CSV: neuron,particle_from,particle_to,...")
    ],
    limit: LimitOpt = None,
    stake: StakeOpt = 1_000_000,
    batch: BatchOpt = 1000,
    funder: FunderOpt = "dev",
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
    chain_id: ChainIdOpt = None,
    max_fee: MaxFeeOpt = None,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Load a bostrom cyberlink CSV as signed transactions from generated neurons."""
    from focusflow.graph.importers import read_bostrom

    with loading(f"reading {file.name}", not as_json):
        graph = read_bostrom(file, skip_invalid=skip_invalid)
    load_graph(
        graph,
        str(file),
        limit=limit,
        stake=stake,
        batch=batch,
        funder=funder,
        home=home,
        node=node,
        as_json=as_json,
        chain_id=chain_id,
        max_fee=max_fee,
    )


@import_app.command("wordnet")
def wordnet_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write a bostrom CSV here and <stem>.particles.tsv beside it.",
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="WordNet 3.0 database. Default: $FOCUSFLOW_WORDNET, else /usr/share/wordnet.",
        ),
    ] = None,
    limit: LimitOpt = None,
    stake: StakeOpt = 1_000_000,
    batch: BatchOpt = 1000,
    funder: FunderOpt = "dev",
    home: HomeOpt = None,
    node: Annotated[
        str | None,
        typer.Option("--node", metavar="URL", help="Load into the node at this API URL."),
    ] = None,
    as_json: JsonOpt = False,
    chain_id: ChainIdOpt = None,
    max_fee: MaxFeeOpt = None,
) -> None:
    """WordNet 3.0 as typed links (one neuron per relation): to files, or into a node."""
    import numpy as np

    from focusflow.graph.wordnet import read_wordnet, write_wordnet

    if (out is None) == (node is None):
        raise InvalidParameterError("give exactly one of --out FILE or --node URL")
    started = time.monotonic()
    with loading("reading WordNet", not as_json):
        wn = read_wordnet(directory)
    mask = None if limit is None else np.arange(wn.n_links) < limit
    if node is not None:
        linked = wn if mask is None else wn.subset(mask)
        load_graph(
            wn.to_graph(mask),
            "WordNet",
            limit=None,
            stake=stake,
            batch=batch,
            funder=funder,
            home=home,
            node=node,
            as_json=as_json,
            chain_id=chain_id,
            max_fee=max_fee,
            texts=linked.texts.tolist(),
        )
        return
    if mask is not None:
        wn = wn.subset(mask)
    assert out is not None  # exactly one of --out and --node, and not --node
    graph_path, particles_path = write_wordnet(wn, out)
    synsets = int(wn.is_synset.sum())
    result: dict[str, Any] = {
        "graph": str(graph_path),
        "particles_file": str(particles_path),
        "particles": wn.n_particles,
        "synsets": synsets,
        "lemmas": wn.n_particles - synsets,
        "links": wn.n_links,
        "links_per_relation": wn.relation_counts(),
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        print_json(result)
    else:
        used = sum(1 for c in result["links_per_relation"].values() if c)
        console.print(
            f"{result['particles']} particles ({synsets} synsets, {result['lemmas']} lemmas), "
            f"{wn.n_links} links in {used} relations: {graph_path}, "
            f"{particles_path} ({result['seconds']:.1f}s)"
        )
