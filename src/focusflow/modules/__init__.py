"""The chain's state machines: bank, graph links, names, blobs, validators,
focus upgrades, the EVM and WASM contracts, the certificate authority,
proofs of state with pins paid by them, and the economy: other tokens, the
exchange, the fee split and rewards."""

from focusflow.modules.bank import Bank, ante
from focusflow.modules.blobs import Blobs
from focusflow.modules.ca import NetworkCa
from focusflow.modules.dex import Dex
from focusflow.modules.economy import Economy
from focusflow.modules.evm import Evm
from focusflow.modules.links import Links
from focusflow.modules.names import Names
from focusflow.modules.proofs import Proofs
from focusflow.modules.upgrades import Upgrades
from focusflow.modules.validators import Validators
from focusflow.modules.wasm import Wasm


def default_modules() -> list:
    """The modules every focusflow chain runs, in execution order (the bank's
    end of block slashes before the validators' picks a set from the stakes;
    the dex's halts pools before the economy's buyback trades)."""
    return [
        Bank(), Links(), Names(), Blobs(), Validators(), Upgrades(), Evm(), Wasm(),
        NetworkCa(), Proofs(), Dex(), Economy(),
    ]  # fmt: skip


__all__ = [
    "Bank",
    "Blobs",
    "Dex",
    "Economy",
    "Evm",
    "Links",
    "Names",
    "NetworkCa",
    "Proofs",
    "Upgrades",
    "Validators",
    "Wasm",
    "ante",
    "default_modules",
]
