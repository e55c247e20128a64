"""A graph file to focus, end to end, as a user runs it: focusflow's CLI against peers' scripts.

Each contender is a whole process, timed from its start to its exit, that
reads the same file, computes weighted PageRank (damping 0.85, uniform
teleport, dangling mass spread uniformly) and writes every node with its
score, highest first, as ``node<TAB>score``:

- ``focusflow focus compute FILE --mode diffusion --tol 1e-6 --out OUT``;
- igraph: ``Graph.Read_Ncol`` + PRPACK ``pagerank`` + the rows written;
- scipy: pandas ``read_csv`` + ``factorize`` + a CSR matrix + power
  iteration to an L1 change below 1e-6 + pandas ``to_csv``;
- networkx: ``read_weighted_edgelist`` + ``pagerank`` (its scipy solver) +
  the rows written (up to ``--nx-max-scale``: at scale 20 it needs minutes
  and tens of GB).

Before the first timed round every contender runs once untimed on the first
input (numba's kernels are compiled into its cache on a fresh install's first
run; the other contenders' files come into the page cache). Runs are paired:
every round runs each contender once, in rotated order, so a
background job slows all of them alike. Medians over ``--repeat`` rounds,
our time over each peer's (``ratio`` < 1 means focusflow is faster) and each
process's peak RSS per edge of the file are printed. Every contender's output
is read back and compared with scipy's (L1 distance of the score vectors
matched by node name) so no one wins by solving something else. igraph keeps
self-loops, which the others drop (focusflow by definition: a self-link carries
no weight), so its distance is larger on R-MAT files, which have them.

Inputs: R-MAT edge lists (Graph500 parameters, 16 edges per node, string ids
``v<n>``, weights with six decimals, self-loops and duplicates kept, as a user's
file may hold them), generated once into ``--dir``; and the bostrom sample
shipped with the package (the peers read it with pandas and weigh each link by
its neuron's stake 1 spread over the neuron's links, as focusflow does).

``--readers`` measures the readers alone, on the shared bostrom sample (read
with ``--skip-invalid``: it holds one row that is not a CID), WordNet (written
once by ``focusflow import wordnet --out``), a generated bostrom-like dump
(``--bostrom-links``: CIDv0 particles, Zipf sources and neurons) and R-MAT files, against igraph's
readers: ``Graph.Read_Ncol`` for edge lists and, for the bostrom format (igraph
has no CSV reader), pandas ``read_csv`` + ``drop_duplicates`` + ``factorize`` +
``Graph(edges)`` with the particles' names (the neuron is read for the duplicates'
test only: ours keeps each link's neuron, so igraph does less). Ours runs three ways:
``parse`` (the cache off), ``first load`` (no cache yet: the parse, the source's
hash and the cache file written) and ``cached`` (the cache file read back;
files under ``MIN_SOURCE_BYTES`` are never cached). In-process: one process per
input with every contender's modules imported first, rounds rotated, medians.
Whole process: each contender a fresh ``python`` that imports and reads once.
Then ``focus compute`` on WordNet end to end with and without the cache, as above.

Run from the repository root::

    python bench/focus_e2e.py                       # scales 16-20 + bostrom, 3 rounds
    python bench/focus_e2e.py --scales 16 17 --repeat 5
    python bench/focus_e2e.py --readers --scales 18 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


# --- peers: each runs in its own process as `python bench/focus_e2e.py --peer NAME IN OUT` ---


def _peer_igraph(path: str, out: str, fmt: str) -> None:
    import igraph as ig

    if fmt == "edges":
        g = ig.Graph.Read_Ncol(path, names=True, weights=True, directed=True)
    else:
        names, src, dst, w = _bostrom_edges(path)
        g = ig.Graph(n=len(names), edges=list(zip(src, dst, strict=True)), directed=True)
        g.vs["name"] = names
        g.es["weight"] = w
    pr = g.pagerank(damping=0.85, weights="weight", implementation="prpack")
    names = g.vs["name"]
    order = sorted(range(len(pr)), key=pr.__getitem__, reverse=True)
    with open(out, "w") as fh:
        fh.write("".join(f"{names[i]}\t{pr[i]!r}\n" for i in order))


def _bostrom_edges(path: str):
    """Names, sources, targets and weights of a bostrom CSV, focusflow's weighting."""
    import pandas as pd

    f = pd.read_csv(path, dtype=str, usecols=["neuron", "particle_from", "particle_to"])
    f = f.drop_duplicates()
    f = f[f["particle_from"] != f["particle_to"]]
    w = 1.0 / f.groupby("neuron")["neuron"].transform("size").to_numpy()
    codes, names = pd.factorize(pd.concat([f["particle_from"], f["particle_to"]]))
    m = len(f)
    return list(names), codes[:m].tolist(), codes[m:].tolist(), w.tolist()


def _scipy_pagerank(n: int, src, dst, w, tol: float = 1e-6):
    import numpy as np
    import scipy.sparse as sp

    a = sp.csr_matrix((w, (src, dst)), shape=(n, n))  # duplicates summed
    out = np.asarray(a.sum(axis=1)).ravel()
    dangling = out == 0
    inv = np.divide(1.0, out, out=np.zeros(n), where=~dangling)
    at = (sp.diags(inv) @ a).T.tocsr()
    x = np.full(n, 1.0 / n)
    for _ in range(1000):
        nxt = 0.85 * (at @ x + x[dangling].sum() / n) + 0.15 / n
        nxt /= nxt.sum()
        done = np.abs(nxt - x).sum() < tol
        x = nxt
        if done:
            break
    return x


def _peer_scipy(path: str, out: str, fmt: str) -> None:
    import numpy as np
    import pandas as pd

    if fmt == "edges":
        f = pd.read_csv(path, sep="\t", header=None, names=["s", "d", "w"], dtype={"w": float})
        f = f[f["s"] != f["d"]]
        codes, names = pd.factorize(pd.concat([f["s"], f["d"]]))
        m = len(f)
        src, dst, w = codes[:m], codes[m:], f["w"].to_numpy()
    else:
        names, src, dst, w = _bostrom_edges(path)
        src, dst, w = np.asarray(src), np.asarray(dst), np.asarray(w)
    x = _scipy_pagerank(len(names), src, dst, w)
    order = np.argsort(-x, kind="stable")
    pd.DataFrame({"n": np.asarray(names, dtype=object)[order], "x": x[order]}).to_csv(
        out, sep="\t", header=False, index=False
    )


def _peer_networkx(path: str, out: str, fmt: str) -> None:
    import networkx as nx

    if fmt == "edges":
        g = nx.read_weighted_edgelist(path, create_using=nx.MultiDiGraph, delimiter="\t")
        g.remove_edges_from(list(nx.selfloop_edges(g)))
        d = nx.DiGraph()
        d.add_nodes_from(g)
        for s, t, w in g.edges(data="weight"):
            if d.has_edge(s, t):
                d[s][t]["weight"] += w
            else:
                d.add_edge(s, t, weight=w)
    else:
        names, src, dst, w = _bostrom_edges(path)
        d = nx.DiGraph()
        d.add_nodes_from(names)
        for s, t, x in zip(src, dst, w, strict=True):
            if d.has_edge(names[s], names[t]):
                d[names[s]][names[t]]["weight"] += x
            else:
                d.add_edge(names[s], names[t], weight=x)
    pr = nx.pagerank(d, alpha=0.85, weight="weight", tol=1e-6 / max(len(d), 1))
    rows = sorted(pr.items(), key=lambda kv: kv[1], reverse=True)
    with open(out, "w") as fh:
        fh.write("".join(f"{k}\t{v!r}\n" for k, v in rows))


PEERS = {"igraph": _peer_igraph, "scipy": _peer_scipy, "networkx": _peer_networkx}


# --- readers: `--readers` -------------------------------------------------------------

READERS = ("igraph", "focusflow parse", "focusflow first load", "focusflow cached")


def _import_reader(name: str, fmt: str) -> None:
    """Everything a reader imports, so an in-process time is the read alone."""
    if name == "igraph":
        import igraph  # noqa: F401

        if fmt == "bostrom":
            import pandas  # noqa: F401
    else:
        import pyarrow.compute
        import pyarrow.csv  # noqa: F401

        from focusflow.graph.importers import read_graph  # noqa: F401


def _cache_of(path: str) -> Path:
    from focusflow.graph.graph_cache import cache_path

    return cache_path(Path(path))


def _read(name: str, fmt: str, path: str) -> int:
    """One read by ``name``; returns the links it holds (checked against the others)."""
    if name == "igraph":
        import igraph as ig

        if fmt == "edges":
            return ig.Graph.Read_Ncol(path, names=True, weights=True, directed=True).ecount()
        import pandas as pd

        # igraph's fastest way in found: pandas' factorize and the edge list
        # (Graph.DataFrame took about 1.4 s more on WordNet; the neuron as a string
        # edge attribute doubled that); the neuron serves the duplicates' test
        cols = ["neuron", "particle_from", "particle_to"]
        f = pd.read_csv(path, dtype=str, usecols=cols).drop_duplicates()
        codes, names = pd.factorize(pd.concat([f["particle_from"], f["particle_to"]]))
        m = len(f)
        edges = list(zip(codes[:m].tolist(), codes[m:].tolist(), strict=True))
        g = ig.Graph(n=len(names), edges=edges, directed=True)
        g.vs["name"] = list(names)
        return g.ecount()
    from focusflow.graph.importers import read_graph

    if name == "focusflow first load":
        _cache_of(path).unlink(missing_ok=True)
    cache = name != "focusflow parse"
    return read_graph(path, fmt, skip_invalid=True, cache=cache).n_links


def _reader_rounds(fmt: str, path: str, rounds: int) -> None:
    """In one process: every reader's modules imported, then ``rounds`` rotated
    rounds of one read each; prints ``{reader: [seconds, ...]}`` as JSON."""
    import json

    for name in READERS:
        _import_reader(name, fmt)
    _read("focusflow first load", fmt, path)  # the cache file exists for "cached"
    times: dict[str, list[float]] = {n: [] for n in READERS}
    links: dict[str, int] = {}
    for r in range(rounds):
        for name in READERS[r % len(READERS) :] + READERS[: r % len(READERS)]:
            t0 = time.perf_counter()
            links[name] = _read(name, fmt, path)
            times[name].append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "links": links}))


def bostrom_file(directory: Path, links: int) -> Path:
    """A bostrom dump's shape at ``links`` rows, written once: CIDv0 particles
    (a fifth as many as links, sources Zipf-distributed), 5,000 neurons
    (Zipf), a timestamp column, and the repeats and self-links such draws give."""
    path = directory / f"bostrom-qm-{links}.csv"
    if path.exists():
        return path
    import random

    import numpy as np

    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    rand = random.Random(links)

    def cidv0() -> str:
        value = int.from_bytes(b"\x12\x20" + rand.randbytes(32), "big")
        digits = []
        while value:
            value, d = divmod(value, 58)
            digits.append(alphabet[d])
        return "".join(reversed(digits))

    rng = np.random.default_rng(links)
    n_particles = max(links // 5, 2)
    cids = [cidv0() for _ in range(n_particles)]
    neurons = [f"bostrom1{rand.randbytes(19).hex()}" for _ in range(5000)]
    src = (rng.zipf(1.3, links) % n_particles).tolist()
    dst = rng.integers(0, n_particles, links).tolist()
    who = (rng.zipf(1.5, links) % len(neurons)).tolist()
    tmp = path.with_suffix(".part")
    with tmp.open("w") as fh:
        fh.write("neuron,particle_from,particle_to,height,timestamp\n")
        fh.writelines(
            f"{neurons[n]},{cids[a]},{cids[b]},{i},2021-11-05T14:00:00\n"
            for i, (n, a, b) in enumerate(zip(who, src, dst, strict=True))
        )
    tmp.rename(path)
    return path


def wordnet_file(directory: Path) -> Path:
    """WordNet as ``focusflow import wordnet --out`` writes it, once."""
    path = directory / "wordnet.csv"
    if not path.exists():
        cmd = [sys.executable, "-m", "focusflow", "import", "wordnet", "--out", str(path)]
        subprocess.run(cmd, check=True, capture_output=True)
    return path


def _ratio(peer: float, ours: float) -> str:
    return f"{peer / ours:.2f}" if math.isfinite(peer) and math.isfinite(ours) and ours else ""


def bench_readers(label: str, path: Path, fmt: str, args) -> None:
    """A file's readers in process and as whole processes, side by side."""
    import json

    size = path.stat().st_size
    print(f"### {label}: {edge_count(path, fmt):,} lines ({size / 2**20:.1f} MiB)", flush=True)
    cmd = [sys.executable, str(HERE), "--reader-rounds", fmt, str(path), str(args.repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode:
        print(f"  ! in-process rounds failed: {proc.stderr[-2000:]}", flush=True)
        return
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    inproc = {n: statistics.median(t) for n, t in doc["times"].items()}
    print(f"links held: {doc['links']}")
    # whole processes: a fresh interpreter that imports and reads once
    # a file under the cache's size limit is parsed by every focusflow reader alike
    names = READERS if size >= args.min_cache_bytes else READERS[:2]
    whole: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name == "focusflow cached":
                _read("focusflow first load", fmt, str(path))
            cmd = [sys.executable, str(HERE), "--read-once", name, fmt, str(path)]
            secs, _, code = run(cmd, args.timeout)
            whole[name].append(secs if code == 0 else float("inf"))
    print("| reader | in process s (median) | igraph/ours | whole process s | igraph/ours |")
    print("|---|---:|---:|---:|---:|")
    peer_in, peer_whole = inproc["igraph"], statistics.median(whole["igraph"])
    for name in names:
        w = statistics.median(whole[name])
        print(
            f"| {name} | {inproc[name]:.4f} | "
            f"{'' if name == 'igraph' else _ratio(peer_in, inproc[name])} | {w:.3f} | "
            f"{'' if name == 'igraph' else _ratio(peer_whole, w)} |",
            flush=True,
        )


def focus_compute_load(path: Path, fmt: str, args) -> None:
    """``focus compute --json``'s own split of its time, cache off and on."""
    import json

    print(f"### focus compute {path.name}: where the time goes (--json seconds)", flush=True)
    print("| run | wall s | load s | load share | solve and the rest s |")
    print("|---|---:|---:|---:|---:|")
    base = [sys.executable, "-m", "focusflow", "focus", "compute", str(path), "--format", fmt]
    base += ["--skip-invalid", "--mode", "diffusion", "--tol", "1e-6", "--json", "--top", "0"]
    for label, extra in (("--no-cache", ["--no-cache"]), ("cached", [])):
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(base + extra, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode:
                print(f"  ! {label}: {proc.stderr[-2000:]}")
                break
            load = json.loads(proc.stdout)["seconds"]["load"]
            print(f"| {label} | {wall:.2f} | {load:.2f} | {load / wall:.0%} | {wall - load:.2f} |")


# --- inputs -------------------------------------------------------------------------------


def rmat_file(directory: Path, scale: int) -> Path:
    """An R-MAT edge list at ``scale``, written once (string ids, six-decimal weights)."""
    path = directory / f"rmat{scale}.tsv"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    sys.path.insert(0, str(ROOT / "src"))
    from focusflow.graph.generators import rmat_edges

    src, dst, w = rmat_edges(scale, seed=scale)
    ids = pc.cast(pa.array(np.arange(1 << scale)), pa.string())
    names = pc.binary_join_element_wise("v", ids, "")
    table = pa.table(
        {
            "s": names.take(pa.array(src)),
            "d": names.take(pa.array(dst)),
            "w": pc.round(pa.array(w), 6),
        }
    )
    tmp = path.with_suffix(".part")
    pcsv.write_csv(
        table,
        tmp,
        write_options=pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
    )
    tmp.rename(path)
    return path


def edge_count(path: Path, fmt: str) -> int:
    with path.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    return lines - (1 if fmt == "bostrom" else 0)


# --- running ------------------------------------------------------------------------------


def run(cmd: list[str], timeout: float) -> tuple[float, int, int]:
    """``(seconds, peak RSS bytes, exit status)`` of one whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return float("inf"), usage.ru_maxrss * 1024, -9
        time.sleep(0.002)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code:
        err = proc.stderr.read().decode(errors="replace")[-2000:]
        print(f"  ! {' '.join(cmd[:4])} exited {code}: {err}", file=sys.stderr)
    proc.stderr.close()
    return seconds, usage.ru_maxrss * 1024, code


def read_scores(path: Path) -> dict[str, float]:
    import pandas as pd

    # a third column (the particle's text, from a particles file beside the input) is left out
    f = pd.read_csv(
        path, sep="\t", header=None, usecols=[0, 1], names=["k", "v"], dtype={"k": str}, quoting=3
    )
    return dict(zip(f["k"], f["v"], strict=True))


def l1(a: dict[str, float], b: dict[str, float]) -> float:
    keys = a.keys() | b.keys()
    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


def commands(path: Path, fmt: str, out: Path, names: list[str]) -> dict[str, list[str]]:
    py = sys.executable
    ours = [py, "-m", "focusflow", "focus", "compute", str(path), "--format", fmt]
    ours += ["--mode", "diffusion", "--tol", "1e-6", "--skip-invalid"]
    # after the untimed first run the default reads the graph's cache file
    # (files of MIN_SOURCE_BYTES and more); --no-cache parses every time
    cmds = {
        "focusflow": [*ours, "--out", str(out / "focusflow.tsv")],
        "focusflow --no-cache": [*ours, "--no-cache", "--out", str(out / "nocache.tsv")],
    }
    for name in names:
        cmds[name] = [py, str(HERE), "--peer", name, fmt, str(path), str(out / f"{name}.tsv")]
    return cmds


def bench_input(label: str, path: Path, fmt: str, peers: list[str], args) -> list[str]:
    edges = edge_count(path, fmt)
    lines = [f"### {label}: {edges:,} edges ({path.stat().st_size / 2**20:.1f} MiB)"]
    with tempfile.TemporaryDirectory(prefix="focus-e2e-") as tmp:
        out = Path(tmp)
        cmds = commands(path, fmt, out, peers)
        names = list(cmds)
        if args.warm:
            args.warm = False
            for name in names:
                run(cmds[name], args.timeout)
        times: dict[str, list[float]] = {n: [] for n in names}
        rss: dict[str, int] = dict.fromkeys(names, 0)
        for r in range(args.repeat):
            rotated = names[r % len(names) :] + names[: r % len(names)]
            for name in rotated:
                secs, peak, code = run(cmds[name], args.timeout)
                times[name].append(secs if code == 0 else float("inf"))
                rss[name] = max(rss[name], peak)
        ref = read_scores(out / "scipy.tsv") if (out / "scipy.tsv").exists() else None
        ours = statistics.median(times["focusflow"])
        lines.append(
            "| contender | median s | runs | peak MiB | bytes/edge | ours/peer | L1 vs scipy |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for name in names:
            med = statistics.median(times[name])
            runs = " ".join(f"{t:.2f}" for t in times[name])
            failed = not math.isfinite(med)
            ratio = (
                ""
                if name.startswith("focusflow")
                else ("failed" if failed else f"{ours / med:.2f}")
            )
            diff = ""
            written = out / ("nocache.tsv" if name == "focusflow --no-cache" else f"{name}.tsv")
            if ref is not None and written.exists():
                diff = f"{l1(read_scores(written), ref):.1e}"
            lines.append(
                f"| {name} | {med:.3f} | {runs} | {rss[name] / 2**20:.0f} | "
                f"{rss[name] / max(edges, 1):.0f} | {ratio} | {diff} |"
            )
        for mine in ("focusflow", "focusflow --no-cache"):
            t_mine = statistics.median(times[mine])
            for name in peers:
                med = statistics.median(times[name])
                if math.isfinite(med) and math.isfinite(t_mine):
                    lines.append(f"{mine} vs {name}: {med / t_mine:.2f}x faster end to end")
                else:
                    lines.append(f"{mine} vs {name}: no ratio (a run failed or timed out)")
    for line in lines:
        print(line, flush=True)
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        name, fmt, path, out = sys.argv[2:6]
        PEERS[name](path, out, fmt)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--read-once":
        name, fmt, path = sys.argv[2:5]
        if name == "focusflow cached" and not _cache_of(path).exists():
            sys.exit("no cache file to read")
        _read(name, fmt, path)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--reader-rounds":
        _reader_rounds(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--scales", type=int, nargs="*", default=[16, 17, 18, 19, 20])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nx-max-scale", type=int, default=17)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--no-bostrom", action="store_true")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "focusflow-e2e")
    ap.add_argument("--readers", action="store_true", help="the readers alone (see above)")
    ap.add_argument(
        "--bostrom-links",
        type=int,
        default=1_000_000,
        help="with --readers: rows of a generated bostrom-like dump (CIDv0 particles); 0: none",
    )
    ap.add_argument(
        "--only", nargs="*", default=[], help="with --readers: inputs whose label holds a word"
    )
    ap.add_argument(
        "--readers-only",
        action="store_true",
        help="with --readers: leave out focus compute on WordNet",
    )
    ap.add_argument(
        "--sample",
        type=Path,
        default=ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv",
        help="the bostrom sample for --readers (default: the one the package ships)",
    )
    args = ap.parse_args()
    peers = ("igraph", "networkx", "pandas", "scipy")
    missing = [m for m in peers if not importlib.util.find_spec(m)]
    if missing:
        sys.exit(f"peers missing: {', '.join(missing)} (pip install -e '.[bench]')")
    args.warm = True
    args.dir.mkdir(parents=True, exist_ok=True)
    print(
        f"# focus_e2e {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, repeat {args.repeat}",
        flush=True,
    )
    if args.readers:
        sys.path.insert(0, str(ROOT / "src"))
        from focusflow.graph.graph_cache import MIN_SOURCE_BYTES

        args.min_cache_bytes = MIN_SOURCE_BYTES
        wordnet = wordnet_file(args.dir)
        inputs = [("bostrom sample", args.sample, "bostrom"), ("WordNet", wordnet, "bostrom")]
        if args.bostrom_links:
            dump = bostrom_file(args.dir, args.bostrom_links)
            inputs.append((f"bostrom-like, {args.bostrom_links:,} rows", dump, "bostrom"))
        inputs += [(f"R-MAT scale {s}", rmat_file(args.dir, s), "edges") for s in args.scales]
        for label, path, fmt in inputs:
            if not args.only or any(word in label for word in args.only):
                bench_readers(label, path, fmt, args)
        if not args.readers_only:
            focus_compute_load(wordnet, "bostrom", args)
            bench_input("WordNet", wordnet, "bostrom", ["igraph", "scipy"], args)
        return
    if not args.no_bostrom:
        sample = ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv"
        bench_input("bostrom sample", sample, "bostrom", list(PEERS), args)
    for scale in args.scales:
        path = rmat_file(args.dir, scale)
        peers = [p for p in PEERS if p != "networkx" or scale <= args.nx_max_scale]
        bench_input(f"R-MAT scale {scale}", path, "edges", peers, args)


if __name__ == "__main__":
    main()
