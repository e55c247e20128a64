"""Chain parameters: limits, prices and the focus settings, fixed at genesis
(the focus algorithm may change at scheduled heights: chain/focus_upgrade.py).

Amounts are integers in the base unit of the single gas token, the one token
that pays fees and is staked. docs/chain.md explains each price.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from focusflow.chain.errors import GenesisError

#: The unit of ``slash_fraction``: 10_000 basis points are the whole stake.
BASIS_POINTS = 10_000
#: Blocks beyond evidence_max_age + epoch_blocks a derived unbonding default adds.
UNBONDING_MARGIN = 100
#: Parameters added after chains were started: left out of ``to_dict`` at their
#: default, so that those chains' genesis hash and state stay what they were.
OMITTED_AT_DEFAULT = (
    "focus_upgrades",
    "focus_upgrade_delay",
    "evm_block_gas_limit",
    "evm_base_fee",
    "proof_space_k_min",
    "proof_time_min_iterations",
    "proof_work_bits",
    "proof_window",
    "proof_fee",
    "pin_period",
)


@dataclass(frozen=True)
class ChainParams:
    max_tx_bytes: int = 1 << 20
    max_msgs_per_tx: int = 64
    max_links_per_tx: int = 10_000
    max_block_bytes: int = 16 << 20
    max_block_txs: int = 10_000
    #: Minimum fee: fee_base + fee_per_byte * encoded size.
    fee_base: int = 100
    fee_per_byte: int = 1
    #: Burned from the sender's balance for every link.
    link_burn: int = 1
    #: Bonded stake each of a neuron's links must carry (links * this <= stake).
    min_link_weight: int = 1
    #: Blocks unstaked stake stays slashable before it is liquid again; must
    #: exceed evidence_max_age + epoch_blocks (see :meth:`check`). A genesis
    #: that leaves it out gets max(300, evidence_max_age + epoch_blocks + 100).
    unbonding_blocks: int = 300
    name_fee: int = 10_000
    max_blob_bytes: int = 256 << 10
    blob_credit_per_byte: int = 1
    #: Duplicate-vote evidence of height h may be included in blocks h+1 ..
    #: h+evidence_max_age; older offences go unpunished (docs/consensus.md).
    evidence_max_age: int = 100
    #: Pieces of evidence one block carries at most.
    max_block_evidence: int = 16
    #: Share of an equivocating validator's bonded stake that is slashed (and
    #: burned), in basis points: floor(bonded * slash_fraction / 10_000).
    slash_fraction: int = 500
    #: Blocks per epoch: the validator set is recomputed from the registered
    #: validators' bonded stakes after every block whose height is a multiple
    #: of this (docs/consensus.md §7).
    epoch_blocks: int = 100
    #: Validators in a set at most (the largest stakes; ties: smaller address).
    max_validators: int = 100
    #: Bonded stake per unit of voting power: power = bonded // power_unit, and
    #: a validator needs at least one unit.
    power_unit: int = 1
    #: Blocks an equivocating validator stays out of the set after its offence.
    jail_blocks: int = 1_000
    #: FocusParams overrides (mode, alpha, weights, tol ...); see docs/focus.md.
    focus: dict[str, Any] = field(default_factory=dict)
    #: Focus algorithm upgrades: ``{"height": h, "focus": {...}}`` entries by
    #: strictly increasing height, each laid over the algorithm before it from
    #: block h on (chain/focus_upgrade.py; the genesis checks them).
    focus_upgrades: list[dict[str, Any]] = field(default_factory=list)
    #: Blocks ahead of the block carrying it that a ``focus.upgrade`` vote's
    #: height must be at least: time for operators to install code that
    #: runs the new algorithm.
    focus_upgrade_delay: int = 100
    #: Gas the Ethereum transactions of one block may use together.
    evm_block_gas_limit: int = 30_000_000
    #: The EVM's base fee per gas, in base units (one base unit is one wei);
    #: burned, as EIP-1559's base fee is.
    evm_base_fee: int = 1
    #: WASM gas one base unit of fee buys (docs/wasm.md).
    wasm_gas_per_unit: int = 1_000
    #: Most gas one WASM call may be given.
    wasm_max_gas: int = 1_000_000_000
    #: Proofs of state (modules.proofs): the smallest plot a proof of space may
    #: come from (Chia's mainnet size), the fewest squarings a proof of time may
    #: claim, the leading zero bits of a proof of work, the blocks a challenge
    #: stays open, and the fee burned by each claim and pin proof (it pays for
    #: the verification every validator runs).
    proof_space_k_min: int = 32
    proof_time_min_iterations: int = 100_000
    proof_work_bits: int = 20
    proof_window: int = 20
    proof_fee: int = 1_000
    #: Blocks between two paid proofs of one pinner for one pin request.
    pin_period: int = 10

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChainParams:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise GenesisError(f"unknown chain parameters: {', '.join(sorted(unknown))}")
        for name, value in raw.items():
            if name == "focus":
                if not isinstance(value, dict):
                    raise GenesisError("params.focus must be an object")
            elif name == "focus_upgrades":
                if not isinstance(value, list):
                    raise GenesisError("params.focus_upgrades must be a list")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise GenesisError(f"params.{name} must be a non-negative integer")
        for name in (
            "epoch_blocks",
            "max_validators",
            "power_unit",
            "focus_upgrade_delay",
            "wasm_gas_per_unit",
            "proof_window",
            "pin_period",
        ):
            if raw.get(name, 1) < 1:
                raise GenesisError(f"params.{name} must be at least 1")
        if raw.get("slash_fraction", 0) > BASIS_POINTS:
            raise GenesisError(f"params.slash_fraction is in basis points: at most {BASIS_POINTS}")
        if "unbonding_blocks" not in raw:
            raw = {**raw, "unbonding_blocks": cls.unbonding_default(raw)}
        return cls(**raw)

    @classmethod
    def unbonding_default(cls, raw: dict[str, Any]) -> int:
        """``unbonding_blocks`` of a genesis that leaves it out: the field's default,
        or more when the evidence window and epoch it names call for it."""
        defaults = cls()
        age: int = raw.get("evidence_max_age", defaults.evidence_max_age)
        epoch: int = raw.get("epoch_blocks", defaults.epoch_blocks)
        return max(defaults.unbonding_blocks, age + epoch + UNBONDING_MARGIN)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Rules between parameters; GenesisError names the broken one.

        Unbonding must outlast the evidence window plus an epoch: stake that
        signed a vote at height h is bonded, or unbonding since h or later,
        until evidence of h can no longer be included (h + evidence_max_age);
        the epoch is a margin for power that only an epoch boundary recomputes
        (docs/consensus.md §7). Otherwise a validator could equivocate, unstake
        and take its stake out before the evidence is included.
        """
        floor = self.evidence_max_age + self.epoch_blocks
        if self.unbonding_blocks <= floor:
            raise GenesisError(
                f"params.unbonding_blocks={self.unbonding_blocks} must exceed "
                f"evidence_max_age + epoch_blocks = {self.evidence_max_age} + "
                f"{self.epoch_blocks} = {floor}: stake could leave before its offence "
                "is punished"
            )

    def to_dict(self) -> dict[str, Any]:
        """Every parameter, but those of OMITTED_AT_DEFAULT at their default:
        this dict is hashed into the genesis hash and committed at genesis,
        so parameters added later must not change either for a genesis that
        does not use them."""
        raw = asdict(self)
        for spec in fields(self):
            if spec.name not in OMITTED_AT_DEFAULT:
                continue
            factory = spec.default_factory
            default = spec.default if factory is MISSING else factory()
            if raw[spec.name] == default:
                del raw[spec.name]
        return raw

    def min_fee(self, tx_bytes: int) -> int:
        return self.fee_base + self.fee_per_byte * tx_bytes
