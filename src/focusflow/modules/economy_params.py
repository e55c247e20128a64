"""The economy's parameters (docs/economics.md): the base fees' split, H and its
par, the stake, tenure and learning rewards, the spend incentive.

Their own module, apart from the economy's end of block (``modules.economy``),
because the exchange (H's par for the dealers) and the rewards read them too,
and the economy imports both. The kernel keeps ``economics`` itself and the base
fee's market (``chain.params``); the exchange's fees are ``modules.dex``'s.
All were added after chains were started, so each is left out of the genesis
hash at its default, and the validators may change each by vote.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.chain.module_params import ModuleParams, param_section

_NAMES = frozenset(
    {
        "split_base_bps",
        "split_slope_bps",
        "h_par_bps",
        "h_mint_per_block",
        "tenure_rate_ppb",
        "tenure_ramp_blocks",
        "learning_per_block",
        "learning_window",
        "spend_rebate_bps",
    }
)


@param_section
@dataclass(frozen=True)
class EconomyParams(ModuleParams):
    """The genesis's ``split_*``, ``h_*``, ``tenure_*``, ``learning_*`` and
    ``spend_rebate_bps``."""

    SECTION = "economy"
    OMITTED_AT_DEFAULT = _NAMES
    GOVERNED = _NAMES
    POSITIVE = frozenset({"tenure_ramp_blocks"})
    IN_BASIS_POINTS = frozenset({"split_base_bps", "spend_rebate_bps"})

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
