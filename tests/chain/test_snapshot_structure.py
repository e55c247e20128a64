"""A peer's focus state is bounded, checked and verified before anything uses it.

The focus section of a snapshot is the focus state's byte form
(chain/focus_state_format.py): a CBOR header and named arrays. Each test
here plays a lying peer: it takes a real chain's snapshot (a patched weighted
graph: an overlay and later links), changes one thing in its focus section,
serves it as a self-consistent snapshot (every chunk hash recomputed) and
shows the install is refused with the documented code and a message naming
the field, the store left empty. Sizes are bounded before anything is
allocated: a header that declares billions of links costs nothing. An honest
state of every focus configuration a genesis can name installs, and its
node goes on with the roots of the node that wrote it.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from focusflow.chain import Msg
from focusflow.chain.focus_state_arrays import params_of, params_record
from focusflow.chain.snapshot import SnapshotError, capture_focus, load_focus, restore_snapshot
from focusflow.core.encoding import decode, encode
from focusflow.node import open_chain
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BOB, genesis, link, new_chain, particle, tx
from tests.chain import focus_state_bytes as fb
from tests.chain import golden_chain
from tests.chain.test_snapshot import _data, _empty, _forge, _sections, _snapshot

#: Focus configurations a genesis can name: the three of the golden chains,
#: diffusion with push (fast) and without (exact), float32 storage.
CONFIGS = {
    **{name: golden_chain._focus(focus) for name, focus in golden_chain.FOCUS.items()},
    "diffusion": {"mode": "diffusion"},
    "diffusion-exact": {"mode": "diffusion", "arithmetic": "exact-v1"},
    "float32": {"mode": "tri", "precision": "float32"},
}


def _grow(chain, blocks: int) -> None:
    """A block of 1,500 links (a fresh CSR), then small blocks patched into it
    (an overlay, late links, a stake change's weighed-again neuron)."""
    pairs = [[particle(f"n{i}"), particle(f"n{(i * 7 + 1) % 500}")] for i in range(1500)]
    chain.produce_block([tx(ALICE, 0, Msg("link", {"links": pairs}))])
    for i in range(1, blocks):
        chain.produce_block(
            [
                tx(ALICE, i, link((f"n{i}", f"n{i + 3}"), (f"n{i + 9}", f"x{i}"))),
                tx(BOB, i - 1, link((f"n{i}", "hub"), ("hub", f"n{i * 11}"))),
            ]
        )


def _make(tmp: Path, focus: dict):
    gen = genesis(focus=focus)
    chain = new_chain(tmp / "src", gen)
    _grow(chain, 3)
    manifest = _snapshot(chain, tmp / "snaps")
    return chain, manifest, gen


@pytest.fixture(scope="module")
def tri(tmp_path_factory):
    """The default configuration's chain with a snapshot at block 3, open."""
    tmp = tmp_path_factory.mktemp("tri")
    chain, manifest, gen = _make(tmp, CONFIGS["new"])
    yield chain, manifest, gen, tmp
    chain.close()


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A diffusion chain (fast arithmetic: the engine keeps push's system)."""
    tmp = tmp_path_factory.mktemp("push")
    chain, manifest, gen = _make(tmp, CONFIGS["diffusion"])
    yield chain, manifest, gen, tmp
    chain.close()


def _refused(setup, tmp_path: Path, lie: Callable[[bytes], bytes], code: str, message: str):
    """Serve the snapshot with its focus section replaced by ``lie(section)``
    and see the install refused with ``code`` and ``message`` (a regular
    expression), the store left empty."""
    _, manifest, gen, tmp = setup
    block, state, focus = _sections(tmp, manifest)
    forged, path = _forge(tmp_path, manifest, [block, state, lie(focus)])
    with Store(tmp_path / "dst") as store:
        with pytest.raises(SnapshotError, match=message) as caught:
            restore_snapshot(store, forged, path, gen)
        assert caught.value.code == code, str(caught.value)
        assert str(caught.value).startswith("snapshot focus state")
    assert _empty(tmp_path / "dst")


def _header_dict(raw: bytes) -> dict:
    header, _ = fb.decode(raw)
    return decode(fb.encode_header(header), "header")


def _reheaded(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A lie in the header itself (its arrays as they were), framed and hashed
    as a writer would."""

    def lie(raw: bytes) -> bytes:
        header = _header_dict(raw)
        change(header)
        return fb.framed(encode(header), fb.body_of(raw))

    return lie


def _set(name: str, index: int, value) -> Callable[[bytes], bytes]:
    def change(array):
        array[index] = value
        return array

    return lambda raw: fb.with_array(raw, name, change)


# --- framing and bounds -----------------------------------------------------------


def _counts(**changes):
    def change(header: dict) -> None:
        header["counts"].update(changes)

    return change


def _array_entry(index: int, value):
    def change(header: dict) -> None:
        header["arrays"][index] = value

    return change


def _pad_one(body: bytes) -> bytes:
    """The arrays' bytes with the first padding byte (after the 3 neurons' 60
    bytes, to 64) set."""
    return body[:60] + b"\x01" + body[61:]


FRAMING = {
    "truncated": (
        lambda raw: raw[:-1],
        "snapshot_invalid",
        r"its header's arrays make \d+ \(truncated\)",
    ),
    "a byte too many": (
        lambda raw: raw + b"\0",
        "snapshot_invalid",
        r"is \d+ bytes, its header's arrays make",
    ),
    "not a focus state": (
        lambda raw: b"\x80\x05" + raw[2:],
        "snapshot_invalid",
        "not a focus state",
    ),
    "header longer than allowed": (
        lambda raw: raw[:22] + (1 << 20).to_bytes(4, "big") + raw[26:],
        "snapshot_invalid",
        "header of 1048576 bytes",
    ),
    "digest": (
        lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]),
        "snapshot_invalid",
        "does not hash to its trailing SHA-256",
    ),
    "padding not zero": (
        lambda raw: fb.framed(fb.encode_header(fb.decode(raw)[0]), _pad_one(fb.body_of(raw))),
        "snapshot_invalid",
        "padding after neurons is not zero",
    ),
    "header not canonical CBOR": (
        lambda raw: fb.framed(b"\xa1\x66schema\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", b""),
        "snapshot_invalid",
        "float",
    ),
    "a later schema": (
        _reheaded(lambda h: h.update(schema=9)),
        "snapshot_incompatible",
        "schema 9: this focusflow reads schema 1",
    ),
    "a count past int32": (
        _reheaded(_counts(links=2**31)),
        "snapshot_invalid",
        r"counts.links = 2147483648 is outside \[0, 2147483647\]",
    ),
    "an array of another dtype": (
        _reheaded(_array_entry(2, ["links.src", "<i8", [1512]])),
        "snapshot_invalid",
        "array 2 is",
    ),
    "an array of another shape": (
        _reheaded(_array_entry(0, ["neurons", "|u1", [3, 32]])),
        "snapshot_invalid",
        "array 0 is",
    ),
    "an array list of another length": (
        _reheaded(lambda h: h["arrays"].pop()),
        "snapshot_invalid",
        "lists 11 arrays, the counts give 12",
    ),
    "counts out of order": (
        _reheaded(_counts(base_links=10**6)),
        "snapshot_invalid",
        "counts are not in order",
    ),
    "a header field of another type": (
        _reheaded(lambda h: h["engine"].update(version="3")),
        "snapshot_invalid",
        "engine.version is a str, not a int",
    ),
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_malformed_bytes_are_refused_before_they_are_used(tri, tmp_path, case):
    lie, code, message = FRAMING[case]
    _refused(tri, tmp_path, lie, code, message)


def test_a_header_declaring_billions_of_links_costs_nothing(tri, tmp_path):
    """Counts consistent with each other and with the array list, 2^31 - 1
    links (48 GiB of arrays) in a payload of a few kilobytes: refused by its
    size, before any array is allocated."""
    huge = 2**31 - 1
    lie = _reheaded(_counts(links=huge))

    def consistent(raw: bytes) -> bytes:
        header = _header_dict(raw)
        header["counts"]["links"] = huge
        for entry in header["arrays"]:
            if entry[0].startswith("links."):
                entry[2] = [huge]
        return fb.framed(encode(header), fb.body_of(raw))

    for part in ("a", "b"):
        (tmp_path / part).mkdir()
    tracemalloc.start()
    t0 = time.perf_counter()
    _refused(
        tri, tmp_path / "a", consistent, "snapshot_invalid", r"its header's arrays make \d{11}"
    )
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 << 20 and seconds < 30, (peak, seconds)
    _refused(tri, tmp_path / "b", lie, "snapshot_invalid", "array 2 is")


# --- what the arrays must satisfy ---------------------------------------------------


def _late_link(setup) -> int:
    """A link after the base (the snapshot's later links)."""
    _, manifest, _, tmp = setup
    header, _ = fb.decode(_sections(tmp, manifest)[2])
    return header.counts.base_links + 1


def _base_pair(raw: bytes) -> tuple[int, int]:
    """An internal pair the base holds (the first link's, through the order
    the base's build gave it): found as the base does, by its degree order."""
    from focusflow.graph.snapshot import degree_order

    header, arrays = fb.decode(raw)
    c = header.counts
    src, dst = arrays["links.src"][: c.base_links], arrays["links.dst"][: c.base_links]
    perm = degree_order(c.base_particles, src.astype(np.int64), dst.astype(np.int64))
    return int(perm[src[0]]), int(perm[dst[0]])


def _overlay_in_base(raw: bytes) -> bytes:
    a, b = _base_pair(raw)
    raw = fb.with_array(raw, "overlay.src", lambda s: _put(s, 0, a))
    return fb.with_array(raw, "overlay.dst", lambda s: _put(s, 0, b))


def _overlay_twice(raw: bytes) -> bytes:
    _, arrays = fb.decode(raw)
    raw = fb.with_array(raw, "overlay.src", lambda s: _put(s, 1, arrays["overlay.src"][0]))
    return fb.with_array(raw, "overlay.dst", lambda s: _put(s, 1, arrays["overlay.dst"][0]))


def _put(array, index, value):
    array[index] = value
    return array


def _fewer_entries(raw: bytes) -> bytes:
    header, arrays = fb.decode(raw)
    arrays["matrix.entry_weights"] = arrays["matrix.entry_weights"][:-1]
    counts = replace(header.counts, entries=header.counts.entries - 1)
    return fb.encode(replace(header, counts=counts), arrays)


def _more_particles(raw: bytes) -> bytes:
    header, arrays = fb.decode(raw)
    n = header.counts.particles + 5
    counts = replace(header.counts, particles=n, matrix_particles=n)
    for name in ("matrix.row_weights", "focus", "springs"):
        if name in arrays:
            arrays[name] = np.concatenate([arrays[name], np.zeros(5)])
    return fb.encode(replace(header, counts=counts), arrays)


def _push_on_tri(raw: bytes) -> bytes:
    header, arrays = fb.decode(raw)
    n = header.counts.matrix_particles
    arrays.update(
        {
            "push.x": np.ones(n),
            "push.r": np.zeros(n),
            "push.rsum": np.zeros(1),
            "push.candidates": np.arange(2, dtype=np.int64),
        }
    )
    counts = replace(header.counts, candidates=2)
    return fb.encode(replace(header, counts=counts, push=True), arrays)


def _no_base_particles(raw: bytes) -> bytes:
    header, arrays = fb.decode(raw)
    return fb.encode(replace(header, counts=replace(header.counts, base_particles=3)), arrays)


ARRAYS = {
    "a link past the particles": (
        _set("links.src", 7, 10**6),
        "snapshot_invalid",
        r"src\[7\] = 1000000 out of range \[0, \d+\)",
    ),
    "a self-link": (
        lambda raw: fb.with_array(
            raw, "links.dst", lambda d: _put(d, 5, fb.decode(raw)[1]["links.src"][5])
        ),
        "snapshot_invalid",
        r"src\[5\] is a self-link",
    ),
    "a neuron past the neurons": (
        _set("links.neuron", 3, 99),
        "snapshot_invalid",
        r"neuron\[3\] = 99 out of range \[-1, 3\)",
    ),
    "a negative stake": (
        _set("stakes", 1, -1.0),
        "snapshot_invalid",
        r"stakes\[1\] = -1.0 is not finite and >= 0",
    ),
    "a weight not finite": (
        _set("matrix.entry_weights", 11, np.nan),
        "snapshot_invalid",
        r"matrix.entry_weights\[11\] = nan is not finite and >= 0",
    ),
    "an out-weight below zero": (
        _set("matrix.row_weights", 2, -5.0),
        "snapshot_invalid",
        r"matrix.row_weights\[2\] = -5.0 is not finite and >= 0",
    ),
    "fewer weights than the base's entries": (
        _fewer_entries,
        "snapshot_invalid",
        r"entry_weights has length \d+, not \d+",
    ),
    "a base link past the base's particles": (
        _no_base_particles,
        "snapshot_invalid",
        r"base link sources\[\d+\] = \d+ out of range \[0, 3\)",
    ),
    "an overlay pair the base holds": (
        _overlay_in_base,
        "snapshot_invalid",
        r"overlay_src\[0\] is a pair the base holds",
    ),
    "an overlay pair twice": (
        _overlay_twice,
        "snapshot_invalid",
        r"overlay_src\[\d\] repeats an overlay pair",
    ),
    "an overlay entry past the particles": (
        _set("overlay.dst", 0, 10**6),
        "snapshot_invalid",
        r"overlay_dst\[0\] = 1000000 out of range",
    ),
    "focus not finite": (
        _set("focus", 0, np.inf),
        "snapshot_invalid",
        r"focus\[0\] = inf is not finite",
    ),
    "push where push does not run": (
        _push_on_tri,
        "snapshot_invalid",
        "push is kept where push does not run",
    ),
    "particles the state does not commit": (
        _more_particles,
        "snapshot_root_mismatch",
        r"focus state holds \d+ particles, the state commits \d+",
    ),
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_an_array_that_does_not_fit_is_refused(tri, tmp_path, case):
    lie, code, message = ARRAYS[case]
    _refused(tri, tmp_path, lie, code, message)


def test_a_later_link_whose_pair_is_nowhere_is_refused(tri, tmp_path):
    """A later link moved onto a pair no link made (so neither the base nor
    the overlay holds it): the patch that brought it would have made an
    overlay entry."""
    k = _late_link(tri)

    def lie(raw: bytes) -> bytes:
        _, arrays = fb.decode(raw)
        src, dst = arrays["links.src"], arrays["links.dst"]
        held = set(zip(src.tolist(), dst.tolist(), strict=True))
        free = next(p for p in range(len(src)) if p != src[k] and (int(src[k]), p) not in held)
        return fb.with_array(raw, "links.dst", lambda d: _put(d, k, free))

    _refused(
        tri, tmp_path, lie, "snapshot_invalid", rf"link {k} is in neither the base nor the overlay"
    )


def test_push_candidates_listed_twice_are_refused(pushed, tmp_path):
    def lie(raw: bytes) -> bytes:
        header, arrays = fb.decode(raw)
        cand = np.array([4, 4, 7], dtype=np.int64)
        arrays["push.candidates"] = cand
        counts = replace(header.counts, candidates=3)
        return fb.encode(replace(header, counts=counts), arrays)

    _refused(pushed, tmp_path, lie, "snapshot_invalid", "push candidates lists a particle twice")


def test_a_push_system_missing_where_push_runs_is_refused(pushed, tmp_path):
    def lie(raw: bytes) -> bytes:
        header, arrays = fb.decode(raw)
        for name in ("push.x", "push.r", "push.rsum", "push.candidates"):
            del arrays[name]
        counts = replace(header.counts, candidates=0)
        return fb.encode(replace(header, counts=counts, push=False), arrays)

    _refused(pushed, tmp_path, lie, "snapshot_invalid", "push is missing")


# --- what the roots and the chain decide ---------------------------------------------


def test_a_focus_that_does_not_reproduce_the_root_is_refused(tri, tmp_path):
    _refused(
        tri,
        tmp_path,
        lambda raw: fb.with_array(raw, "focus", lambda phi: phi * (1 + 1e-6)),
        "snapshot_root_mismatch",
        "focus state's focus hashes to [0-9a-f]{16}, block 3 commits [0-9a-f]{16}",
    )


@pytest.mark.parametrize(
    ("changes", "flaw"),
    [
        # The chain at height 3 runs exact-v1 (the golden "new" focus); a state
        # naming exact-v2 is another algorithm's.
        ({"arithmetic": "exact-v2"}, "runs tri/exact-v2, not tri/exact-v1 at height 3"),
        # A state that runs the free-energy model for a chain of the blend is
        # another algorithm's, whatever its bytes otherwise say.
        (
            {"model": "free-energy", "temperature": 0.5},
            r"runs free-energy\(tri, T=0.5\)/exact-v1, not tri/exact-v1 at height 3",
        ),
    ],
    ids=["other-arithmetic", "other-model"],
)
def test_a_state_of_other_focus_parameters_is_refused(tri, tmp_path, changes, flaw):
    """A peer's state naming other focus parameters than the chain's at its
    height is refused, whatever its bytes otherwise say."""

    def lie(raw: bytes) -> bytes:
        header, _ = fb.decode(raw)
        other = replace(params_of(header.params), **changes)
        return fb.changed(raw, params=params_record(other))

    _refused(tri, tmp_path, lie, "snapshot_incompatible", flaw)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "entropy"},
        {"temperature": {"float": float("nan").hex()}},
        {"temperature": "hot"},
        {"local_steps": 10**9},
        {"local_eta": {"float": (-1.0).hex()}},
    ],
)
def test_a_state_naming_a_bad_model_value_is_refused(tri, tmp_path, change):
    def lie(raw: bytes) -> bytes:
        header, _ = fb.decode(raw)
        return fb.changed(raw, params={**header.params, **change})

    _refused(
        tri, tmp_path, lie, "snapshot_incompatible", "focus parameters this focusflow does not"
    )


def test_a_state_naming_a_parameter_this_code_does_not_know_is_refused(tri, tmp_path):
    def lie(raw: bytes) -> bytes:
        header, _ = fb.decode(raw)
        return fb.changed(raw, params={**header.params, "gravity": 1})

    _refused(
        tri, tmp_path, lie, "snapshot_incompatible", "focus parameters this focusflow does not"
    )


def test_a_state_of_another_height_is_refused(tri, tmp_path):
    def lie(raw: bytes) -> bytes:
        header, _ = fb.decode(raw)
        return fb.changed(raw, block=replace(header.block, height=2))

    _refused(tri, tmp_path, lie, "snapshot_root_mismatch", "names another height than block 3's")


def test_error_messages_name_the_array_the_entry_and_the_range(tri, tmp_path):
    """The example of the refusal: which array, which entry, its value, the range."""
    _, manifest, _, tmp = tri
    header, _ = fb.decode(_sections(tmp, manifest)[2])
    n = header.counts.particles
    _refused(
        tri,
        tmp_path,
        _set("links.dst", 1234, 99999),
        "snapshot_invalid",
        re.escape(f"snapshot focus state: dst[1234] = 99999 out of range [0, {n})"),
    )


# --- honest states --------------------------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS))
def test_an_honest_state_of_every_configuration_restores_to_its_own_bytes(tmp_path, config):
    """Before any link, after a fresh CSR and after patched blocks: the byte
    form loads as a peer's would, and the loaded state writes the same bytes."""
    chain = new_chain(tmp_path / "c", genesis(focus=CONFIGS[config]))
    for step in range(3):
        if step == 1:
            _grow(chain, 1)
        elif step == 2:
            for i in range(1, 4):
                chain.produce_block([tx(ALICE, i, link((f"n{i}", f"n{i + 3}"), (f"y{i}", "hub")))])
        raw = capture_focus(chain.focus, chain.head, chain.chain_id)
        path = tmp_path / f"focus{step}.bin"
        path.write_bytes(raw)
        with chain.reader() as r:
            state = dict(r.items(b"/"))
        with open(path, "rb") as f:
            loaded = load_focus(f, len(raw), chain.head, state, chain.genesis)
        assert capture_focus(loaded, chain.head, chain.chain_id) == raw
        header, _ = fb.decode(raw)
        assert header.solved == (step > 0)
    assert header.counts.links > header.counts.base_links and header.counts.overlay
    chain.close()


def test_an_honest_patched_snapshot_installs_and_goes_on_with_the_same_roots(tri, tmp_path):
    src, manifest, gen, tmp = tri
    assert manifest.height == 3
    store = Store(tmp_path / "dst")
    restore_snapshot(store, manifest, _data(tmp, manifest), gen)
    dst = open_chain(store, gen)
    for record in src.records(4):
        assert dst.apply_block(record).block.header == record.block.header
    source_height = src.height
    for i in range(3, 6):
        record = src.produce_block(
            [tx(ALICE, i, link((f"n{i * 5}", f"n{i + 40}"), (f"z{i}", "hub")))]
        ).record
        assert dst.apply_block(record).block.header.focus_root == record.block.header.focus_root
    assert dst.height == src.height == source_height + 3
    assert dst.focus.root == src.focus.root
    dst.close()
