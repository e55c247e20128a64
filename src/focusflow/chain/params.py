"""Chain parameters: limits, prices and the focus settings, fixed at genesis
(the focus algorithm may change at scheduled heights: chain/focus_upgrade.py).

Amounts are integers in base units: of ``cyb``, the token that is staked and,
with ``economics`` 0, pays fees; with ``economics`` 1 fees are paid in ``h``
(docs/economics.md). docs/chain.md explains each price.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from focusflow.chain.errors import GenesisError
from focusflow.core.errors import InvalidAddressError
from focusflow.core.keys import decode_address

#: The unit of ``slash_fraction``: 10_000 basis points are the whole stake.
BASIS_POINTS = 10_000
#: Blocks beyond evidence_max_age + epoch_blocks a derived unbonding default adds.
UNBONDING_MARGIN = 100
#: The economy's parameters (docs/economics.md), all added after chains were started.
ECONOMY_PARAMS = (
    "economics",
    "gas_target_bytes",
    "base_fee_change_denominator",
    "base_fee_min",
    "split_base_bps",
    "split_slope_bps",
    "h_par_bps",
    "h_mint_per_block",
    "tenure_rate_ppb",
    "tenure_ramp_blocks",
    "learning_per_block",
    "learning_window",
    "spend_rebate_bps",
    "dex_fee_bps",
    "dex_protocol_bps",
    "dex_breaker_bps",
    "dex_breaker_blocks",
    "dex_twap_window_ms",
    "dex_max_hops",
    "dealer_period",
    "dex_dealers",
)
#: Parameters added after chains were started: left out of ``to_dict`` at their
#: default, so that those chains' genesis hash and state stay what they were.
OMITTED_AT_DEFAULT = (
    "focus_upgrades",
    "focus_upgrade_delay",
    "evm_block_gas_limit",
    "evm_base_fee",
    "wasm_block_gas_limit",
    "proof_space_k_min",
    "proof_time_min_iterations",
    "proof_work_bits",
    "proof_window",
    "proof_fee",
    "pin_period",
    *ECONOMY_PARAMS,
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
    #: WASM gas one block may hold: what its transactions ask (calls' gas,
    #: stores' compile prices) and what Ethereum transactions' packets carry
    #: to contracts. At about one gas a nanosecond, a block of WASM runs a few
    #: seconds at most, as one of EVM gas at ``evm_block_gas_limit`` does.
    wasm_block_gas_limit: int = 5_000_000_000
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
    #: The share of the base fee spent on CYB buyback-and-burn at par, in basis
    #: points, and how much it moves per unit of H's premium over par.
    split_base_bps: int = 5_000
    split_slope_bps: int = 10_000
    #: CYB per H at par, in basis points of one CYB (10_000: one for one).
    h_par_bps: int = 10_000
    #: H minted each block into the stake reward pool.
    h_mint_per_block: int = 0
    #: H minted per bonded unit per block at full tenure (parts per billion),
    #: reached linearly over ``tenure_ramp_blocks`` of unbroken bonding.
    tenure_rate_ppb: int = 0
    tenure_ramp_blocks: int = 100_000
    #: H a neuron holding all karma would earn per block, over at most
    #: ``learning_window`` blocks since its last claim.
    learning_per_block: int = 0
    learning_window: int = 1_000
    #: Spend incentive: the share (basis points) of the base fees' reward part
    #: paid back to the block's fee payers, by the base fees each paid; never
    #: the whole of a fee, so no transaction pays for itself.
    spend_rebate_bps: int = 0
    #: Exchange: the swap fee, the protocol's share of it (basis points of the
    #: fee), the price move against the TWAP that halts a pool, for how many
    #: blocks after the tripping one, the TWAP's window, and the longest route.
    dex_fee_bps: int = 30
    dex_protocol_bps: int = 0
    dex_breaker_bps: int = 1_000
    dex_breaker_blocks: int = 0
    dex_twap_window_ms: int = 600_000
    dex_max_hops: int = 4
    #: Primary dealers: ``{"address": "focus1...", "quota": n}`` accounts that
    #: may mint H against CYB (and redeem it) at par, ``quota`` each per
    #: ``dealer_period`` blocks.
    dealer_period: int = 1_000
    dex_dealers: list[dict[str, Any]] = field(default_factory=list)

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
            elif name == "dex_dealers":
                _check_dealers(value)
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
            "gas_target_bytes",
            "base_fee_change_denominator",
            "base_fee_min",
            "tenure_ramp_blocks",
            "dex_max_hops",
            "dealer_period",
        ):
            if raw.get(name, 1) < 1:
                raise GenesisError(f"params.{name} must be at least 1")
        if raw.get("slash_fraction", 0) > BASIS_POINTS:
            raise GenesisError(f"params.slash_fraction is in basis points: at most {BASIS_POINTS}")
        _check_economy(raw)
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

        A block must hold the largest WASM call. Unbonding must outlast the
        evidence window plus an epoch: stake that
        signed a vote at height h is bonded, or unbonding since h or later,
        until evidence of h can no longer be included (h + evidence_max_age);
        the epoch is a margin for power that only an epoch boundary recomputes
        (docs/consensus.md §7). Otherwise a validator could equivocate, unstake
        and take its stake out before the evidence is included.
        """
        if self.wasm_block_gas_limit < self.wasm_max_gas:
            raise GenesisError(
                f"params.wasm_block_gas_limit={self.wasm_block_gas_limit} must be at least "
                f"wasm_max_gas={self.wasm_max_gas}: a call given the most gas would fit no block"
            )
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

    def min_fee(self, tx_bytes: int, fee_per_byte: int | None = None) -> int:
        """The least fee of a transaction of ``tx_bytes``; ``fee_per_byte`` is the
        block's base fee under the economy (``chain.fees``), else the parameter."""
        per_byte = self.fee_per_byte if fee_per_byte is None else fee_per_byte
        return self.fee_base + per_byte * tx_bytes


def _check_economy(raw: dict[str, Any]) -> None:
    for name in ("split_base_bps", "dex_fee_bps", "dex_protocol_bps", "spend_rebate_bps"):
        if raw.get(name, 0) > BASIS_POINTS:
            raise GenesisError(f"params.{name} is in basis points: at most {BASIS_POINTS}")
    if raw.get("dex_fee_bps", 0) >= BASIS_POINTS:
        raise GenesisError("params.dex_fee_bps must be below 10_000 (a swap must pay something)")
    if raw.get("economics", 0) > 1:
        raise GenesisError("params.economics must be 0 (one token) or 1 (CYB and H)")


def _check_dealers(value: Any) -> None:
    """``dex_dealers``: a list of ``{"address": "focus1...", "quota": n}``, each address once."""
    if not isinstance(value, list):
        raise GenesisError("params.dex_dealers must be a list")
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"params.dex_dealers[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"address", "quota"}:
            raise GenesisError(f"{where} must be an object with address and quota")
        address, quota = entry["address"], entry["quota"]
        try:
            decode_address(address)
        except InvalidAddressError as exc:
            raise GenesisError(f"{where}.address: {exc}") from None
        if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
            raise GenesisError(f"{where}.quota must be a non-negative integer")
        if address in seen:
            raise GenesisError(f"{where}: duplicate address")
        seen.add(address)
