"""The light client's verified headers, kept in its home (``<home>/light.json``).

Only headers that verified are stored: the root of trust (the first header
verified from the genesis set, or the one given by ``--trust-height`` and
``--trust-hash``) and those verified since, newest ``MAX_BLOCKS`` kept (the root
and the newest always stay). The file is replaced durably
(``core.home.write_private_file``: temporary file, fsync, rename, directory
fsync), so a crash leaves the old store or the new one.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

from focusflow.core.errors import FocusflowError
from focusflow.core.home import write_private_file
from focusflow.light.errors import NotSyncedError
from focusflow.light.verify import LightBlock, parse_light_block

STORE_FILE = "light.json"
STORE_VERSION = 1
#: Verified headers kept (beyond the root of trust).
MAX_BLOCKS = 256


class LightStore:
    """Verified light blocks by height, for one chain id."""

    def __init__(self, home: Path, chain_id: str) -> None:
        self.path = Path(home) / STORE_FILE
        self.chain_id = chain_id
        self._blocks: dict[int, LightBlock] = {}
        self._heights: list[int] = []
        self.root_height: int | None = None

    @classmethod
    def open(cls, home: Path, chain_id: str | None = None) -> LightStore:
        """The store in ``home``; NotSyncedError if there is none (and no chain id to start)."""
        path = Path(home) / STORE_FILE
        if not path.exists():
            if chain_id is None:
                raise NotSyncedError(f"no light store at {path}: run `focusflow light sync` first")
            return cls(Path(home), chain_id)
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != STORE_VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            store = cls(Path(home), doc["chain_id"])
            # The store holds only what this client verified: reading it back
            # re-checks each block's hash and set hash, not its signatures.
            for item in doc["blocks"]:
                store._put(parse_light_block(item, store.chain_id, signatures=False))
            store.root_height = doc["root_height"]
        except (OSError, ValueError, KeyError, TypeError, FocusflowError) as exc:
            raise NotSyncedError(f"the light store {path} is unreadable ({exc})") from None
        if chain_id is not None and chain_id != store.chain_id:
            raise NotSyncedError(
                f"the light store {path} is for chain {store.chain_id!r}, not {chain_id!r}"
            )
        return store

    def __len__(self) -> int:
        return len(self._heights)

    def _put(self, block: LightBlock) -> None:
        if block.height not in self._blocks:
            bisect.insort(self._heights, block.height)
        self._blocks[block.height] = block

    def add(self, block: LightBlock, root: bool = False) -> None:
        """Record a verified block (``root``: the root of trust)."""
        self._put(block)
        if root or self.root_height is None:
            self.root_height = block.height
        while len(self._heights) > MAX_BLOCKS + 1:
            drop = next(h for h in self._heights if h != self.root_height)
            self._heights.remove(drop)
            del self._blocks[drop]

    def get(self, height: int) -> LightBlock | None:
        return self._blocks.get(height)

    def latest(self) -> LightBlock:
        if not self._heights:
            raise NotSyncedError(f"the light store {self.path} holds no verified header")
        return self._blocks[self._heights[-1]]

    def at_or_below(self, height: int) -> LightBlock | None:
        """The newest verified block at ``height`` or below."""
        i = bisect.bisect_right(self._heights, height) - 1
        return self._blocks[self._heights[i]] if i >= 0 else None

    def save(self) -> None:
        """Write the store durably (the whole file, atomically replaced)."""
        doc = {
            "version": STORE_VERSION,
            "chain_id": self.chain_id,
            "root_height": self.root_height,
            "blocks": [self._blocks[h].to_json() for h in self._heights],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(self.path, json.dumps(doc, separators=(",", ":")), mode=0o644)


__all__ = ["MAX_BLOCKS", "STORE_FILE", "LightStore"]
