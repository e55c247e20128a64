"""The /v1/graph pages spell each particle CID and neuron address once: a client that
asks for the same pages again costs the node their JSON, not 0.7 s of spelling each."""

from __future__ import annotations

from focusflow.api.render import TextCache


def test_the_node_spells_each_key_once():
    spelled = []

    def spell(key: bytes) -> str:
        spelled.append(key)
        return key.hex()

    cache = TextCache(spell)
    table = object()
    keys = [bytes([i]) for i in range(10)]
    assert cache.texts(table, keys, 2, 5) == ["02", "03", "04"]
    assert cache.texts(table, keys, 0, 5) == ["00", "01", "02", "03", "04"]
    assert cache.texts(table, keys, 3, 4) == ["03"]
    assert len(spelled) == 5  # every key once, however often a page is asked
    assert cache.texts(object(), keys, 0, 1) == ["00"] and len(spelled) == 6  # a new table
