"""The Reed–Solomon codec: any k of 2k shards rebuild the codeword, in both fields."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.errors import InvalidParameterError
from focusflow.da.errors import RepairError
from focusflow.da.leopard import GF8, GF16, decode, encode, field_for


def _codeword(k: int, size: int, seed: int) -> np.ndarray:
    data = np.random.default_rng(seed).integers(0, 256, (k, size), dtype=np.uint8)
    return np.concatenate([data, encode(data)])


def test_field_choice_follows_rsmt2d():
    assert field_for(1) is GF8 and field_for(128) is GF8
    assert field_for(256) is GF16 and field_for(512) is GF16


def test_field_tables_are_inverse():
    for field in (GF8, GF16):
        nonzero = np.arange(1, field.modulus + 1)
        assert np.array_equal(field.exp[field.log[nonzero]], nonzero)


@settings(max_examples=40, deadline=None)
@given(
    log_k=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_any_k_of_2k_shards_rebuild_the_codeword(log_k, seed, data):
    k = 1 << log_k
    codeword = _codeword(k, 64, seed)
    keep = data.draw(st.lists(st.integers(0, 2 * k - 1), min_size=k, max_size=2 * k, unique=True))
    present = np.zeros(2 * k, dtype=bool)
    present[keep] = True
    damaged = codeword.copy()
    damaged[~present] = 0xAA
    assert np.array_equal(decode(damaged, present), codeword)


@pytest.mark.parametrize("k", [256, 512])
def test_gf16_codewords_rebuild(k):
    codeword = _codeword(k, 64, k)
    rng = np.random.default_rng(k)
    present = np.zeros(2 * k, dtype=bool)
    present[rng.choice(2 * k, k, replace=False)] = True
    assert np.array_equal(decode(np.where(present[:, None], codeword, 0), present), codeword)


def test_gf16_symbol_layout_splits_low_and_high_bytes():
    # A GF(2^16) symbol's low byte sits in the first and its high byte in the
    # second half of each 64-byte block: a data change in byte i (< 32) of the
    # block and one in byte i + 32 touch the same symbols' parity.
    k = 256
    base = np.zeros((k, 64), dtype=np.uint8)
    lo, hi = base.copy(), base.copy()
    lo[0, 5] = 1
    hi[0, 37] = 1
    touched_lo = np.nonzero(encode(lo).any(axis=0))[0]
    touched_hi = np.nonzero(encode(hi).any(axis=0))[0]
    assert set(touched_lo) <= {5, 37} and set(touched_hi) <= {5, 37}


def test_too_few_shards_is_a_typed_error():
    codeword = _codeword(4, 64, 1)
    present = np.array([True, False, True, False, False, True, False, False])
    with pytest.raises(RepairError) as err:
        decode(codeword, present)
    assert err.value.code == "da_unrepairable"


@pytest.mark.parametrize(("k", "size"), [(3, 64), (4, 65)])
def test_bad_shapes_are_rejected(k, size):
    with pytest.raises(InvalidParameterError):
        encode(np.zeros((k, size), dtype=np.uint8))


def test_the_transforms_compile_once_per_field_and_direction(tmp_path):
    """The layers get their sizes as int64 values: a constant 0 or 1 (typed by
    numba as a literal) made it compile each transform and layer again, 12
    layer compiles instead of 4 and 8.3 s instead of 5.3 s on a cold cache.
    Compiled in a child with an empty cache: one loaded from the cache lists
    no compiled callees."""
    from tests.helpers import run_with_numba_cache

    probe = (
        "import numpy as np\n"
        "from numba import types\n"
        "from focusflow.da import leopard\n"
        "rng = np.random.default_rng(3)\n"
        "for k, size in ((16, 64), (512, 8192)):\n"  # GF8 and GF16, one slice and several
        "    data = rng.integers(0, 256, (k, size), dtype=np.uint8)\n"
        "    codeword = np.vstack([data, leopard.encode(data)])\n"
        "    present = np.ones(2 * k, dtype=bool)\n"
        "    present[: k // 2] = False\n"
        "    assert (leopard.decode(codeword, present) == codeword).all()\n"
        "for fn in (leopard._layer, leopard._fft_slice, leopard._ifft_slice):\n"
        "    lit = [s for s in fn.overloads\n"
        "           if any(isinstance(t, types.IntegerLiteral) for t in s)]\n"
        "    print(fn.__name__, len(fn.overloads), len(lit))\n"
    )
    lines = run_with_numba_cache(probe, tmp_path).split("\n")
    assert lines[:3] == ["_layer 4 0", "_fft_slice 2 0", "_ifft_slice 2 0"], lines
