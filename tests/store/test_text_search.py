"""The text store's full-text index on real files (SQLite FTS5 beside the LMDB):
without case, whole text first, then by prefix, then by substring; kept with the
texts and rebuilt from them when it is missing; bounded queries."""

from __future__ import annotations

import pytest

from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.errors import InvalidParameterError
from focusflow.store.particle_texts import (
    MAX_QUERY_CHARS,
    MAX_SEARCH_RESULTS,
    SEARCH_FILE,
    ParticleTexts,
)

TEXTS = ["Cats", "cat", "Scatter", "dogs", "Catalonia", "ΣΊΣΥΦΟΣ", 'say "hi"', "a\x00cat"]


def _keep(store: ParticleTexts, texts: list[str]) -> None:
    store.put([(cid_to_bytes(cid_of_text(t)), t) for t in texts])


def _found(store: ParticleTexts, query: str, limit: int = 20) -> list[tuple[str, str]]:
    return [(m.text, m.match) for m in store.search(query, limit)]


@pytest.fixture
def store(tmp_path):
    with ParticleTexts(tmp_path / "texts") as texts:
        _keep(texts, TEXTS)
        yield texts


def test_whole_text_prefix_and_substring_without_case(store):
    assert _found(store, "cats") == [("Cats", "exact")]
    assert _found(store, "CAT") == [
        ("cat", "exact"),
        ("Cats", "prefix"),
        ("Catalonia", "prefix"),
        ("a\x00cat", "substring"),  # shorter texts first
        ("Scatter", "substring"),
    ]
    assert _found(store, "ats") == [("Cats", "substring")]
    assert _found(store, "ca") == [("cat", "prefix"), ("Cats", "prefix"), ("Catalonia", "prefix")]
    assert _found(store, "at") == []  # two characters match by prefix only
    assert _found(store, "σίσυφος") == [("ΣΊΣΥΦΟΣ", "exact")]
    assert _found(store, '"hi"') == [('say "hi"', "substring")]
    assert _found(store, "CAT", limit=2) == [("cat", "exact"), ("Cats", "prefix")]
    # words of the query language are words, and white space alone finds nothing
    for query in ("*", "NEAR(", "AND", "\x00", "   "):
        assert _found(store, query) == []
    match = store.search("cats", 1)[0]
    assert match.cid == cid_to_bytes(cid_of_text("Cats"))


def test_the_index_follows_the_store_and_is_rebuilt_when_missing(tmp_path):
    path = tmp_path / "texts"
    with ParticleTexts(path) as store:
        _keep(store, ["Cats"])
        assert _found(store, "cats") == [("Cats", "exact")]
        _keep(store, ["Cats", "catalogue"])  # one new, one kept already
        assert _found(store, "cat") == [("Cats", "prefix"), ("catalogue", "prefix")]
    for name in (SEARCH_FILE, f"{SEARCH_FILE}-wal", f"{SEARCH_FILE}-shm"):
        (path / name).unlink(missing_ok=True)
    with ParticleTexts(path) as store:
        assert len(store.index) == 2
        assert _found(store, "cat") == [("Cats", "prefix"), ("catalogue", "prefix")]


def test_bad_queries_are_refused(store):
    with pytest.raises(InvalidParameterError, match="at most 256"):
        store.search("x" * (MAX_QUERY_CHARS + 1))
    for limit in (0, MAX_SEARCH_RESULTS + 1):
        with pytest.raises(InvalidParameterError, match="limit"):
            store.search("cats", limit)
    with pytest.raises(InvalidParameterError, match="valid Unicode"):
        store.search("\ud800")
