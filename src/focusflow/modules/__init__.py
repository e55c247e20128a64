"""The chain's state machines: bank, graph links, names, blobs, validators,
focus upgrades, the EVM and WASM contracts, the certificate authority,
proofs of state with pins paid by them, and the economy: other tokens, the
exchange, the fee split and rewards.

This package's own namespace is the modules' public face: the registry of the
modules a chain runs (:func:`default_modules`), the bank's ante, each module's
parameters (its section of the chain's, ``chain.module_params``), and the few
read-only views the node's API serves that are a module's rule rather than a
record's layout (the EVM's block view and gas price, the exchange's TWAP and
pool summary, the economy's premium and buyback share, the particle texts a
committed block's link transactions carry). The API imports only
these; the state's keys and records it reads through ``focusflow.state_schema``
(pyproject.toml's import contracts say so).
"""

from focusflow.chain.module import Module
from focusflow.modules.bank import Bank, ante
from focusflow.modules.blobs import Blobs
from focusflow.modules.ca import NetworkCa
from focusflow.modules.dex import Dex, DexParams, pool_json, twap_reader
from focusflow.modules.economy import Economy, buyback_bps, premium_bps
from focusflow.modules.economy_params import EconomyParams
from focusflow.modules.evm import (
    CALL_AS,
    RESTORABLE,
    RESTORE,
    SET_BALANCE,
    DevOnlyError,
    Evm,
    EvmDevParams,
    dev_powers,
    effective_gas_price,
    evm_block,
)
from focusflow.modules.ibc import Ibc
from focusflow.modules.interchain import InterchainPlace
from focusflow.modules.links import MAX_TEXTS_PER_TX, Links, committed_texts, link_texts
from focusflow.modules.names import Names
from focusflow.modules.proofs import ProofParams, Proofs
from focusflow.modules.upgrades import Upgrades
from focusflow.modules.validators import Validators
from focusflow.modules.wasm import Wasm, WasmParams


def default_modules() -> list[Module]:
    """The modules every focusflow chain runs, in execution order (the hub's
    demand pool takes its share of the fees before the bank pays them; the
    bank's end of block slashes before the validators' picks a set from the
    stakes; the dex's halts pools before the economy's buyback trades)."""
    interchain = InterchainPlace()
    return [
        interchain, Bank(), Links(), Names(), Blobs(), Validators(), Upgrades(), Evm(), Wasm(),
        NetworkCa(), Proofs(), Dex(), Economy(), Ibc(apps=[interchain]),
    ]  # fmt: skip


__all__ = [
    "CALL_AS",
    "MAX_TEXTS_PER_TX",
    "RESTORABLE",
    "RESTORE",
    "SET_BALANCE",
    "Bank",
    "Blobs",
    "DevOnlyError",
    "Dex",
    "DexParams",
    "Economy",
    "EconomyParams",
    "Evm",
    "EvmDevParams",
    "Ibc",
    "Links",
    "Names",
    "NetworkCa",
    "ProofParams",
    "Proofs",
    "Upgrades",
    "Validators",
    "Wasm",
    "WasmParams",
    "ante",
    "buyback_bps",
    "committed_texts",
    "default_modules",
    "dev_powers",
    "effective_gas_price",
    "evm_block",
    "link_texts",
    "pool_json",
    "premium_bps",
    "twap_reader",
]
