"""``focusflow infer``: the next particles a context leads to.

Three sources answer the same question: a graph file (focus-flow inference
here, ``focusflow.infer``), a running node (``POST /v1/infer``, the node's
committed graph), or a compiled model directory (``focusflow compile``'s ONNX
model in onnxruntime). Output is a table, ``--json``, or with ``--contexts``
a TSV ``line<TAB>rank<TAB>particle<TAB>probability``; docs/infer.md has the
contract.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from focusflow.cli.common import (
    NodeOpt,
    SkipInvalidOpt,
    client,
    print_json,
    skipped_invalid,
    skipped_note,
)
from focusflow.core.cid import particle_cid
from focusflow.core.errors import FocusflowError, InputFileError, InvalidParameterError

if TYPE_CHECKING:
    import numpy as np

    from focusflow.infer import InferParams

#: Lines of a --contexts file, and particles on one line.
MAX_LINES = 1_000_000
MAX_LINE_PARTICLES = 4096


def _semcons(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise InvalidParameterError(f"--semcon takes NAME=WEIGHT, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise InvalidParameterError(f"--semcon {item!r}: {value!r} is not a number") from None
    return out


def read_contexts(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, particles)`` of a contexts file: one context a line, particles
    separated by tabs; blank lines and ``#`` comments are skipped."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    with path.open(encoding="utf-8", errors="strict") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if number > MAX_LINES:
                    raise InputFileError(f"{path}: more than {MAX_LINES} lines")
                text = line.rstrip("\r\n")
                if not text.strip() or text.startswith("#"):
                    continue
                items = [p for p in text.split("\t") if p]
                if len(items) > MAX_LINE_PARTICLES:
                    raise InputFileError(
                        f"{path}:{number}: more than {MAX_LINE_PARTICLES} particles"
                    )
                yield number, items
        except UnicodeDecodeError:
            raise InputFileError(f"{path}: not UTF-8 text") from None


class TextsFile(Mapping[str, str]):
    """``cid -> text`` of a particles file (``cid<TAB>text<TAB>gloss``), read
    line by line as texts are asked for.

    An answer shows a few particles, and parsing all of WordNet's 265k lines
    into a dict cost about a second of a command that answers one query: the
    file is read as bytes, and a particle's line is found by searching for its CID at
    a line's start (a CID holds no tab or newline, so the match is exact). The
    header is checked when the file is opened, a line when it is read; the
    whole table is parsed only if it is iterated.
    """

    def __init__(self, path: Path) -> None:
        from focusflow.graph.wordnet import PARTICLES_HEADER

        if not path.is_file():
            raise InputFileError(f"{path}: no such particles file")
        self.path = path
        self._data = path.read_bytes()
        first = self._data.split(b"\n", 1)[0].rstrip(b"\r")
        if first != PARTICLES_HEADER.encode():
            raise InputFileError(f"{path}:1: a particles file starts with 'cid<TAB>text<TAB>gloss'")
        self._all: dict[str, str] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __getitem__(self, key: str) -> str:
        if self._all is not None:
            return self._all[key]
        pos = self._data.find(b"\n" + key.encode() + b"\t")
        if pos < 0 or not key:
            raise KeyError(key)
        end = self._data.find(b"\n", pos + 1)
        line = self._data[pos + 1 : len(self._data) if end < 0 else end]
        return self._fields(line, self._data.count(b"\n", 0, pos) + 2)[1]

    def _fields(self, line: bytes, number: int) -> list[str]:
        try:
            fields = line.decode("utf-8").rstrip("\r").split("\t")
        except UnicodeDecodeError:
            raise InputFileError(f"{self.path}:{number}: not UTF-8 text") from None
        if len(fields) != 3 or not fields[0]:
            raise InputFileError(f"{self.path}:{number}: expected cid<TAB>text<TAB>gloss")
        return fields

    def _table(self) -> dict[str, str]:
        if self._all is None:
            lines = self._data.split(b"\n")[1:]
            if lines and lines[-1] == b"":
                lines.pop()
            table = {}
            for number, line in enumerate(lines, start=2):
                cid, text, _ = self._fields(line, number)
                table[cid] = text
            self._all = table
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


class _Answerer(Protocol):
    """One source of answers (a graph file, a node, a compiled model): the CLI's
    output and batch code run the same over all three."""

    def top(self, context: list[str], k: int) -> dict[str, Any]: ...

    def walk(self, context: list[str], steps: int, **kw: Any) -> Iterator[dict[str, Any]]: ...


class _GraphAnswerer:
    def __init__(
        self,
        path: Path,
        fmt: str,
        stakes: Path | None,
        texts: Path | None,
        skip_invalid: bool,
        params: InferParams,
        semcons: dict[str, float],
        others: float | None,
    ) -> None:
        from focusflow.graph.importers import read_graph
        from focusflow.graph.wordnet import particles_file_for
        from focusflow.infer import Inference, InferGraph

        graph = read_graph(path, fmt, stakes, skip_invalid=skip_invalid)
        #: Links --skip-invalid dropped, for the command's summary.
        self.skipped = skipped_invalid(graph)
        table = None
        if texts is not None:
            table = TextsFile(texts)
        elif particles_file_for(path).is_file():
            table = TextsFile(particles_file_for(path))
        self.graph = InferGraph.from_cybergraph(graph, table)
        self.engine = Inference(self.graph, params)
        self.semcons, self.others = semcons, others

    def _row(self, i: int, **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"particle": self.graph.key(i)}
        text = self.graph.text(i)
        if text is not None:
            row["text"] = text
        row.update(extra)
        return row

    def top(self, context: list[str], k: int) -> dict[str, Any]:

        pred = self.engine.predict(context, semcons=self.semcons, other_semcons=self.others)
        ids, probs = pred.top(k)
        return {
            "context": [self._row(int(i)) for i in pred.context],
            "particles": [
                self._row(int(i), rank=r + 1, probability=float(p))
                for r, (i, p) in enumerate(zip(ids, probs, strict=True))
            ],
            "seconds": pred.seconds,
            "path": pred.path,
            "error_bound": pred.error_bound,
        }

    def walk(self, context: list[str], steps: int, **kw: Any) -> Iterator[dict[str, Any]]:

        for step in self.engine.walk(
            context, steps, semcons=self.semcons, other_semcons=self.others, **kw
        ):
            yield self._row(
                step.particle, step=step.step, probability=step.probability, seconds=step.seconds
            )


class _NodeAnswerer:
    def __init__(
        self, node: str, params: InferParams, semcons: dict[str, float], others: float | None
    ) -> None:
        self.client = client(None, node)
        self.base: dict[str, Any] = {
            "mode": params.mode,
            "tol": params.tol,
            "context_weight": params.context_weight,
            "semcons": semcons,
        }
        if others is not None:
            self.base["other_semcons"] = others

    @staticmethod
    def _item(p: str) -> str | dict[str, str]:
        return {"name": p[1:]} if p.startswith("@") and len(p) > 1 else p

    def top(self, context: list[str], k: int) -> dict[str, Any]:
        doc = self.client.infer(
            {**self.base, "context": [self._item(p) for p in context], "top": k}
        )
        for row in doc.get("particles", []):
            row["particle"] = row.pop("cid")
        doc["context"] = [{"particle": c} for c in doc.get("context", [])]
        rows = [*doc["context"], *doc.get("particles", [])]
        texts = self._texts([row["particle"] for row in rows])
        for row in rows:
            if row["particle"] in texts:
                row["text"] = texts[row["particle"]]
        return doc

    def _texts(self, cids: list[str]) -> dict[str, str]:
        """The node's texts of ``cids`` (``GET /v1/particles/texts``, 100 a request),
        each hashed to its CID here: a text that is not its particle's is left out."""
        from focusflow.cli.particle_texts import verified_texts

        return verified_texts(self.client, cids)

    def walk(self, context: list[str], steps: int, **kw: Any) -> Iterator[dict[str, Any]]:
        from websockets.sync.client import connect

        sampling = kw["sampling"]
        request = {
            **self.base,
            "context": [self._item(p) for p in context],
            "steps": steps,
            "seed": kw["seed"],
            "temperature": sampling.temperature,
            "top_k": sampling.top_k,
            "top_p": sampling.top_p,
        }
        url = self.client.url.rstrip("/").replace("http", "ws", 1) + "/v1/infer/walk"
        with connect(url, open_timeout=10, max_size=1 << 20) as ws:
            ws.send(json.dumps(request))
            while True:
                doc = json.loads(ws.recv(timeout=120))
                if "error" in doc:
                    from focusflow.client import BadNodeAnswerError
                    from focusflow.client.replies import remote_error

                    raise remote_error(doc["error"], 400) or BadNodeAnswerError(
                        "/v1/infer/walk: the node's error is not {code, message}"
                    )
                if doc.get("done"):
                    return
                doc["particle"] = doc.pop("cid")
                text = self._texts([doc["particle"]]).get(doc["particle"])
                if text is not None:
                    doc["text"] = text
                yield doc


class _ModelAnswerer:
    def __init__(
        self,
        directory: Path,
        texts: Path | None,
        context_weight: float,
        weights: dict[str, float],
        other_semcons: float | None,
    ) -> None:
        from focusflow.core.extras import import_extra

        import_extra("onnxruntime", "compile", "focusflow infer --model")
        from focusflow.compile.runner import CompiledModel

        self.model = CompiledModel.load(directory)
        self.factors = self.model.factors(weights, other_semcons)
        self.texts = None
        if texts is not None:
            from focusflow.graph.wordnet import read_particle_texts

            self.texts = read_particle_texts(texts)
        self.context_weight = context_weight

    def _ids(self, context: list[str]) -> list[int]:
        if not context:
            from focusflow.infer.errors import EmptyContextError

            raise EmptyContextError("the context is empty: give at least one particle")
        out = []
        for p in context:
            try:
                try:
                    out.append(self.model.index_of(p))
                except InvalidParameterError:
                    out.append(self.model.index_of(particle_cid(p)))
            except InvalidParameterError:
                from focusflow.infer.errors import UnknownParticleError

                raise UnknownParticleError(
                    f"particle {p!r} is not in the model's vocabulary"
                ) from None
        return out

    def _probs(self, ids: list[int]) -> tuple[np.ndarray, float]:
        import numpy as np

        from focusflow.infer.engine import next_distribution

        t = time.perf_counter()
        batch = np.asarray([ids], dtype=np.int64)
        out = self.model.predict(batch, self.factors)[0].astype(np.float64)
        probs = next_distribution(out, np.asarray(ids), self.context_weight)
        return probs, time.perf_counter() - t

    def _row(self, i: int, **extra: Any) -> dict[str, Any]:
        key = self.model.keys[i]
        row: dict[str, Any] = {"particle": key}
        if self.texts is not None and key in self.texts:
            row["text"] = self.texts[key]
        row.update(extra)
        return row

    def top(self, context: list[str], k: int) -> dict[str, Any]:
        import numpy as np

        from focusflow.infer.engine import Prediction

        ids = self._ids(context)
        probs, seconds = self._probs(ids)
        top, p = Prediction(np.asarray(ids), probs, None, seconds).top(k)
        return {
            "context": [self._row(i) for i in ids],
            "particles": [
                self._row(int(i), rank=r + 1, probability=float(x))
                for r, (i, x) in enumerate(zip(top, p, strict=True))
            ],
            "seconds": seconds,
        }

    def walk(self, context: list[str], steps: int, **kw: Any) -> Iterator[dict[str, Any]]:
        import numpy as np

        from focusflow.infer.sampling import draw

        rng = np.random.default_rng(kw["seed"])
        ids = self._ids(context)
        for step in range(1, steps + 1):
            probs, seconds = self._probs(ids)
            nxt, p = draw(probs, kw["sampling"], rng)
            if nxt < 0:
                return
            ids.append(nxt)
            yield self._row(nxt, step=step, probability=p, seconds=seconds)


def infer_cmd(  # noqa: C901, PLR0912 - a CLI command: one branch per option and source
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="A context particle: CID, text, or @name (--node)."),
    ] = None,
    graph: Annotated[Path | None, typer.Option("--graph", help="A graph file.")] = None,
    node: NodeOpt = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="A directory written by focusflow compile.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, bostrom or edges.")] = "auto",
    stakes: Annotated[Path | None, typer.Option("--stakes", help="CSV neuron,stake.")] = None,
    texts: Annotated[
        Path | None,
        typer.Option("--texts", help="Particles file cid<TAB>text<TAB>gloss (default: beside it)."),
    ] = None,
    skip_invalid: SkipInvalidOpt = False,
    top: Annotated[int, typer.Option("--top", help="How many particles to list.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="tri or diffusion.")] = "tri",
    tol: Annotated[float, typer.Option("--tol", help="L1 stop rule of the solve.")] = 1e-3,
    context_weight: Annotated[
        float, typer.Option("--context-weight", help="Weight of the context's own particles, 0..1.")
    ] = 0.0,
    semcon: Annotated[
        list[str] | None, typer.Option("--semcon", help="NAME=WEIGHT for a relation type.")
    ] = None,
    other_semcons: Annotated[
        float | None,
        typer.Option(
            "--other-semcons", help="Weight of semcons not named (0: only those; default 0.1)."
        ),
    ] = None,
    contexts: Annotated[
        Path | None, typer.Option("--contexts", help="File of contexts, one a line, tab-separated.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="TSV output of --contexts.")] = None,
    walk: Annotated[int | None, typer.Option("--walk", help="Sample a walk of N steps.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the walk's sampling.")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="> 0.")] = 1.0,
    top_k: Annotated[
        int, typer.Option("--top-k", help="Sample among the K likeliest (0: all).")
    ] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="Sample within mass P, in (0, 1].")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """The most likely next particles after a context, or a sampled walk."""
    from focusflow.infer import InferParams, Sampling

    sources = [x for x in (graph, node, model) if x is not None]
    if len(sources) != 1:
        raise InvalidParameterError("give exactly one of --graph FILE, --node URL, --model DIR")
    if (contexts is None) == (not context):
        raise InvalidParameterError("give --context (one or more) or --contexts FILE, not both")
    if contexts is not None and out is None:
        raise InvalidParameterError("--contexts needs --out FILE for the TSV it writes")
    if contexts is not None and walk is not None:
        raise InvalidParameterError("--walk takes one context (--context), not a --contexts file")
    if not 1 <= top <= 10_000:
        raise InvalidParameterError(f"--top must be in 1..10000, got {top}")
    params = InferParams(mode=mode, tol=tol, context_weight=context_weight).validate()
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p).validate()
    weights = _semcons(semcon or [])
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    #: What --skip-invalid dropped, in every JSON answer over a graph file.
    skipped: dict[str, int] = {}
    if graph is not None:
        loading = err.status(f"loading {graph.name}", spinner="dots")
        with loading if err.is_terminal else contextlib.nullcontext():
            graph_answerer = _GraphAnswerer(
                graph, fmt, stakes, texts, skip_invalid, params, weights, other_semcons
            )
        answerer: _Answerer = graph_answerer
        note = skipped_note(graph_answerer.skipped)
        if note:
            err.print(note)
        if skip_invalid:
            skipped = {"skipped_invalid_links": graph_answerer.skipped}
    elif node is not None:
        answerer = _NodeAnswerer(node, params, weights, other_semcons)
    else:
        assert model is not None
        answerer = _ModelAnswerer(model, texts, context_weight, weights, other_semcons)
    if contexts is not None:
        assert out is not None
        _batch(answerer, contexts, out, top, err, as_json, skipped)
        return
    assert context is not None
    if walk is not None:
        steps = list(answerer.walk(list(context), walk, seed=seed, sampling=sampling))
        if as_json:
            print_json({"context": list(context), "seed": seed, "steps": steps, **skipped})
            return
        for s in steps:
            label = s.get("text", s["particle"])
            print(f"{s['step']}\t{label}\t{s['probability']:.6g}")
        return
    doc = answerer.top(list(context), top)
    if as_json:
        print_json({**doc, **skipped})
        return
    table = Table(show_edge=False, box=None)
    table.add_column("rank", justify="right")
    table.add_column("particle")
    has_text = any("text" in p for p in doc["particles"])
    if has_text:
        table.add_column("text")
    table.add_column("probability", justify="right")
    for p in doc["particles"]:
        row = [str(p["rank"]), p["particle"]]
        if has_text:
            row.append(p.get("text", ""))
        table.add_row(*row, f"{p['probability']:.6f}")
    Console(highlight=False, soft_wrap=True).print(table)


def _batch(
    answerer: _Answerer,
    contexts: Path,
    out: Path,
    top: int,
    err: Console,
    as_json: bool,
    skipped: dict[str, int],
) -> None:
    """Every context of the file, written as it is answered (an interrupted run keeps
    what it wrote; the file is complete only when the command exits 0)."""
    lines = list(read_contexts(contexts))
    t0 = time.perf_counter()
    columns = [TextColumn("inferring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with (
        out.open("w", encoding="utf-8") as fh,
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar,
    ):
        task = bar.add_task("", total=len(lines))
        fh.write("line\trank\tparticle\tprobability\n")
        for number, items in lines:
            try:
                doc = answerer.top(items, top)
            except FocusflowError as exc:
                raise InvalidParameterError(
                    f"{contexts}:{number}: {exc.message} [{exc.code}]"
                ) from None
            for p in doc["particles"]:
                fh.write(f"{number}\t{p['rank']}\t{p['particle']}\t{p['probability']!r}\n")
            bar.advance(task)
    summary = {
        "contexts": len(lines),
        "out": str(out),
        "seconds": time.perf_counter() - t0,
        **skipped,
    }
    if as_json:
        print_json(summary)
    else:
        print(f"{len(lines)} contexts -> {out}", file=sys.stderr)
