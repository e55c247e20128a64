"""The EVM's world state as a view of the chain's one state.

py-evm reads and writes accounts through an ``AccountDatabaseAPI``; this one
keeps nothing of its own between transactions. Every value lives in the
chain's key-space:

* balance and nonce: the chain's account record ``/token/acct/<address>``
  (``[balance, nonce, bonded]``), so a balance is one number whether it is
  spent by a native ``send`` or by the EVM (one base unit is one wei), and an
  Ethereum account's nonce is its chain nonce;
* code: ``/vm/evm/code/<address>``, the bytecode;
* storage: ``/vm/evm/store/<address><slot, 32 bytes>``, the value as minimal
  big-endian bytes; a zero value is no key.

Bonded stake is not the EVM's: deleting an account (self-destruct, an empty
touched account) clears its balance, nonce, code and storage and keeps any
bonded stake.

Within a transaction the EVM takes checkpoints and rolls back to them (a
reverted call); writes collect in a journal over the chain state and reach it
only through :meth:`StateAccountDB.flush`, in key order, after the
transaction. There is no Merkle-Patricia trie: the chain's sparse Merkle tree
commits these keys, and ``state_root`` is not an Ethereum state root.
"""

from __future__ import annotations

import enum
from typing import Any

from eth.abc import AccountDatabaseAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.db.journal import get_next_checkpoint
from eth.typing import JournalDBCheckpoint
from eth_hash.auto import keccak
from eth_typing import Address, Hash32

from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode
from focusflow.vm.evm_keys import (
    ACCOUNT_PREFIX,
    STORE_PREFIX,
    code_key,
    encode_word,
    storage_key,
)


class _Missing(enum.Enum):
    """A key's entry that ``_writes`` did not hold (an enum member, so that an
    ``is`` test narrows the type where ``object()`` would not)."""

    MISSING = enum.auto()


_MISSING = _Missing.MISSING


class StateAccountDB(AccountDatabaseAPI):
    """py-evm's account database over a :class:`PendingState`, journaled in memory."""

    def __init__(self, db: Any, state_root: Hash32 = BLANK_ROOT_HASH) -> None:
        if not isinstance(db, PendingState):
            raise TypeError("StateAccountDB reads a chain PendingState")
        self._state = db
        self._root = state_root
        #: Current values of the keys written in this transaction (None: deleted).
        self._writes: dict[bytes, bytes | None] = {}
        #: (key, previous entry of _writes or _MISSING), oldest first.
        self._journal: list[tuple[bytes, bytes | _Missing | None]] = []
        self._warm_addresses: set[bytes] = set()
        self._warm_slots: set[tuple[bytes, int]] = set()
        #: (kind, item) undo entries for the warm sets, beside the journal.
        self._warm_journal: list[tuple[str, Any]] = []
        #: Open checkpoints, oldest first: (id, journal length, warm journal length).
        #: Ids come from py-evm's own counter: the EVM's transient storage keys
        #: its journal by them, and they must never repeat in one process.
        self._checkpoints: list[tuple[int, int, int]] = []
        self._touched: set[bytes] = set()

    # --- the journal ---------------------------------------------------------
    def _get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._state.get(key)

    def _put(self, key: bytes, value: bytes | None) -> None:
        self._journal.append((key, self._writes.get(key, _MISSING)))
        self._writes[key] = value

    def record(self) -> JournalDBCheckpoint:
        cid = get_next_checkpoint()
        self._checkpoints.append((cid, len(self._journal), len(self._warm_journal)))
        return JournalDBCheckpoint(cid)

    def _open(self, checkpoint: JournalDBCheckpoint) -> int:
        """The position of an open checkpoint among ``_checkpoints``."""
        for at in range(len(self._checkpoints) - 1, -1, -1):
            if self._checkpoints[at][0] == checkpoint:
                return at
        raise ValueError(f"checkpoint {checkpoint} is not open")

    def discard(self, checkpoint: JournalDBCheckpoint) -> None:
        at = self._open(checkpoint)
        _, journal_at, warm_at = self._checkpoints[at]
        del self._checkpoints[at:]
        while len(self._journal) > journal_at:
            key, old = self._journal.pop()
            if old is _MISSING:
                del self._writes[key]
            else:
                self._writes[key] = old
        while len(self._warm_journal) > warm_at:
            kind, item = self._warm_journal.pop()
            if kind == "address":
                self._warm_addresses.discard(item)
            else:
                self._warm_slots.discard(item)

    def commit(self, checkpoint: JournalDBCheckpoint) -> None:
        del self._checkpoints[self._open(checkpoint) :]

    def lock_changes(self) -> None:
        """End of a transaction: its writes stay, access lists start empty."""
        self._journal.clear()
        self._checkpoints.clear()
        self._warm_addresses.clear()
        self._warm_slots.clear()
        self._warm_journal.clear()
        self._touched.clear()

    def flush(self) -> None:
        """Write this view's changes into the chain state, in key order; only
        values that differ from the state's are written."""
        for key in sorted(self._writes):
            value = self._writes[key]
            if self._state.get(key) == value:
                continue
            if value is None:
                self._state.delete(key)
            else:
                self._state.put(key, value)
        self._writes.clear()
        self.lock_changes()

    # --- roots: the chain's tree commits the state ---------------------------
    @property
    def state_root(self) -> Hash32:
        return self._root

    @state_root.setter
    def state_root(self, value: Hash32) -> None:
        self._root = value

    def has_root(self, state_root: bytes) -> bool:
        return state_root == self._root

    def make_state_root(self) -> Hash32:
        return self._root

    def persist(self) -> Any:
        self.flush()
        return None

    # --- accounts -------------------------------------------------------------
    def _account(self, address: bytes) -> list[int]:
        raw = self._get(ACCOUNT_PREFIX + address)
        if raw is None:
            return [0, 0, 0]
        balance, nonce, bonded = decode(raw, "account")
        return [balance, nonce, bonded]

    def _set_account(self, address: bytes, record: list[int]) -> None:
        key = ACCOUNT_PREFIX + address
        if record == [0, 0, 0] and self._get(key) is None:
            return
        self._put(key, encode(record))

    def get_balance(self, address: Address) -> int:
        return self._account(address)[0]

    def set_balance(self, address: Address, balance: int) -> None:
        if balance < 0:
            raise ValueError(f"negative balance for {address.hex()}")
        record = self._account(address)
        record[0] = balance
        self._set_account(address, record)

    def get_nonce(self, address: Address) -> int:
        return self._account(address)[1]

    def set_nonce(self, address: Address, nonce: int) -> None:
        record = self._account(address)
        record[1] = nonce
        self._set_account(address, record)

    def increment_nonce(self, address: Address) -> None:
        self.set_nonce(address, self.get_nonce(address) + 1)

    def get_code(self, address: Address) -> bytes:
        return self._get(code_key(address)) or b""

    def set_code(self, address: Address, code: bytes) -> None:
        self._put(code_key(address), bytes(code) if code else None)

    def get_code_hash(self, address: Address) -> Hash32:
        if not self.account_exists(address):
            return Hash32(b"")
        code = self.get_code(address)
        return Hash32(keccak(code)) if code else EMPTY_SHA3

    def delete_code(self, address: Address) -> None:
        self._put(code_key(address), None)

    def get_storage(self, address: Address, slot: int, from_journal: bool = True) -> int:
        key = storage_key(address, slot)
        raw = self._get(key) if from_journal else self._state.get(key)
        return int.from_bytes(raw, "big") if raw else 0

    def set_storage(self, address: Address, slot: int, value: int) -> None:
        self._put(storage_key(address, slot), encode_word(value) if value else None)

    def delete_storage(self, address: Address) -> None:
        prefix = STORE_PREFIX + address
        keys = {k for k, _ in self._state.scan(prefix)}
        keys.update(k for k, v in self._writes.items() if k.startswith(prefix) and v is not None)
        for key in sorted(keys):
            self._put(key, None)

    def account_has_code_or_nonce(self, address: Address) -> bool:
        """Whether creating a contract at ``address`` collides: py-evm asks this
        only for that, so it also answers for storage (EIP-7610: an address with
        storage but no code or nonce is not free either)."""
        return (
            self.get_nonce(address) != 0
            or self.get_code(address) != b""
            or self._has_storage(address)
        )

    def _has_storage(self, address: bytes) -> bool:
        prefix = STORE_PREFIX + address
        if any(v is not None for k, v in self._writes.items() if k.startswith(prefix)):
            return True
        return any(self._writes.get(k, v) is not None for k, v in self._state.scan(prefix))

    def delete_account(self, address: Address) -> None:
        bonded = self._account(address)[2]
        key = ACCOUNT_PREFIX + address
        self._put(key, encode([0, 0, bonded]) if bonded else None)
        self.delete_code(address)
        self.delete_storage(address)

    def account_exists(self, address: Address) -> bool:
        return self._get(ACCOUNT_PREFIX + address) is not None or bool(self.get_code(address))

    def touch_account(self, address: Address) -> None:
        if not self.account_exists(address):
            self._put(ACCOUNT_PREFIX + address, encode([0, 0, 0]))
        self._touched.add(address)

    def account_is_empty(self, address: Address) -> bool:
        balance, nonce, _ = self._account(address)
        return balance == 0 and nonce == 0 and not self.get_code(address)

    # --- access lists (EIP-2929) ----------------------------------------------
    def is_address_warm(self, address: Address) -> bool:
        return address in self._warm_addresses

    def mark_address_warm(self, address: Address) -> None:
        if address not in self._warm_addresses:
            self._warm_addresses.add(address)
            self._warm_journal.append(("address", address))

    def is_storage_warm(self, address: Address, slot: int) -> bool:
        return (address, slot) in self._warm_slots

    def mark_storage_warm(self, address: Address, slot: int) -> None:
        item = (address, slot)
        if item not in self._warm_slots:
            self._warm_slots.add(item)
            self._warm_journal.append(("slot", item))
