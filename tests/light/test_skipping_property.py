"""Skipping verification over random validator-set histories (hypothesis).

Each history is a :class:`SyntheticChain`: real Ed25519 keys sign every
certificate and the set changes are recorded in a real sparse Merkle state, as
the chain records them. Properties:

* an honest history always verifies from header 1 to its head, across any set
  changes (bisection down to adjacent steps whose change is proven from state),
  and every header the client stores is the chain's;
* trust level: a far header is accepted directly exactly when the trusted
  set's signers hold more than 1/3 of its power, never at 1/3 or less;
* an attacker holding at most 1/3 of the trusted power cannot make the client
  accept its own chain (every such sync raises a verification error).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusflow.consensus.validators import has_one_third
from focusflow.light.client import LightClient
from focusflow.light.errors import (
    InsufficientTrustError,
    ValidatorSetMismatchError,
    VerificationError,
)
from focusflow.light.store import LightStore
from focusflow.light.synthetic import SyntheticChain
from focusflow.light.verify import parse_light_block, verify_skipping
from tests.light.synth_node import ChainNode

CHAIN = "focusflow-synthetic"
T0 = 1_700_000_000_000
#: The clock the client is given: just after the last header of any history here.
NOW = T0 + 10_000 * 1000
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

powers = st.integers(min_value=1, max_value=100)
members = st.dictionaries(st.integers(min_value=0, max_value=15), powers, min_size=1, max_size=6)


@st.composite
def histories(draw):
    height = draw(st.integers(min_value=2, max_value=400))
    n_changes = draw(st.integers(min_value=0, max_value=min(5, height - 1)))
    starts = sorted(
        draw(
            st.lists(
                st.integers(min_value=2, max_value=height),
                min_size=n_changes,
                max_size=n_changes,
                unique=True,
            )
        )
    )
    sets = {1: draw(members)}
    for s in starts:
        sets[s] = draw(members)
    return SyntheticChain(CHAIN, height, sets, T0)


def client_at_root(chain: SyntheticChain, node=None) -> LightClient:
    store = LightStore(Path("."), CHAIN)
    client = LightClient(store, node or ChainNode(chain), clock=lambda: NOW)
    client.trust_genesis(chain.set_at(1))
    return client


@SETTINGS
@given(chain=histories())
def test_honest_histories_verify_to_the_head(chain):
    client = client_at_root(chain)
    head = client.sync()
    assert head.hash == chain.header(chain.height).hash
    for h in client.store._heights:
        assert client.store.get(h).hash == chain.header(h).hash
    # Bisection: never more than about log2(height) headers per set change.
    changes = len(chain.sets)
    assert client.verified <= 1 + changes * (chain.height.bit_length() + 1)


@st.composite
def trust_cases(draw):
    trusted = draw(members)
    keep = draw(st.lists(st.sampled_from(sorted(trusted)), unique=True))
    fresh = draw(st.dictionaries(st.integers(min_value=16, max_value=31), powers, max_size=4))
    target = {s: draw(powers) for s in keep} | fresh
    if not target:
        target = {16: 1}
    gap = draw(st.integers(min_value=2, max_value=50))
    return trusted, target, gap


@SETTINGS
@given(case=trust_cases())
def test_far_header_accepted_directly_only_above_one_third(case):
    trusted_set, target_set, gap = case
    chain = SyntheticChain(CHAIN, 1 + gap, {1: trusted_set, 1 + gap: target_set}, T0)
    trusted = parse_light_block(chain.header_doc(1), CHAIN, 1)
    target = parse_light_block(chain.header_doc(1 + gap), CHAIN, 1 + gap)
    overlap = sum(p for s, p in trusted_set.items() if s in target_set)
    total = sum(trusted_set.values())
    if has_one_third(overlap, total):
        verify_skipping(trusted, target, NOW)
    else:
        with pytest.raises(InsufficientTrustError):
            verify_skipping(trusted, target, NOW)
    # Either way the honest history verifies (bisection when not directly).
    client = client_at_root(chain)
    assert client.sync().hash == chain.header(1 + gap).hash


@st.composite
def attacks(draw):
    honest = draw(st.dictionaries(st.integers(0, 7), powers, min_size=2, max_size=6))
    total = sum(honest.values())
    # The attacker's keys among the honest set: at most 1/3 of its power.
    corrupt, power = [], 0
    for seed in draw(st.permutations(sorted(honest))):
        if 3 * (power + honest[seed]) <= total:
            corrupt.append(seed)
            power += honest[seed]
    fork = draw(st.integers(min_value=2, max_value=40))
    height = fork + draw(st.integers(min_value=1, max_value=60))
    own = draw(st.dictionaries(st.integers(32, 39), powers, min_size=1, max_size=4))
    return honest, corrupt, own, fork, height


@SETTINGS
@given(case=attacks())
def test_an_attacker_under_one_third_is_never_accepted(case):
    honest, corrupt, own, fork, height = case
    attacker_set = {s: honest[s] for s in corrupt} | own

    from focusflow.light.synthetic import key_of

    held = [key_of(s).public_key for s in corrupt] or [key_of(min(own)).public_key]

    def signers(h, vset):
        # The attacker signs its fork with what it holds: its share of the
        # honest set while that set rules (or only its own keys), then its own set.
        if h == fork:
            return held
        return [v.public_key for v in vset.validators]

    # The attacker's chain: from ``fork`` on, its own headers; its state at
    # ``fork`` records its new set for ``fork + 1``.
    fake = SyntheticChain(CHAIN, height, {1: honest, fork + 1: attacker_set}, T0, signers=signers)
    honest_chain = SyntheticChain(CHAIN, fork - 1, {1: honest}, T0)
    assert fake.header(fork - 1).hash == honest_chain.header(fork - 1).hash
    client = client_at_root(honest_chain, ChainNode(fake))
    with pytest.raises(VerificationError):
        client.sync()


@SETTINGS
@given(
    honest=st.dictionaries(st.integers(0, 7), powers, min_size=1, max_size=5),
    claimed=st.dictionaries(st.integers(40, 47), powers, min_size=1, max_size=5),
    trusted=st.integers(min_value=1, max_value=30),
    ahead=st.integers(min_value=1, max_value=30),
)
def test_a_set_change_the_trusted_state_does_not_record_is_refused(honest, claimed, trusted, ahead):
    """The node's headers up to ``trusted`` are the chain's; from ``trusted + 1`` it
    claims a new set (fully signed by it) that no block recorded in the state."""
    change = trusted + 1
    fake = SyntheticChain(
        CHAIN, change + ahead, {1: honest, change: claimed}, T0, unrecorded=frozenset({change})
    )
    honest_chain = SyntheticChain(CHAIN, trusted, {1: honest}, T0)
    assert fake.header(trusted).hash == honest_chain.header(trusted).hash
    client = client_at_root(honest_chain, ChainNode(fake))
    if trusted > 1:
        client.sync(trusted)
    with pytest.raises(ValidatorSetMismatchError):
        client.sync()
    assert client.store.latest().height == trusted


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(chain=histories())
def test_honest_histories_verify_many(chain):
    assert client_at_root(chain).sync().hash == chain.header(chain.height).hash
