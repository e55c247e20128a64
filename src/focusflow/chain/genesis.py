"""The genesis file: the chain's id, first balances, validators and parameters.

JSON, so people can read and edit it::

    {
      "chain_id": "focusflow-devnet",
      "genesis_time_ms": 1763769600000,
      "params": {"unbonding_blocks": 300, "focus": {"mode": "tri"},
                 "focus_upgrades": [{"height": 5000, "focus": {"finish": "bounded"}}]},
      "accounts": [{"address": "focus1...", "balance": 1000000, "stake": 1000}],
      "validators": [{"name": "dev", "public_key": "<64 hex>", "power": 1}]
    }

Its hash (SHA-256 of the canonical CBOR of the parsed content) is stored with
the chain, so a node never resumes a store with a different genesis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusflow.chain.block import MAX_TIME_MS
from focusflow.chain.errors import GenesisError
from focusflow.chain.focus_upgrade import check_overrides, runnable_params
from focusflow.chain.interchain import Interchain, parse_interchain
from focusflow.chain.params import ChainParams
from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import encode
from focusflow.core.errors import InvalidAddressError, InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import PUBLIC_KEY_SIZE, address_bytes, decode_address, encode_address


@dataclass(frozen=True)
class GenesisAccount:
    address: bytes
    balance: int
    stake: int
    #: Balances of tokens other than ``cyb`` (``modules.tokens``): ``{"h": n}``.
    tokens: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "address": encode_address(self.address), "balance": self.balance, "stake": self.stake,
        }  # fmt: skip
        if self.tokens:  # left out when empty: older geneses keep their hash
            doc["tokens"] = dict(sorted(self.tokens.items()))
        return doc


@dataclass(frozen=True)
class GenesisValidator:
    name: str
    public_key: bytes
    power: int

    @property
    def address(self) -> bytes:
        return address_bytes(self.public_key)


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    params: ChainParams
    accounts: tuple[GenesisAccount, ...]
    validators: tuple[GenesisValidator, ...]
    #: The network's certificate authority, whose key the ``members`` hold as
    #: FROST shares (``modules.ca``): checked here for shape, by that module for
    #: its cryptography. None: the chain has no CA.
    ca: dict[str, Any] | None = None
    #: The chain's place in a network of rollups (``chain.interchain``); None:
    #: a chain on its own.
    interchain: Interchain | None = None

    def to_json(self) -> dict[str, Any]:
        doc = self._core_json()
        if self.ca is not None:
            doc["ca"] = self.ca
        if self.interchain is not None:
            doc["interchain"] = self.interchain.to_json()
        return doc

    def _core_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "params": self.params.to_dict(),
            "accounts": [a.to_json() for a in self.accounts],
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex(), "power": v.power}
                for v in self.validators
            ],
        }

    @property
    def hash(self) -> bytes:
        return sha256(encode(self.to_json()))

    def validator_set(self) -> ValidatorSet:
        """The consensus validator set these validators form (its hash goes in headers)."""
        return ValidatorSet.create([Validator(v.public_key, v.power) for v in self.validators])

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Genesis:
        return cls.from_json(read_json(path))

    @classmethod
    def from_json(cls, raw: Any) -> Genesis:
        if not isinstance(raw, dict):
            raise GenesisError("genesis must be a JSON object")
        unknown = set(raw) - {
            "chain_id", "genesis_time_ms", "params", "accounts", "validators", "ca",
            "interchain",
        }  # fmt: skip
        if unknown:
            raise GenesisError(f"unknown genesis fields: {', '.join(sorted(unknown))}")
        chain_id = raw.get("chain_id")
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
            raise GenesisError("chain_id must be a string of 1..64 characters")
        time_ms = _uint(raw.get("genesis_time_ms", 0), "genesis_time_ms")
        if time_ms > MAX_TIME_MS:
            # Every block's time must exceed the genesis time and stay at most
            # MAX_TIME_MS, so no block could ever follow such a genesis.
            raise GenesisError(f"genesis_time_ms {time_ms} is above MAX_TIME_MS={MAX_TIME_MS}")
        params = ChainParams.from_dict(raw.get("params", {}))
        _check_focus(params.focus)
        _check_upgrades(params.focus, params.focus_upgrades)
        accounts = []
        seen: set[bytes] = set()
        for i, a in enumerate(_list(raw, "accounts")):
            where = f"accounts[{i}]"
            if not isinstance(a, dict):
                raise GenesisError(f"{where} must be an object")
            try:
                addr = decode_address(a.get("address"))
            except InvalidAddressError as exc:
                raise GenesisError(f"{where}.address: {exc}") from None
            if addr in seen:
                raise GenesisError(f"{where}: duplicate address")
            seen.add(addr)
            accounts.append(
                GenesisAccount(
                    addr,
                    _uint(a.get("balance", 0), f"{where}.balance"),
                    _uint(a.get("stake", 0), f"{where}.stake"),
                    _tokens(a.get("tokens", {}), f"{where}.tokens"),
                )
            )
        validators = []
        for i, v in enumerate(_list(raw, "validators")):
            where = f"validators[{i}]"
            if not isinstance(v, dict):
                raise GenesisError(f"{where} must be an object")
            try:
                key = bytes.fromhex(v.get("public_key", ""))
            except (TypeError, ValueError):
                key = b""
            if len(key) != PUBLIC_KEY_SIZE:
                raise GenesisError(f"{where}.public_key must be 64 hex digits")
            power = _uint(v.get("power", 1), f"{where}.power")
            if power == 0:
                raise GenesisError(f"{where}.power must be positive")
            validators.append(GenesisValidator(str(v.get("name", f"validator-{i}")), key, power))
        ca = _checked_ca(raw["ca"]) if "ca" in raw else None
        interchain = parse_interchain(raw["interchain"], chain_id) if "interchain" in raw else None
        genesis = cls(chain_id, time_ms, params, tuple(accounts), tuple(validators), ca, interchain)
        try:
            genesis.validator_set()
        except InvalidValidatorSetError as exc:
            raise GenesisError(f"validators: {exc.message}") from None
        return genesis


def read_json(path: Path) -> Any:
    """A genesis file's JSON, not yet checked (GenesisError if it cannot be read)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GenesisError(f"cannot read genesis {path}: {exc}") from None


def _check_focus(focus: dict[str, Any]) -> None:
    """Refuse focus parameters this node cannot run, an arithmetic version it
    does not implement above all: it could not reproduce the chain's roots."""
    try:
        runnable_params(focus)
    except InvalidParameterError as exc:
        raise GenesisError(f"params.focus: {exc.message}") from None


def _check_upgrades(focus: dict[str, Any], upgrades: list[Any]) -> None:
    """Refuse a focus upgrade schedule that is malformed, out of order, or names
    an algorithm this node cannot run (the focus in force from the entry's
    height on: every entry up to it laid over ``params.focus``)."""
    previous = 0
    in_force = dict(focus)
    for i, entry in enumerate(upgrades):
        where = f"params.focus_upgrades[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"height", "focus"}:
            raise GenesisError(f"{where} must be an object with exactly height and focus")
        height = _uint(entry["height"], f"{where}.height")
        if height <= previous:
            raise GenesisError(
                f"{where}.height {height} must be above "
                + (f"the previous entry's {previous}" if previous else "0")
            )
        previous = height
        try:
            overrides = check_overrides(entry["focus"])
        except InvalidParameterError as exc:
            raise GenesisError(f"{where}.focus: {exc.message}") from None
        if not overrides:
            raise GenesisError(f"{where}.focus is empty: an upgrade changes a parameter")
        in_force.update(overrides)
        try:
            runnable_params(in_force)
        except InvalidParameterError as exc:
            raise GenesisError(f"{where} (height {height}): {exc.message}") from None


#: Most members a CA group may have, and the largest root certificate (DER bytes).
MAX_CA_MEMBERS = 64
MAX_CA_ROOT_BYTES = 8192


def _hex(value: Any, size: int | None, where: str, limit: int = 0) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        data = b""
    if not data or (size is not None and len(data) != size) or (limit and len(data) > limit):
        want = f"{2 * size} hex digits" if size is not None else f"hex of at most {limit} bytes"
        raise GenesisError(f"{where} must be {want}")
    return data


def _checked_ca(raw: Any) -> dict[str, Any]:
    """The ``ca`` section's shape: ``{"threshold", "public_key", "root", "members":
    [{"address", "identifier", "verifying_share"}]}`` with hex keys, distinct
    members and identifiers, ``2 <= threshold <= len(members)``."""
    if not isinstance(raw, dict) or set(raw) != {"threshold", "public_key", "root", "members"}:
        raise GenesisError("ca must be {threshold, public_key, root, members}")
    _hex(raw["public_key"], 32, "ca.public_key")
    _hex(raw["root"], None, "ca.root", MAX_CA_ROOT_BYTES)
    members = raw["members"]
    if not isinstance(members, list) or not 0 < len(members) <= MAX_CA_MEMBERS:
        raise GenesisError(f"ca.members must be a list of 1 to {MAX_CA_MEMBERS}")
    addresses, identifiers = set(), set()
    for i, m in enumerate(members):
        where = f"ca.members[{i}]"
        if not isinstance(m, dict) or set(m) != {"address", "identifier", "verifying_share"}:
            raise GenesisError(f"{where} must be {{address, identifier, verifying_share}}")
        try:
            addresses.add(decode_address(m["address"]))
        except InvalidAddressError as exc:
            raise GenesisError(f"{where}.address: {exc}") from None
        identifier = m["identifier"]
        if type(identifier) is not int or not 0 < identifier <= MAX_CA_MEMBERS:
            raise GenesisError(f"{where}.identifier must be 1..{MAX_CA_MEMBERS}")
        identifiers.add(identifier)
        _hex(m["verifying_share"], 32, f"{where}.verifying_share")
    if len(addresses) != len(members) or len(identifiers) != len(members):
        raise GenesisError("ca.members must name distinct addresses and identifiers")
    threshold = raw["threshold"]
    if type(threshold) is not int or not 2 <= threshold <= len(members):
        raise GenesisError("ca.threshold must be 2..len(members)")
    return raw


def _list(raw: dict[str, Any], name: str) -> list[Any]:
    value = raw.get(name, [])
    if not isinstance(value, list):
        raise GenesisError(f"{name} must be a list")
    return value


def _uint(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise GenesisError(f"{name} must be a non-negative integer")
    return value


#: A genesis token denom: as ``modules.tokens``'s base denoms, not ``cyb``
#: (the account's ``balance``) and not a pool's shares.
_GENESIS_DENOM = re.compile(r"[a-z][a-z0-9]{0,15}")


def _tokens(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise GenesisError(f"{where} must be an object of denom: amount")
    out = {}
    for denom, amount in raw.items():
        if not isinstance(denom, str) or not _GENESIS_DENOM.fullmatch(denom) or denom in (
            "cyb", "lp",
        ):  # fmt: skip
            raise GenesisError(f"{where}: {denom!r} is not a token denom (cyb is the balance)")
        out[denom] = _uint(amount, f"{where}.{denom}")
    return {d: v for d, v in out.items() if v}
