"""The chain tests' builders moved to ``focusflow.testing.chains``; this name stays
for test code written against the old one (the suite itself imports the new)."""

from focusflow.testing.chains import (
    ALICE,
    BALANCE,
    BOB,
    CAROL,
    CHAIN_ID,
    FEE,
    MIN_DAH,
    STAKE,
    VALIDATOR,
    account,
    diffusion_genesis,
    genesis,
    link,
    many_links,
    new_chain,
    particle,
    tx,
)

__all__ = [
    "ALICE",
    "BALANCE",
    "BOB",
    "CAROL",
    "CHAIN_ID",
    "FEE",
    "MIN_DAH",
    "STAKE",
    "VALIDATOR",
    "account",
    "diffusion_genesis",
    "genesis",
    "link",
    "many_links",
    "new_chain",
    "particle",
    "tx",
]
