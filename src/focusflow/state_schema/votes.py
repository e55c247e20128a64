"""The validators' open votes in the state: economy parameters and focus upgrades.

``/kv/economy/votes/<sha256 of the changes>`` holds ``[changes, [voter keys]]``
and ``/kv/economy/voter/<key>`` the hash of that validator's open vote
(``modules.economy``); ``/kv/focus/upgrade_votes/<height, 8 bytes><sha256 of the
focus overrides>`` holds an upgrade's votes and ``/kv/focus/upgrade_open/<key>``
how many a validator holds open (``modules.upgrades``).
"""

from __future__ import annotations

ECONOMY_VOTES_PREFIX = b"/kv/economy/votes/"
ECONOMY_VOTER_PREFIX = b"/kv/economy/voter/"
UPGRADE_VOTES_PREFIX = b"/kv/focus/upgrade_votes/"
UPGRADE_OPEN_PREFIX = b"/kv/focus/upgrade_open/"
