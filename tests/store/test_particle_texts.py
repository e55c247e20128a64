"""The node's particle text store on real LMDB files: a text is kept only under the
CID it hashes to, within its size, all of a batch or none of it, durably."""

from __future__ import annotations

import pytest

from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.errors import InvalidParameterError
from focusflow.store.particle_texts import (
    MAX_BATCH,
    MAX_TEXT_BYTES,
    ParticleTexts,
    TextMismatchError,
    TextTooLargeError,
)


def raw(text: str) -> bytes:
    return cid_to_bytes(cid_of_text(text))


def test_texts_are_kept_under_their_own_cid_and_reopen(tmp_path):
    with ParticleTexts(tmp_path / "texts") as store:
        assert store.put([(raw("cats"), "cats"), (raw("cats"), "cats")]) == 1
        assert store.put([(raw("cats"), "cats"), (raw("dogs"), "dogs")]) == 1
        assert store.generation == 2
        assert store.put([(raw("cats"), "cats")]) == 0 and store.generation == 2
    with ParticleTexts(tmp_path / "texts") as store:
        assert store.get(raw("cats")) == "cats"
        assert store.get_many([raw("dogs"), raw("birds")]) == ["dogs", None]
        assert len(store) == 2


def test_a_mismatch_or_an_oversize_text_writes_nothing(tmp_path):
    with ParticleTexts(tmp_path / "texts") as store:
        with pytest.raises(TextMismatchError):
            store.put([(raw("cats"), "cats"), (raw("dogs"), "not dogs")])
        with pytest.raises(TextTooLargeError):
            store.put([(raw("cats"), "cats"), (raw("x"), "x" * (MAX_TEXT_BYTES + 1))])
        with pytest.raises(TextTooLargeError):
            store.put([(raw("e"), "\u00e9" * (MAX_TEXT_BYTES // 2 + 1))])  # 2 bytes each
        with pytest.raises(InvalidParameterError):
            store.put([(raw("c"), "c")] * (MAX_BATCH + 1))
        with pytest.raises(InvalidParameterError):
            store.put([(raw(""), "")])
        assert len(store) == 0 and store.generation == 0
