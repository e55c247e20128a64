"""The small parts of the validator runtime, each on its own: the inbox, the
round's messages and the halts (the others run in the runtime's tests)."""

from __future__ import annotations

import asyncio
import types

from focusflow.core.encoding import decode
from focusflow.node import round_messages
from focusflow.node.halts import Halts
from focusflow.node.inbox import Inbox, StartHeight, Synced
from focusflow.node.round_messages import RoundMessages


def test_the_inbox_drops_what_does_not_fit_and_keeps_the_order() -> None:
    inbox = Inbox(2)
    inbox.put(StartHeight())
    inbox.put(Synced())
    inbox.put(StartHeight())  # full: dropped, never waited for
    assert len(inbox) == 2

    async def take() -> list[str]:
        return [(await inbox.get()).kind for _ in range(2)]

    assert asyncio.run(take()) == ["start", "synced"]


def test_round_messages_are_kept_once_and_answered_newest_first_within_the_cap(
    monkeypatch,
) -> None:
    monkeypatch.setattr(round_messages, "MAX_ROUND_RESPONSE", 25)
    held = RoundMessages()
    raws = [bytes([i]) * 10 for i in range(4)]
    for raw in [*raws, raws[1]]:
        held.hold(raw)
    assert held.messages == tuple(raws) and held.is_held(raws[1])
    assert decode(held.response()) == raws[2:]  # the newest two fit 25 bytes, in order
    held.clear()
    assert held.messages == () and not held.is_held(raws[1])


def test_round_messages_are_bounded_in_count(monkeypatch) -> None:
    monkeypatch.setattr(round_messages, "MAX_HELD_MESSAGES", 3)
    held = RoundMessages()
    for i in range(5):
        held.hold(bytes([i]))
    assert held.messages == (b"\x00", b"\x01", b"\x02") and not held.is_held(b"\x04")


def test_a_halt_keeps_its_first_reason_and_tells_its_listeners_each_time() -> None:
    chain = types.SimpleNamespace(upgrade_needed=None)
    halts = Halts(chain)  # type: ignore[arg-type]
    calls: list[str] = []
    halts.on_halt.append(lambda: calls.append("halted"))
    assert not halts.upgrade_halts() and halts.reason is None
    halts.halt("fraud proof for block 7")
    halts.halt("something else")
    assert halts.reason == "fraud proof for block 7" and calls == ["halted", "halted"]


def test_an_upgrade_this_code_cannot_run_halts_the_node() -> None:
    needed = types.SimpleNamespace(message="UPGRADE NEEDED at height 9")
    chain = types.SimpleNamespace(upgrade_needed=needed)
    halts = Halts(chain)  # type: ignore[arg-type]
    assert halts.upgrade_halts() and halts.reason == "UPGRADE NEEDED at height 9"
