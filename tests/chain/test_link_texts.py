"""Texts carried by link messages, executed by a real chain in process: every
bad text fails its transaction's receipt with a stable code and changes nothing
but the fee; the texts of a good one are what the committed block yields to the
node's text store, and nothing of them is in the state."""

from __future__ import annotations

import pytest

from focusflow.chain import Msg
from focusflow.modules import MAX_TEXTS_PER_TX, committed_texts
from focusflow.testing.chains import ALICE, account, new_chain, particle, tx

FEE = 1_000_000


def _link(pairs: list[tuple[str, str]], texts: object) -> Msg:
    links = [[particle(a), particle(b)] for a, b in pairs]
    return Msg("link", {"links": links, "texts": texts})


def _words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def _many(prefix: str, n: int) -> Msg:
    """One link message over ``n`` particles (n even) carrying all their texts."""
    words = _words(prefix, n)
    pairs = list(zip(words[::2], words[1::2], strict=True))
    return _link(pairs, [[particle(w), w] for w in words])


CATS = [("cats", "mammals")]


@pytest.mark.parametrize(
    ("msgs", "code"),
    [
        ([_link(CATS, "cats")], "malformed_message"),
        ([_link(CATS, [])], "malformed_message"),
        ([_link(CATS, [[particle("cats")]])], "malformed_message"),
        ([_link(CATS, [["cats", "cats"]])], "malformed_message"),
        ([_link(CATS, [[particle("cats"), ""]])], "malformed_message"),
        (
            [_link(CATS, [[particle("cats"), "cats"], [particle("cats"), "cats"]])],
            "malformed_message",
        ),
        ([_link(CATS, [[particle("cats"), "c" * 4097]])], "text_too_large"),
        ([_link(CATS, [[particle("dogs"), "dogs"]])], "unlinked_text"),
        (
            [_link(CATS, [[particle("cats"), "cats"], [particle("mammals"), "Mammals"]])],
            "text_mismatch",
        ),
        ([_many("a", 34), _many("b", 32)], "over_limit"),
    ],
)
def test_a_bad_text_fails_the_receipt_and_changes_nothing_but_the_fee(tmp_path, msgs, code):
    chain = new_chain(tmp_path)
    before = account(chain, ALICE)
    result = chain.produce_block([tx(ALICE, 0, *msgs, fee=FEE)])
    assert [r.code for r in result.receipts] == [code], result.receipts[0].log
    after = account(chain, ALICE)
    assert (after.balance, after.bonded) == (before.balance - FEE, before.bonded)
    with chain.reader() as r:
        assert list(r.items(b"/graph/links/")) == []
    assert list(committed_texts(result.block.txs, result.receipts)) == []


def test_the_texts_of_a_committed_link_are_yielded_and_not_in_state(tmp_path):
    chain = new_chain(tmp_path)
    texts = [[particle("cats"), "cats"], [particle("mammals"), "mammals"]]
    most = _many("c", MAX_TEXTS_PER_TX)  # exactly the bound: accepted
    plain = Msg("link", {"links": [[particle("x"), particle("y")]]})
    result = chain.produce_block(
        [tx(ALICE, 0, _link(CATS, texts), fee=FEE), tx(ALICE, 1, most, plain, fee=FEE)]
    )
    assert [r.code for r in result.receipts] == ["ok", "ok"], [r.log for r in result.receipts]
    kept = dict(committed_texts(result.block.txs, result.receipts))
    assert kept[particle("cats")] == "cats" and kept[particle("mammals")] == "mammals"
    assert len(kept) == 2 + MAX_TEXTS_PER_TX
    with chain.reader() as r:
        state = list(r.items(b"/"))
    assert any(key.startswith(b"/graph/links/") for key, _ in state)  # the links are
    assert not any(b"mammals" in bytes(key) + bytes(value) for key, value in state)


def test_a_restart_keeps_the_last_blocks_texts_a_crash_lost(tmp_path):
    """A block's texts are kept just after it commits: a node killed in between
    restarts with an empty keep of them, and keeps them again at start; a failed
    transaction's texts are never kept."""
    from focusflow.api.routes_texts import keep_last_block_texts
    from focusflow.store.particle_texts import ParticleTexts

    chain = new_chain(tmp_path / "chain")
    good = [[particle("cats"), "cats"], [particle("mammals"), "mammals"]]
    bad = [[particle("dogs"), "Dogs"]]  # not the text of that CID: the receipt fails
    result = chain.produce_block(
        [
            tx(ALICE, 0, _link(CATS, good), fee=FEE),
            tx(ALICE, 1, _link([("dogs", "wolves")], bad), fee=FEE),
        ]
    )
    assert [r.code for r in result.receipts] == ["ok", "text_mismatch"]
    store = ParticleTexts(tmp_path / "texts")  # the keeper never ran: nothing kept
    try:
        assert keep_last_block_texts(store, chain) == 2
        assert store.get_many([particle("cats"), particle("dogs")]) == ["cats", None]
        assert keep_last_block_texts(store, chain) == 0  # idempotent at every start
    finally:
        store.close()
