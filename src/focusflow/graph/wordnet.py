"""WordNet 3.0 as a cybergraph whose links are typed by the neuron that made them.

The reader parses the Princeton database files (``data.*`` and ``index.*``,
format wndb(5WN)) that Debian's ``wordnet-base`` installs in /usr/share/wordnet,
with plain Python and numpy: no nltk, nothing downloaded at run time.

Particles are the synsets, named as nltk names them (``dog.n.01``: the first
lemma, the POS letter with ``s`` for adjective satellites, and the synset's
1-based place in that lemma's sense list in ``index.<pos>``), and the lemma
words (``domestic dog``: underscores to spaces, lowercased, one particle per
distinct word across parts of speech). A particle's CID is ``cid_of_text`` of
its text, so anyone holding the text finds the particle without a table.

Every pointer of the database is a link between synsets: semantic pointers
join two synsets, and lexical pointers (between two particular words) join
the words' synsets under the same relation name, as WN18RR does. ``sense``
links each word to its synsets and ``lemma`` each synset to its words. Each
relation is its own neuron (``wordnet:<relation>``), so a link's relation,
its semcon, is read off the neuron that made it. Identical
``(source, relation, target)`` links are kept once and the 19 pointers of a
synset to itself are dropped (the chain refuses self-links).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from focusflow.core.cid import raw_cid_bytes
from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.graph.cybergraph import Cybergraph

DEFAULT_DIR = "/usr/share/wordnet"
ENV_DIR = "FOCUSFLOW_WORDNET"
NEURON_PREFIX = "wordnet:"
PARTICLES_HEADER = "cid\ttext\tgloss"

#: Relation names, in this fixed order: a link's ``rel`` is its index here.
#: Pointer relations in the order of wninput(5WN), then ``derived_from_adjective``
#: (an adverb's ``\\``, which for adjectives is ``pertainym``), then the two
#: links between words and synsets.
RELATIONS: tuple[str, ...] = (
    "hypernym",
    "hyponym",
    "instance_hypernym",
    "instance_hyponym",
    "member_holonym",
    "substance_holonym",
    "part_holonym",
    "member_meronym",
    "substance_meronym",
    "part_meronym",
    "attribute",
    "derivationally_related",
    "domain_topic",
    "member_of_domain_topic",
    "domain_region",
    "member_of_domain_region",
    "domain_usage",
    "member_of_domain_usage",
    "entailment",
    "cause",
    "also_see",
    "verb_group",
    "similar_to",
    "participle",
    "pertainym",
    "derived_from_adjective",
    "antonym",
    "sense",
    "lemma",
)
REL = {name: i for i, name in enumerate(RELATIONS)}

#: The data files in reading order, the synset types each may hold, and the
#: POS letter of their index file.
FILES = (("noun", "n"), ("verb", "v"), ("adj", "as"), ("adv", "r"))
#: A pointer's target POS letter -> which data file holds the synset.
TARGET_FILE = {"n": 0, "v": 1, "a": 2, "s": 2, "r": 3}

_DOMAINS = {
    ";c": "domain_topic",
    ";r": "domain_region",
    ";u": "domain_usage",
}
#: Pointer symbols each part of speech may use (wninput(5WN)), by data file.
#: Adjectives and adverbs also carry ``+`` in the 3.0 data.
POINTERS: tuple[dict[str, str], ...] = (
    {
        "!": "antonym",
        "@": "hypernym",
        "@i": "instance_hypernym",
        "~": "hyponym",
        "~i": "instance_hyponym",
        "#m": "member_holonym",
        "#s": "substance_holonym",
        "#p": "part_holonym",
        "%m": "member_meronym",
        "%s": "substance_meronym",
        "%p": "part_meronym",
        "=": "attribute",
        "+": "derivationally_related",
        **_DOMAINS,
        "-c": "member_of_domain_topic",
        "-r": "member_of_domain_region",
        "-u": "member_of_domain_usage",
    },
    {
        "!": "antonym",
        "@": "hypernym",
        "~": "hyponym",
        "*": "entailment",
        ">": "cause",
        "^": "also_see",
        "$": "verb_group",
        "+": "derivationally_related",
        **_DOMAINS,
    },
    {
        "!": "antonym",
        "&": "similar_to",
        "<": "participle",
        "\\": "pertainym",
        "=": "attribute",
        "^": "also_see",
        "+": "derivationally_related",
        **_DOMAINS,
    },
    {
        "!": "antonym",
        "\\": "derived_from_adjective",
        "+": "derivationally_related",
        **_DOMAINS,
    },
)
_POINTER_IDS = tuple({sym: REL[name] for sym, name in table.items()} for table in POINTERS)
#: An adjective's syntactic marker, ``(a)``, ``(p)`` or ``(ip)``, which nltk drops too.
_MARKER = re.compile(r"\([a-z]+\)$")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


@dataclass(frozen=True)
class WordNet:
    """The database as particle and link columns (particle number = array index)."""

    texts: np.ndarray  # object: each particle's text, its content
    is_synset: np.ndarray  # bool
    glosses: np.ndarray  # object: a synset's gloss, '' for lemmas
    src: np.ndarray  # int32 particle numbers
    dst: np.ndarray  # int32
    rel: np.ndarray  # int16 index into RELATIONS

    @property
    def n_particles(self) -> int:
        return len(self.texts)

    @property
    def n_links(self) -> int:
        return len(self.src)

    @cached_property
    def _cids(self) -> np.ndarray:
        return cids_of_texts(self.texts.tolist())

    def cids(self) -> np.ndarray:
        """``cid_of_text(text)`` of every particle (computed once)."""
        return self._cids

    @cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.texts.tolist())}

    def index_of(self, text: str) -> int:
        """The particle number of a synset name or lemma text (KeyError if absent)."""
        return self._index[text]

    def neuron_of(self, rel: int | str) -> str:
        """``wordnet:<relation>``: the neuron that makes every link of the relation."""
        name = RELATIONS[rel] if isinstance(rel, int | np.integer) else rel
        if name not in REL:
            raise KeyError(f"unknown WordNet relation {rel!r}")
        return NEURON_PREFIX + name

    def relation_counts(self) -> dict[str, int]:
        """Links per relation, in RELATIONS order."""
        counts = np.bincount(self.rel, minlength=len(RELATIONS))
        return {name: int(c) for name, c in zip(RELATIONS, counts.tolist(), strict=True)}

    def subset(self, mask: np.ndarray) -> WordNet:
        """The links where ``mask`` is True and the particles they touch, renumbered
        in particle order (what ``--limit`` writes)."""
        mask = self._check_mask(mask)
        src, dst, rel = self.src[mask], self.dst[mask], self.rel[mask]
        used = np.unique(np.concatenate([src, dst]))
        new = np.full(self.n_particles, -1, dtype=np.int32)
        new[used] = np.arange(len(used), dtype=np.int32)
        return WordNet(
            texts=self.texts[used],
            is_synset=self.is_synset[used],
            glosses=self.glosses[used],
            src=new[src],
            dst=new[dst],
            rel=rel,
        )

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self.src.shape:
            raise InvalidParameterError(
                f"a link mask is a bool array of shape {self.src.shape}, "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def to_graph(self, mask: np.ndarray | None = None) -> Cybergraph:
        """The links where ``mask`` is True (all without one) as a Cybergraph.

        Particles are keyed by CID and only those the chosen links touch are
        added (in particle order); every relation's neuron has stake 1, so like
        a bostrom dump without stakes every relation weighs the same in total.
        """
        src, dst, rel = self.src, self.dst, self.rel
        if mask is not None:
            mask = self._check_mask(mask)
            src, dst, rel = src[mask], dst[mask], rel[mask]
        used = np.unique(np.concatenate([src, dst]))
        graph = Cybergraph(require_cids=True)
        ids = np.full(self.n_particles, -1, dtype=np.int64)
        ids[used] = graph.particles.intern(self.cids()[used])
        names = np.array([NEURON_PREFIX + r for r in RELATIONS], dtype=object)
        neuron_ids = graph.add_neurons(names[rel], None)
        graph.add_link_ids(ids[src], ids[dst], neuron_ids)
        return graph


_B32 = bytes.maketrans(bytes(range(32)), b"abcdefghijklmnopqrstuvwxyz234567")


def cids_of_texts(texts: list[str]) -> np.ndarray:
    """``cid_of_text`` of many texts at once, as an object array.

    The same strings (the tests compare every particle's), three times faster:
    base64's encoder costs more than the hashing, so the 36-byte binary CIDs
    are cut into 5-bit groups by numpy and spelled with one ``translate``.
    """
    if not texts:
        return np.empty(0, dtype=object)
    head = raw_cid_bytes(b"")[:4]
    raw = b"".join([head + hashlib.sha256(t.encode("utf-8")).digest() for t in texts])
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 36), axis=1)
    # 288 bits are 57.6 groups: two zero bits complete the last one, as base32 does.
    bits = np.concatenate([bits, np.zeros((len(texts), 2), dtype=np.uint8)], axis=1)
    groups = bits.reshape(len(texts), 58, 5) @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)
    spelled = groups.astype(np.uint8).tobytes().translate(_B32).decode("ascii")
    return np.array(["b" + spelled[i : i + 58] for i in range(0, len(spelled), 58)], dtype=object)


def _data_error(path: Path, line: int, why: str) -> InputFileError:
    return InputFileError(f"{path}:{line}: malformed WordNet data line: {why}")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputFileError(
            f"{path}: no such WordNet file (install Debian's wordnet-base: "
            "apt-get install wordnet-base, or set $FOCUSFLOW_WORDNET)"
        )
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from None


def _read_index(path: Path) -> dict[str, list[str]]:
    """``lemma -> [synset_offset, ...]`` in sense order, from an ``index.<pos>`` file."""
    senses: dict[str, list[str]] = {}
    for n, line in enumerate(_read_lines(path), start=1):
        if not line or line.startswith("  "):
            continue
        t = line.split()
        try:
            count = int(t[2])
        except (IndexError, ValueError):
            raise InputFileError(f"{path}:{n}: malformed WordNet index line") from None
        offsets = t[len(t) - count :]
        if count < 1 or len(t) < 4 + count or not all(len(o) == 8 for o in offsets):
            raise InputFileError(f"{path}:{n}: malformed WordNet index line")
        senses[t[0]] = offsets
    return senses


class _Reader:
    """Accumulates synsets, words and pointers across the four data files."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.glosses: list[str] = []
        self.lines: list[tuple[Path, int]] = []  # where each synset was read
        self.offsets: list[np.ndarray] = []  # per data file, in synset order
        self.lemma_ids: dict[str, int] = {}
        self.word_syn: list[int] = []
        self.word_lemma: list[int] = []
        self.ptr_src: list[int] = []
        self.ptr_rel: list[int] = []
        self.ptr_file: list[int] = []
        self.ptr_off: list[int] = []

    def read_file(self, directory: Path, k: int) -> None:  # noqa: C901, PLR0912, PLR0915 - a parser of the WordNet data format
        stem, types = FILES[k]
        path = directory / f"data.{stem}"
        index_path = directory / f"index.{stem}"
        data = _read_lines(path)
        senses = _read_index(index_path)
        symbols = _POINTER_IDS[k]
        verb = stem == "verb"
        offsets: list[int] = []
        for n, line in enumerate(data, start=1):
            if not line or line.startswith("  "):
                continue
            syn = len(self.names)
            head, bar, gloss = line.partition("|")
            t = head.split()
            if not bar or len(t) < 6:
                raise _data_error(path, n, "too few fields or no '|' before the gloss")
            if len(t[0]) != 8 or not t[0].isdigit():
                raise _data_error(path, n, f"synset_offset {t[0]!r} is not 8 digits")
            ss_type = t[2]
            if len(ss_type) != 1 or ss_type not in types:
                raise _data_error(path, n, f"ss_type {ss_type!r} does not belong in {path.name}")
            try:
                w_cnt = int(t[3], 16)
                p_at = 4 + 2 * w_cnt
                p_cnt = int(t[p_at])
            except (IndexError, ValueError):
                raise _data_error(path, n, "bad w_cnt or p_cnt") from None
            if len(t[3]) != 2 or w_cnt < 1:
                raise _data_error(path, n, f"w_cnt {t[3]!r} is not two hex digits >= 1")
            words = t[4:p_at:2]
            for lex_id in t[5:p_at:2]:
                if len(lex_id) != 1 or lex_id not in "0123456789abcdefABCDEF":
                    raise _data_error(path, n, f"lex_id {lex_id!r} is not one hex digit")
            end = p_at + 1 + 4 * p_cnt
            if len(t) < end:
                raise _data_error(path, n, f"p_cnt says {p_cnt} pointers, fewer follow")
            rest = len(t) - end
            if verb:
                if rest < 1 or not t[end].isdigit() or rest != 1 + 3 * int(t[end]):
                    raise _data_error(path, n, "bad verb frames")
            elif rest:
                raise _data_error(path, n, "extra fields before the gloss")
            for j in range(p_at + 1, end, 4):
                symbol, target, pos, st = t[j : j + 4]
                rel = symbols.get(symbol)
                if rel is None:
                    raise _data_error(path, n, f"pointer {symbol!r} is not one of {stem}'s")
                tfile = TARGET_FILE.get(pos)
                if tfile is None or len(target) != 8 or not target.isdigit():
                    raise _data_error(path, n, f"bad pointer target {target} {pos}")
                if _HEX4.fullmatch(st) is None:
                    raise _data_error(path, n, f"source/target {st!r} is not four hex digits")
                self.ptr_src.append(syn)
                self.ptr_rel.append(rel)
                self.ptr_file.append(tfile)
                self.ptr_off.append(int(target))
            lemmas = [_MARKER.sub("", w) for w in words]
            first = lemmas[0].lower()
            try:
                sense = senses[first].index(t[0]) + 1
            except (KeyError, ValueError):
                raise _data_error(
                    path, n, f"synset {t[0]} is not among {first!r}'s in {index_path.name}"
                ) from None
            self.names.append(f"{first}.{ss_type}.{sense:02d}")
            self.glosses.append(gloss.strip())
            self.lines.append((path, n))
            offsets.append(int(t[0]))
            for word in lemmas:
                text = word.replace("_", " ").lower()
                lemma = self.lemma_ids.setdefault(text, len(self.lemma_ids))
                self.word_syn.append(syn)
                self.word_lemma.append(lemma)
        self.offsets.append(np.array(offsets, dtype=np.int64))

    def pointer_targets(self) -> np.ndarray:
        """The synset number of every pointer's target (offsets are per data file)."""
        files = np.array(self.ptr_file, dtype=np.int64)
        offs = np.array(self.ptr_off, dtype=np.int64)
        target = np.full(len(offs), -1, dtype=np.int64)
        base = 0
        for k, known in enumerate(self.offsets):
            sel = np.flatnonzero(files == k)
            if len(known) and len(sel):
                order = np.argsort(known, kind="stable")
                ordered = known[order]
                at = np.minimum(np.searchsorted(ordered, offs[sel]), len(known) - 1)
                ok = ordered[at] == offs[sel]
                target[sel[ok]] = base + order[at[ok]]
            base += len(known)
        missing = np.flatnonzero(target < 0)
        if len(missing):
            i = int(missing[0])
            path, n = self.lines[self.ptr_src[i]]
            stem = FILES[self.ptr_file[i]][0]
            raise _data_error(
                path, n, f"pointer to synset {self.ptr_off[i]:08d}, which data.{stem} lacks"
            )
        return target


def _dedupe(
    src: np.ndarray, dst: np.ndarray, rel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the first of identical ``(src, rel, dst)`` links, in their order."""
    key = (src.astype(np.int64) << 29 | dst.astype(np.int64)) << 5 | rel.astype(np.int64)
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)
    return src[keep], dst[keep], rel[keep]


def wordnet_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """``directory``, else ``$FOCUSFLOW_WORDNET``, else /usr/share/wordnet."""
    if directory is None:
        directory = os.environ.get(ENV_DIR) or DEFAULT_DIR
    return Path(directory)


def read_wordnet(directory: str | os.PathLike[str] | None = None) -> WordNet:
    """Read the whole database (default: ``$FOCUSFLOW_WORDNET``, else /usr/share/wordnet).

    Links are ordered by the synset they belong to, in file order (nouns,
    verbs, adjectives, adverbs): a synset's ``sense`` links, its ``lemma``
    links, then its pointers. So the first N links are the complete
    neighbourhoods of the first synsets, which is what ``--limit`` loads.
    """
    root = wordnet_dir(directory)
    if not root.is_dir():
        raise InputFileError(
            f"{root}: no WordNet database here (install Debian's wordnet-base: "
            "apt-get install wordnet-base, or set $FOCUSFLOW_WORDNET)"
        )
    reader = _Reader()
    for k in range(len(FILES)):
        reader.read_file(root, k)
    n_syn = len(reader.names)
    lemma_texts = list(reader.lemma_ids)
    clash = set(reader.names).intersection(lemma_texts)
    if clash:
        raise InputFileError(f"{root}: a lemma has a synset's name: {sorted(clash)[0]!r}")
    ptr_dst = reader.pointer_targets()
    ptr_src = np.array(reader.ptr_src, dtype=np.int64)
    word_syn = np.array(reader.word_syn, dtype=np.int64)
    word_lemma = np.array(reader.word_lemma, dtype=np.int64) + n_syn
    words = len(word_syn)
    src = np.concatenate([word_lemma, word_syn, ptr_src])
    dst = np.concatenate([word_syn, word_lemma, ptr_dst])
    rel = np.concatenate(
        [
            np.full(words, REL["sense"], dtype=np.int64),
            np.full(words, REL["lemma"], dtype=np.int64),
            np.array(reader.ptr_rel, dtype=np.int64),
        ]
    )
    owner = np.concatenate([word_syn, word_syn, ptr_src])
    order = np.argsort(owner, kind="stable")
    src, dst, rel = src[order], dst[order], rel[order]
    not_self = src != dst
    src, dst, rel = _dedupe(src[not_self], dst[not_self], rel[not_self])
    n_lemma = len(lemma_texts)
    return WordNet(
        texts=np.array(reader.names + lemma_texts, dtype=object),
        is_synset=np.concatenate([np.ones(n_syn, dtype=bool), np.zeros(n_lemma, dtype=bool)]),
        glosses=np.array(reader.glosses + [""] * n_lemma, dtype=object),
        src=src.astype(np.int32),
        dst=dst.astype(np.int32),
        rel=rel.astype(np.int16),
    )


def particles_file_for(graph_path: str | os.PathLike[str]) -> Path:
    """``<stem>.particles.tsv`` beside a graph file: where its particles' texts are."""
    p = Path(graph_path)
    return p.with_name(f"{p.stem}.particles.tsv")


def _one_line(text: str) -> str:
    """Tabs and line breaks become spaces: the particles file is one record a line."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputFileError(f"{path}: cannot write: {exc}") from None


def write_wordnet(wn: WordNet, out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the links as a bostrom CSV at ``out`` and the particles file beside it.

    The CSV (``neuron,particle_from,particle_to,height,timestamp``, height 0,
    no timestamp) is what ``read_bostrom`` and ``focusflow focus compute``
    read; ``<stem>.particles.tsv`` (``cid<TAB>text<TAB>gloss``) names the CIDs.
    """
    graph_path = Path(out)
    particles_path = particles_file_for(graph_path)
    cids = wn.cids()
    neurons = [NEURON_PREFIX + r for r in RELATIONS]
    rows = [
        f"{neurons[r]},{cids[s]},{cids[d]},0,"
        for s, d, r in zip(wn.src.tolist(), wn.dst.tolist(), wn.rel.tolist(), strict=True)
    ]
    _write_atomic(
        graph_path, "neuron,particle_from,particle_to,height,timestamp\n" + "\n".join(rows) + "\n"
    )
    records = [
        f"{c}\t{_one_line(t)}\t{_one_line(g)}"
        for c, t, g in zip(cids.tolist(), wn.texts.tolist(), wn.glosses.tolist(), strict=True)
    ]
    _write_atomic(particles_path, PARTICLES_HEADER + "\n" + "\n".join(records) + "\n")
    return graph_path, particles_path


def read_particle_texts(path: str | os.PathLike[str]) -> dict[str, str]:
    """``cid -> text`` from a particles file (``cid<TAB>text<TAB>gloss``)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such particles file")
    texts: dict[str, str] = {}
    with p.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n")
        if header != PARTICLES_HEADER:
            raise InputFileError(f"{p}:1: a particles file starts with 'cid<TAB>text<TAB>gloss'")
        for n, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or not fields[0]:
                raise InputFileError(f"{p}:{n}: expected cid<TAB>text<TAB>gloss")
            texts[fields[0]] = fields[1]
    return texts
