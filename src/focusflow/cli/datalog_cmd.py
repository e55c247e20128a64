"""``focusflow query datalog``: a Datalog program over a graph file or a node.

With ``--graph`` the program runs here, over the file; with ``--node`` (or a
home's node) the node runs it over its committed state and answers with the
height and state root it used. Rows print as TSV (symbols as text, numbers as
numbers), or as the API's JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from focusflow.cli.common import (
    HomeOpt,
    JsonOpt,
    NoCacheOpt,
    NodeOpt,
    SkipInvalidOpt,
    client,
    loading,
    print_json,
    skipped_invalid,
    skipped_note,
)
from focusflow.client import NodeClient
from focusflow.core.errors import InputFileError, InvalidParameterError

DatalogHelp = (
    "Run a Datalog program (Soufflé rule syntax) and print one relation. PROGRAM is "
    "the text, or @FILE to read it from a file. Rules over link, weight, particle, "
    "focus, ... and graph operators (pagerank, khop, shortest, component, community, "
    "personalized, walk): see docs/query.md."
)


def read_program(arg: str) -> str:
    """The program text: ``@file`` reads a file, ``@-`` standard input."""
    if not arg.startswith("@"):
        return arg
    where = arg[1:]
    if where == "-":
        return sys.stdin.read()
    path = Path(where)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the program {where}: {exc}") from None


def check_program(text: str, output: str) -> None:
    """Parse the program and check it against a graph file's relations before
    the file is read: a program with an error is refused at once, with its
    own error code, not after a large file has loaded (25 s for WordNet). The
    relations are an empty graph file's, checked as the evaluation checks them."""
    from focusflow.graph.cybergraph import Cybergraph
    from focusflow.query.analysis import analyse
    from focusflow.query.engine import BuiltinSchemas
    from focusflow.query.sources import GraphFileSource
    from focusflow.query.syntax import parse

    schemas = BuiltinSchemas(GraphFileSource(Cybergraph(require_cids=False)))
    analyse(parse(text), output, schemas, schemas.names())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def print_tsv(doc: dict[str, Any]) -> None:
    out = sys.stdout
    out.write("\t".join(doc["columns"]) + "\n")
    for row in doc["rows"]:
        out.write("\t".join(_cell(v) for v in row) + "\n")


def check_proved(api: NodeClient, doc: dict[str, Any]) -> dict[str, Any]:
    """Verify a proved answer and that its root is the block's (as ``query proof``)."""
    from focusflow.light.errors import HeaderMismatchError
    from focusflow.light.query_proofs import verify_query_answer

    summary = verify_query_answer(doc)
    header = api.block(int(doc["height"]))
    if header.get("state_root") != doc.get("state_root"):
        raise HeaderMismatchError(
            f"the answer's state root is not the state root of block {doc.get('height')}"
        )
    return summary


def verify_cmd(
    answer: Annotated[Path, typer.Argument(help="A proved answer saved with --prove --json.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
) -> None:
    """Check a proved answer: proofs, facts, rows, and its root against the node's block."""
    try:
        doc = json.loads(answer.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the answer {answer}: {exc}") from None
    if not isinstance(doc, dict):
        raise InputFileError(f"{answer} does not hold a JSON object")
    with client(home, node) as api:
        summary = check_proved(api, doc)
    sys.stdout.write(
        f"verified: {summary['rows']} rows from {summary['facts']} proven facts "
        f"({summary['keys']} state keys) against the state root {summary['state_root']} "
        f"of block {doc.get('height')}\n"
    )


def datalog_cmd(
    program: Annotated[str, typer.Argument(help="Program text, or @FILE.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The relation to print.")],
    graph: Annotated[
        str | None, typer.Option("--graph", help="Run over this graph file here.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, edges or bostrom.")] = "auto",
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="Print at most N rows.")
    ] = None,
    height: Annotated[
        int | None,
        typer.Option("--height", min=1, help="Ask the node's state at this height."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds before the query is cancelled.")
    ] = 60.0,
    prove: Annotated[
        bool,
        typer.Option(
            "--prove",
            help="Ask the node for the state proofs of each row's facts and check them here.",
        ),
    ] = False,
    home: HomeOpt = None,
    node: NodeOpt = None,
    as_json: JsonOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    no_cache: NoCacheOpt = False,
    texts: Annotated[
        Path | None,
        typer.Option(
            "--texts",
            help="With --graph: the particles file (cid<TAB>text<TAB>gloss) of the text "
            "relation; default: the graph's X.particles.tsv when it exists.",
        ),
    ] = None,
) -> None:
    """Run a Datalog program and print one relation."""
    text = read_program(program)
    if graph is not None:
        if node is not None or height is not None or prove:
            raise InvalidParameterError(
                "--graph runs here: it takes neither --node, --height nor --prove"
            )
        check_program(text, output)
        from focusflow.graph.wordnet import particles_file_for, read_particle_texts
        from focusflow.query import Limits, open_graph, run

        beside = particles_file_for(graph)
        with loading(f"reading {Path(graph).name}"):
            table = (
                read_particle_texts(texts)
                if texts is not None
                else (read_particle_texts(beside) if beside.is_file() else None)
            )
            source = open_graph(
                graph,
                fmt,
                skip_invalid=skip_invalid,
                texts=table,
                cache=False if no_cache else None,
            )
        answer = run(text, source, output=output, limit=limit, limits=Limits(timeout_s=timeout))
        doc = answer.to_json()
        if skip_invalid:
            doc["skipped_invalid_links"] = skipped_invalid(source.graph)
        note = skipped_note(skipped_invalid(source.graph))
        if note:
            sys.stderr.write(note + "\n")
    else:
        if texts is not None:
            raise InvalidParameterError(
                "--texts is for --graph: a node's text relation holds the texts it keeps"
            )
        body: dict[str, Any] = {"program": text, "output": output, "timeout_s": timeout}
        if limit is not None:
            body["limit"] = limit
        if height is not None:
            body["height"] = height
        if prove:
            body["prove"] = True
        with client(home, node, timeout + 10.0) as api:
            doc = api.query(body)
            if prove:
                summary = check_proved(api, doc)
                sys.stderr.write(
                    f"verified: {summary['rows']} rows from {summary['facts']} proven facts "
                    f"against the state root of block {doc['height']}\n"
                )
    if as_json:
        print_json(doc)
    else:
        print_tsv(doc)
