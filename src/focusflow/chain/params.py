"""Chain parameters: the kernel's limits, prices and focus settings, fixed at
genesis (the focus algorithm may change at scheduled heights:
chain/focus_upgrade.py), and the modules' own sections.

The kernel's parameters are :class:`ChainParams`' fields. Each module's are a
section it declares (``chain.module_params``): WASM's gas, the proofs' prices,
the exchange's fees and breakers, the economy's split and rewards. The genesis
spells them all flat, as it always has; :meth:`ChainParams.from_dict` hands
each section its names, and :meth:`ChainParams.to_dict` puts them back, so the
genesis hash is the flat dict it was.

Amounts are integers in base units: of ``cyb``, the token that is staked and,
with ``economics`` 0, pays fees; with ``economics`` 1 fees are paid in ``h``
(docs/economics.md). docs/chain.md explains each price.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from focusflow.chain.errors import GenesisError
from focusflow.chain.module_params import BASIS_POINTS, ModuleParams, sections
from focusflow.consensus.engine import EngineConfig
from focusflow.core.errors import InvalidParameterError

#: Blocks beyond evidence_max_age + epoch_blocks a derived unbonding default adds.
UNBONDING_MARGIN = 100
#: The kernel's part of the economy (docs/economics.md): which token pays fees,
#: and the base fee's market (``chain.fees``); all added after chains were started.
ECONOMY_PARAMS = (
    "economics",
    "gas_target_bytes",
    "base_fee_change_denominator",
    "base_fee_min",
)
#: The kernel's parameters the validators may change by vote (``chain.governed``);
#: the modules' sections name theirs (``ModuleParams.GOVERNED``).
GOVERNED = tuple(name for name in ECONOMY_PARAMS if name != "economics")
#: Parameters added after chains were started: left out of ``to_dict`` at their
#: default, so that those chains' genesis hash and state stay what they were.
OMITTED_AT_DEFAULT = (
    "consensus",
    "focus_upgrades",
    "focus_upgrade_delay",
    "evm_block_gas_limit",
    "evm_base_fee",
    *ECONOMY_PARAMS,
)
#: Kernel parameters that must be at least 1.
POSITIVE = (
    "epoch_blocks",
    "max_validators",
    "power_unit",
    "focus_upgrade_delay",
    "gas_target_bytes",
    "base_fee_change_denominator",
    "base_fee_min",
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
    #: The EVM's two parameters are the kernel's: the chain admits Ethereum
    #: transactions itself (``chain.eth_tx``'s static check, which the mempool
    #: runs), so it reads them without the EVM module.
    #: Gas the Ethereum transactions of one block may use together.
    evm_block_gas_limit: int = 30_000_000
    #: The EVM's base fee per gas, in base units (one base unit is one wei);
    #: burned, as EIP-1559's base fee is.
    evm_base_fee: int = 1
    #: The economy (docs/economics.md). 0: one token (``cyb``) pays fees, all of
    #: them to the proposer. 1: gas is paid in ``h`` under an EIP-1559 base fee
    #: per byte, whose part of each fee is split between CYB buyback-and-burn
    #: and H rewards to bonded stake by the premium of H over its par.
    economics: int = 0
    #: Encoded transaction bytes per block the base fee steers towards.
    gas_target_bytes: int = 1 << 20
    #: The base fee moves by at most 1/this per block (EIP-1559's 8).
    base_fee_change_denominator: int = 8
    #: The base fee per byte never falls below this.
    base_fee_min: int = 1
    #: The consensus engine and its polling parameters (``EngineConfig``'s
    #: fields: engine, k, alpha_preference, alpha_confidence, beta,
    #: switch_after_rounds); empty is Tendermint. A genesis choice, never changed
    #: on a running chain (docs/consensus.md §10.4).
    consensus: dict[str, Any] = field(default_factory=dict)
    #: The modules' parameters, by section name (``ModuleParams.SECTION``): each
    #: module's own frozen dataclass (``chain.module_params``). Sections a genesis
    #: leaves out hold their defaults.
    sections: Mapping[str, ModuleParams] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ChainParams:
        """The parameters a genesis names, flat: the kernel's checked here, each
        section's names handed to its module's dataclass (``from_raw``)."""
        owner = {name: kind for kind in sections() for name in kind.names()}
        unknown = set(raw) - KERNEL_PARAMS - set(owner)
        if unknown:
            raise GenesisError(f"unknown chain parameters: {', '.join(sorted(unknown))}")
        kernel = {name: value for name, value in raw.items() if name in KERNEL_PARAMS}
        for name, value in kernel.items():
            if name == "focus":
                if not isinstance(value, dict):
                    raise GenesisError("params.focus must be an object")
            elif name == "consensus":
                if not isinstance(value, dict):
                    raise GenesisError("params.consensus must be an object")
            elif name == "focus_upgrades":
                if not isinstance(value, list):
                    raise GenesisError("params.focus_upgrades must be a list")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise GenesisError(f"params.{name} must be a non-negative integer")
        for name in POSITIVE:
            if kernel.get(name, 1) < 1:
                raise GenesisError(f"params.{name} must be at least 1")
        if kernel.get("slash_fraction", 0) > BASIS_POINTS:
            raise GenesisError(f"params.slash_fraction is in basis points: at most {BASIS_POINTS}")
        if kernel.get("economics", 0) > 1:
            raise GenesisError("params.economics must be 0 (one token) or 1 (CYB and H)")
        if "unbonding_blocks" not in kernel:
            kernel["unbonding_blocks"] = cls.unbonding_default(kernel)
        given = {
            kind.SECTION: kind.from_raw(
                {name: value for name, value in raw.items() if owner.get(name) is kind}
            )
            for kind in sections()
        }
        return cls(**kernel, sections=given)

    @classmethod
    def unbonding_default(cls, raw: Mapping[str, Any]) -> int:
        """``unbonding_blocks`` of a genesis that leaves it out: the field's default,
        or more when the evidence window and epoch it names call for it."""
        defaults = cls()
        age: int = raw.get("evidence_max_age", defaults.evidence_max_age)
        epoch: int = raw.get("epoch_blocks", defaults.epoch_blocks)
        return max(defaults.unbonding_blocks, age + epoch + UNBONDING_MARGIN)

    def __post_init__(self) -> None:
        complete = {kind.SECTION: kind() for kind in sections()}
        complete.update(self.sections)
        object.__setattr__(self, "sections", complete)
        self.check()

    def check(self) -> None:
        """Rules between parameters; GenesisError names the broken one.

        Unbonding must outlast the evidence window plus an epoch: stake that
        signed a vote at height h is bonded, or unbonding since h or later,
        until evidence of h can no longer be included (h + evidence_max_age);
        the epoch is a margin for power that only an epoch boundary recomputes
        (docs/consensus.md §7). Otherwise a validator could equivocate, unstake
        and take its stake out before the evidence is included. Each section
        checks its own rules as it is made (``ModuleParams.check``).
        """
        try:
            EngineConfig.from_plain(self.consensus)
        except InvalidParameterError as exc:
            raise GenesisError(f"params.consensus: {exc}") from None
        floor = self.evidence_max_age + self.epoch_blocks
        if self.unbonding_blocks <= floor:
            raise GenesisError(
                f"params.unbonding_blocks={self.unbonding_blocks} must exceed "
                f"evidence_max_age + epoch_blocks = {self.evidence_max_age} + "
                f"{self.epoch_blocks} = {floor}: stake could leave before its offence "
                "is punished"
            )

    def to_dict(self) -> dict[str, Any]:
        """Every parameter by its genesis name, but those added after chains were
        started at their default (the kernel's OMITTED_AT_DEFAULT, a section's
        own): this dict is hashed into the genesis hash and committed at
        genesis, so parameters added later must not change either for a
        genesis that does not use them."""
        raw: dict[str, Any] = {}
        for spec in fields(self):
            if spec.name == "sections":
                continue
            value = getattr(self, spec.name)
            if spec.name in OMITTED_AT_DEFAULT:
                factory = spec.default_factory
                default = spec.default if factory is MISSING else factory()
                if value == default:
                    continue
            raw[spec.name] = copy.deepcopy(value)
        for section in self.sections.values():
            raw.update(section.to_dict())
        return raw

    def flat(self) -> dict[str, Any]:
        """Every parameter by its genesis name, defaults included: what
        :meth:`from_dict` takes back."""
        raw = {
            spec.name: copy.deepcopy(getattr(self, spec.name))
            for spec in fields(self)
            if spec.name != "sections"
        }
        for section in self.sections.values():
            raw.update(section.flat())
        return raw

    def with_changes(self, changes: Mapping[str, Any]) -> ChainParams:
        """These parameters with ``changes`` (genesis names) laid over them, each
        in the kernel's fields or its section."""
        kernel = {name: value for name, value in changes.items() if name in KERNEL_PARAMS}
        given = dict(self.sections)
        for key, section in self.sections.items():
            mine = {name: value for name, value in changes.items() if name in section.names()}
            if mine:
                given[key] = dataclasses.replace(section, **mine)  # type: ignore[type-var]
        rest = set(changes) - KERNEL_PARAMS - {n for s in given.values() for n in s.names()}
        if rest:
            raise GenesisError(f"unknown chain parameters: {', '.join(sorted(rest))}")
        return dataclasses.replace(self, **kernel, sections=given)

    def engine(self) -> EngineConfig:
        """The consensus engine this chain runs."""
        return EngineConfig.from_plain(self.consensus)

    def min_fee(self, tx_bytes: int, fee_per_byte: int | None = None) -> int:
        """The least fee of a transaction of ``tx_bytes``; ``fee_per_byte`` is the
        block's base fee under the economy (``chain.fees``), else the parameter."""
        per_byte = self.fee_per_byte if fee_per_byte is None else fee_per_byte
        return self.fee_base + per_byte * tx_bytes


#: The kernel's parameters: every field but the modules' sections.
KERNEL_PARAMS = frozenset(spec.name for spec in fields(ChainParams)) - {"sections"}


def known_params() -> frozenset[str]:
    """Every parameter a genesis may name: the kernel's and each declared section's."""
    return KERNEL_PARAMS.union(*(kind.names() for kind in sections()))


def governed() -> frozenset[str]:
    """Every parameter the validators may change by vote: the kernel's
    :data:`GOVERNED` and each section's own."""
    return frozenset(GOVERNED).union(*(kind.GOVERNED for kind in sections()))
