"""A chain's place in a network of rollups: the genesis's ``interchain`` section.

A network of rollups is one hub chain and ``buckets`` rollup chains. Each
rollup holds the links of one bucket of the graph (``focus.buckets``: by
default the murmur64 of the link's source CID modulo ``buckets``); the hub
merges the rollups' focus into one global snapshot. Every chain's genesis
carries the same registry, so each knows every other by chain id and genesis
validator set (the trust root of its light client of that chain) and any node
can tell which rollup owns a link::

    "interchain": {
      "role": "rollup",                 # or "hub"
      "bucket": 2,                      # a rollup's own bucket (absent on the hub)
      "buckets": 4, "rule": "source",
      "merge_interval_ms": 1000,        # the hub merges at most this often
      "stale_after_ms": 10000,          # a rollup silent this long is marked stale
      "trusting_period_ms": 1209600000, # light clients of the other chains
      "hub": {"chain_id": "...", "genesis_time_ms": 0, "validators": [...]},
      "rollups": [{"bucket": 0, "chain_id": "...", "genesis_time_ms": 0,
                   "validators": [{"public_key": "<64 hex>", "power": 1}]}, ...]
    }

A genesis without the section is a chain on its own (``Genesis.interchain`` is
None), and its hash stays what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from focusflow.chain.errors import GenesisError, TxError
from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.keys import PUBLIC_KEY_SIZE
from focusflow.focus.buckets import MAX_BUCKETS, RULES, BucketRule, link_bucket

__all__ = [
    "BucketRule",
    "ChainRef",
    "Interchain",
    "WrongBucketError",
    "link_bucket",
    "parse_interchain",
]

Role = Literal["hub", "rollup"]

#: The light clients' default trusting period: two weeks, CometBFT's usual
#: two thirds of a three-week unbonding period.
DEFAULT_TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000

_FIELDS = {
    "role", "bucket", "buckets", "rule", "merge_interval_ms", "stale_after_ms",
    "trusting_period_ms", "hub", "rollups",
}  # fmt: skip


@dataclass(frozen=True)
class ChainRef:
    """Another chain of the network as a genesis names it: what a light client
    of it trusts first."""

    chain_id: str
    genesis_time_ms: int
    validators: tuple[tuple[bytes, int], ...]
    #: The rollup's bucket; -1 for the hub.
    bucket: int = -1

    def validator_set(self) -> ValidatorSet:
        return ValidatorSet.create([Validator(k, p) for k, p in self.validators])

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [{"public_key": k.hex(), "power": p} for k, p in self.validators],
        }
        if self.bucket >= 0:
            doc = {"bucket": self.bucket, **doc}
        return doc


@dataclass(frozen=True)
class Interchain:
    role: Role
    bucket: int
    buckets: int
    rule: BucketRule
    merge_interval_ms: int
    stale_after_ms: int
    trusting_period_ms: int
    hub: ChainRef
    rollups: tuple[ChainRef, ...]

    def owner(self, entry: list[bytes]) -> int:
        """The bucket that owns the link ``[from, to(, semcon)]``."""
        return link_bucket(entry, self.buckets, self.rule)

    def rollup(self, bucket: int) -> ChainRef:
        return self.rollups[bucket]

    def counterparties(self) -> tuple[ChainRef, ...]:
        """The chains this one keeps light clients of: the hub keeps one of every
        rollup, a rollup one of the hub."""
        return self.rollups if self.role == "hub" else (self.hub,)

    def by_chain_id(self, chain_id: str) -> ChainRef | None:
        for ref in (self.hub, *self.rollups):
            if ref.chain_id == chain_id:
                return ref
        return None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"role": self.role}
        if self.role == "rollup":
            doc["bucket"] = self.bucket
        doc.update(
            buckets=self.buckets,
            rule=self.rule,
            merge_interval_ms=self.merge_interval_ms,
            stale_after_ms=self.stale_after_ms,
            trusting_period_ms=self.trusting_period_ms,
            hub=self.hub.to_json(),
            rollups=[r.to_json() for r in self.rollups],
        )
        return doc


def _int(raw: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int:
    value = raw.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise GenesisError(f"interchain.{name} must be an integer from {low} to {high}")
    return value


def _chain_ref(raw: Any, where: str, bucket: int = -1) -> ChainRef:
    if not isinstance(raw, dict):
        raise GenesisError(f"{where} must be an object")
    allowed = {"chain_id", "genesis_time_ms", "validators"} | ({"bucket"} if bucket >= 0 else set())
    unknown = set(raw) - allowed
    if unknown:
        raise GenesisError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    chain_id = raw.get("chain_id")
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
        raise GenesisError(f"{where}.chain_id must be a string of 1..64 characters")
    time_ms = raw.get("genesis_time_ms", 0)
    if type(time_ms) is not int or not 0 <= time_ms < 2**63:
        raise GenesisError(f"{where}.genesis_time_ms must be a non-negative integer")
    rows = raw.get("validators")
    if not isinstance(rows, list) or not 0 < len(rows) <= 1024:
        raise GenesisError(f"{where}.validators must be a list of 1..1024")
    validators = []
    for i, v in enumerate(rows):
        if not isinstance(v, dict) or not set(v) <= {"public_key", "power", "name"}:
            raise GenesisError(f"{where}.validators[{i}] must be {{public_key, power}}")
        try:
            key = bytes.fromhex(v.get("public_key", ""))
        except (TypeError, ValueError):
            key = b""
        power = v.get("power", 1)
        if len(key) != PUBLIC_KEY_SIZE or type(power) is not int or not 0 < power < 2**62:
            raise GenesisError(
                f"{where}.validators[{i}]: public_key must be 64 hex digits, power positive"
            )
        validators.append((key, power))
    ref = ChainRef(chain_id, time_ms, tuple(validators), bucket)
    try:
        ref.validator_set()
    except InvalidValidatorSetError as exc:
        raise GenesisError(f"{where}.validators: {exc.message}") from None
    return ref


def parse_interchain(raw: Any, own_chain_id: str) -> Interchain:
    """The checked section (GenesisError naming the first bad field)."""
    if not isinstance(raw, dict):
        raise GenesisError("interchain must be an object")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise GenesisError(f"interchain: unknown fields {', '.join(sorted(unknown))}")
    role = raw.get("role")
    if role not in ("hub", "rollup"):
        raise GenesisError('interchain.role must be "hub" or "rollup"')
    buckets = _int(raw, "buckets", None, 1, MAX_BUCKETS)
    rule = raw.get("rule", "source")
    if rule not in RULES:
        raise GenesisError(f"interchain.rule must be one of {', '.join(RULES)}")
    if role == "rollup":
        bucket = _int(raw, "bucket", None, 0, buckets - 1)
    elif "bucket" in raw:
        raise GenesisError("interchain.bucket is a rollup's: the hub owns no bucket")
    else:
        bucket = -1
    merge = _int(raw, "merge_interval_ms", 1000, 100, 600_000)
    stale = _int(raw, "stale_after_ms", 10 * merge, merge, 3_600_000)
    trusting = _int(raw, "trusting_period_ms", DEFAULT_TRUSTING_PERIOD_MS, 1000, 2**62)
    hub = _chain_ref(raw.get("hub"), "interchain.hub")
    rows = raw.get("rollups")
    if not isinstance(rows, list) or len(rows) != buckets:
        raise GenesisError(f"interchain.rollups must list the {buckets} rollups, one per bucket")
    rollups = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("bucket") != i:
            raise GenesisError(f"interchain.rollups[{i}] must be bucket {i}'s")
        rollups.append(_chain_ref(row, f"interchain.rollups[{i}]", i))
    ids = [hub.chain_id, *(r.chain_id for r in rollups)]
    if len(set(ids)) != len(ids):
        raise GenesisError("interchain: the hub and the rollups need distinct chain ids")
    own = hub.chain_id if role == "hub" else rollups[bucket].chain_id
    if own != own_chain_id:
        raise GenesisError(
            f"interchain: this chain ({own_chain_id}) is not the {role} the section names ({own})"
        )
    return Interchain(role, bucket, buckets, rule, merge, stale, trusting, hub, tuple(rollups))


class WrongBucketError(TxError):
    """A link this chain does not hold: its bucket is another rollup's (the
    message names the owner, so a client sends it there), or the chain is the
    hub, which holds no links."""

    code = "wrong_bucket"

    def __init__(self, message: str, owner: int, owner_chain_id: str | None) -> None:
        super().__init__(message)
        self.owner = owner
        self.owner_chain_id = owner_chain_id
