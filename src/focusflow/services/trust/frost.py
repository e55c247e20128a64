"""FROST(Ed25519, SHA-512), RFC 9591: an Ed25519 key that no one holds whole.

The network's CA must sign only what consensus decided, so its key cannot
sit on one validator. With FROST the key is shared ``t``-of-``n`` among the
validators: any ``t`` of them produce, in two rounds, one ordinary Ed25519
signature (RFC 8032) that ``openssl``, ``cryptography`` or any X.509 verifier
checks against the group's public key, while fewer than ``t`` learn nothing
of the key and cannot sign.

This module is the protocol's arithmetic, written from RFC 9591 and checked
against its Appendix E.1 test vectors: trusted-dealer key shares (Appendix
C), round one (:func:`commit`), round two (:func:`sign`), share verification
(:func:`verify_share`, which names a cheating signer) and aggregation. Shares
without any dealer come from Pedersen's distributed key generation with the
proofs of knowledge of the FROST paper (Komlo and Goldberg 2020, figure 1),
which RFC 9591 leaves out of its scope (:func:`dkg_round1` ...).
Elements and scalars travel as RFC 9591's 32-byte encodings. Group
operations are libsodium's (PyNaCl), which refuse non-canonical encodings
and points outside the prime-order subgroup; scalars are integers mod ``L``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions

from focusflow.core.errors import InvalidParameterError

#: The order of Ed25519's prime-order subgroup.
L = 2**252 + 27742317777372353535851937790883648493
CONTEXT = b"FROST-ED25519-SHA512-v1"
#: The identity element's encoding (the point (0, 1)).
IDENTITY = bytes([1]) + bytes(31)


class FrostError(InvalidParameterError):
    """A share, commitment or element that is malformed or does not verify."""

    code = "frost_error"


# --- the ciphersuite (RFC 9591 section 6.5) -----------------------------------


def _scalar(data: bytes) -> int:
    return int.from_bytes(data, "little") % L


def scalar_bytes(s: int) -> bytes:
    return (s % L).to_bytes(32, "little")


def decode_scalar(data: bytes) -> int:
    """A canonical scalar encoding (below L), else :class:`FrostError`."""
    if len(data) != 32 or int.from_bytes(data, "little") >= L:
        raise FrostError("not a canonical scalar")
    return int.from_bytes(data, "little")


def check_element(data: bytes) -> bytes:
    """A canonical encoding of a point of the prime-order subgroup, not the identity."""
    if len(data) != 32 or not sodium.crypto_core_ed25519_is_valid_point(data):
        raise FrostError("not a valid group element")
    return data


# RFC 9591's H1..H5, in lower case.
def h1(m: bytes) -> int:
    return _scalar(hashlib.sha512(CONTEXT + b"rho" + m).digest())


def h2(m: bytes) -> int:
    """The challenge: RFC 8032's hash, so the signature is a plain Ed25519 one."""
    return _scalar(hashlib.sha512(m).digest())


def h3(m: bytes) -> int:
    return _scalar(hashlib.sha512(CONTEXT + b"nonce" + m).digest())


def h4(m: bytes) -> bytes:
    return hashlib.sha512(CONTEXT + b"msg" + m).digest()


def h5(m: bytes) -> bytes:
    return hashlib.sha512(CONTEXT + b"com" + m).digest()


def base_mul(s: int) -> bytes:
    s %= L
    return IDENTITY if s == 0 else sodium.crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(s))


def mul(s: int, point: bytes) -> bytes:
    s %= L
    if s == 0 or point == IDENTITY:
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_noclamp(scalar_bytes(s), point)


def add(p: bytes, q: bytes) -> bytes:
    if p == IDENTITY:
        return q
    if q == IDENTITY:
        return p
    try:
        return sodium.crypto_core_ed25519_add(p, q)
    except nacl.exceptions.RuntimeError:  # the sum is the identity
        return IDENTITY


# --- keys (RFC 9591 appendix C) -------------------------------------------------


@dataclass(frozen=True)
class KeyShare:
    """Participant ``identifier``'s secret share and the group's public key."""

    identifier: int
    secret: int
    group_public_key: bytes

    @property
    def public(self) -> bytes:
        """This participant's public verification share, ``secret * G``."""
        return base_mul(self.secret)


def deal(
    secret: int, min_signers: int, max_signers: int, coefficients: Sequence[int] | None = None
) -> tuple[bytes, list[KeyShare]]:
    """A trusted dealer's split of ``secret`` into ``max_signers`` shares, any
    ``min_signers`` of which sign (Shamir over the scalar field). ``coefficients``
    (the polynomial's, beyond the secret) are random unless given, for test vectors."""
    if not 2 <= min_signers <= max_signers < L:
        raise FrostError("need 2 <= min_signers <= max_signers")
    if coefficients is None:
        coefficients = [secrets.randbelow(L - 1) + 1 for _ in range(min_signers - 1)]
    if len(coefficients) != min_signers - 1:
        raise FrostError("min_signers - 1 coefficients")
    poly = [secret % L, *(c % L for c in coefficients)]
    group = base_mul(poly[0])
    shares = [KeyShare(x, polynomial_at(poly, x), group) for x in range(1, max_signers + 1)]
    return group, shares


def polynomial_at(poly: Sequence[int], x: int) -> int:
    """``poly`` (constant term first) at ``x``, mod L, by Horner's rule."""
    value = 0
    for c in reversed(poly):
        value = (value * x + c) % L
    return value


# --- signing (RFC 9591 sections 4 and 5) ------------------------------------------


@dataclass(frozen=True)
class Nonces:
    hiding: int
    binding: int


@dataclass(frozen=True)
class Commitment:
    identifier: int
    hiding: bytes
    binding: bytes


def nonce_generate(secret: int, random_bytes: bytes | None = None) -> int:
    random_bytes = secrets.token_bytes(32) if random_bytes is None else random_bytes
    return h3(random_bytes + scalar_bytes(secret))


def commit(
    share: KeyShare, randomness: tuple[bytes, bytes] | None = None
) -> tuple[Nonces, Commitment]:
    """Round one: fresh nonces (kept secret, used once) and their public commitment."""
    hr, br = randomness if randomness is not None else (None, None)
    nonces = Nonces(nonce_generate(share.secret, hr), nonce_generate(share.secret, br))
    return nonces, Commitment(share.identifier, base_mul(nonces.hiding), base_mul(nonces.binding))


def _checked_list(commitments: Sequence[Commitment]) -> list[Commitment]:
    ordered = sorted(commitments, key=lambda c: c.identifier)
    ids = [c.identifier for c in ordered]
    if len(set(ids)) != len(ids) or not all(0 < i < L for i in ids):
        raise FrostError("commitments name distinct, nonzero participants")
    for c in ordered:
        check_element(c.hiding)
        check_element(c.binding)
    return ordered


def encode_commitments(commitments: Sequence[Commitment]) -> bytes:
    return b"".join(scalar_bytes(c.identifier) + c.hiding + c.binding for c in commitments)


def binding_factor_input(
    group_public_key: bytes, commitments: Sequence[Commitment], msg: bytes, identifier: int
) -> bytes:
    prefix = group_public_key + h4(msg) + h5(encode_commitments(commitments))
    return prefix + scalar_bytes(identifier)


def binding_factors(
    group_public_key: bytes, commitments: Sequence[Commitment], msg: bytes
) -> dict[int, int]:
    return {
        c.identifier: h1(binding_factor_input(group_public_key, commitments, msg, c.identifier))
        for c in commitments
    }


def group_commitment(commitments: Sequence[Commitment], factors: dict[int, int]) -> bytes:
    total = IDENTITY
    for c in commitments:
        total = add(total, add(c.hiding, mul(factors[c.identifier], c.binding)))
    if total == IDENTITY:
        raise FrostError("the group commitment is the identity")
    return total


def lagrange(identifier: int, identifiers: Sequence[int]) -> int:
    """The Lagrange coefficient of ``identifier`` at 0 over ``identifiers``."""
    if identifier not in identifiers:
        raise FrostError("the participant is not among the signers")
    num, den = 1, 1
    for j in identifiers:
        if j != identifier:
            num = num * j % L
            den = den * (j - identifier) % L
    return num * pow(den, -1, L) % L


def challenge(commitment: bytes, group_public_key: bytes, msg: bytes) -> int:
    return h2(commitment + group_public_key + msg)


def sign(share: KeyShare, nonces: Nonces, msg: bytes, commitments: Sequence[Commitment]) -> int:
    """Round two: this participant's signature share over ``msg``."""
    ordered = _checked_list(commitments)
    factors = binding_factors(share.group_public_key, ordered, msg)
    if share.identifier not in factors:
        raise FrostError("this participant's commitment is not in the list")
    r = group_commitment(ordered, factors)
    lam = lagrange(share.identifier, [c.identifier for c in ordered])
    c = challenge(r, share.group_public_key, msg)
    return (nonces.hiding + nonces.binding * factors[share.identifier] + lam * share.secret * c) % L


def verify_share(
    identifier: int,
    public_share: bytes,
    sig_share: int,
    msg: bytes,
    commitments: Sequence[Commitment],
    group_public_key: bytes,
) -> None:
    """Raise :class:`FrostError` unless ``sig_share`` is ``identifier``'s honest share:
    the coordinator names a cheating signer instead of producing a bad signature."""
    ordered = _checked_list(commitments)
    factors = binding_factors(group_public_key, ordered, msg)
    mine = next((c for c in ordered if c.identifier == identifier), None)
    if mine is None:
        raise FrostError("the participant's commitment is not in the list")
    r = group_commitment(ordered, factors)
    lam = lagrange(identifier, [c.identifier for c in ordered])
    c = challenge(r, group_public_key, msg)
    expected = add(
        add(mine.hiding, mul(factors[identifier], mine.binding)), mul(c * lam, public_share)
    )
    if base_mul(sig_share) != expected:
        raise FrostError(f"participant {identifier}'s signature share does not verify")


def aggregate(
    commitments: Sequence[Commitment], msg: bytes, group_public_key: bytes, shares: Sequence[int]
) -> bytes:
    """The 64-byte Ed25519 signature ``R || z`` of the shares."""
    ordered = _checked_list(commitments)
    r = group_commitment(ordered, binding_factors(group_public_key, ordered, msg))
    return r + scalar_bytes(sum(shares) % L)


def sign_together(shares: Sequence[KeyShare], msg: bytes) -> bytes:
    """Both rounds for signers in one process (a key ceremony, tests): the
    Ed25519 signature of ``msg`` by the group of ``shares``."""
    rounds = [commit(s) for s in shares]
    commitments = [c for _, c in rounds]
    z = [sign(s, n, msg, commitments) for s, (n, _) in zip(shares, rounds, strict=True)]
    return aggregate(commitments, msg, shares[0].group_public_key, z)


# --- distributed key generation (Pedersen's, with FROST's proofs of knowledge) ------


@dataclass(frozen=True)
class DkgRound1:
    """What participant ``identifier`` broadcasts: commitments to its polynomial's
    coefficients and a Schnorr proof that it knows the constant term."""

    identifier: int
    commitments: tuple[bytes, ...]
    proof: tuple[bytes, int]


def _dkg_challenge(identifier: int, commitment0: bytes, nonce_point: bytes) -> int:
    return h1(b"dkg" + scalar_bytes(identifier) + commitment0 + nonce_point)


def dkg_round1(identifier: int, min_signers: int) -> tuple[list[int], DkgRound1]:
    """A random polynomial (kept secret) and its broadcast."""
    if not 0 < identifier < L or min_signers < 2:
        raise FrostError("a participant's identifier is nonzero, min_signers >= 2")
    poly = [secrets.randbelow(L - 1) + 1 for _ in range(min_signers)]
    commitments = tuple(base_mul(a) for a in poly)
    k = secrets.randbelow(L - 1) + 1
    big_r = base_mul(k)
    c = _dkg_challenge(identifier, commitments[0], big_r)
    return poly, DkgRound1(identifier, commitments, (big_r, (k + poly[0] * c) % L))


def dkg_share_for(poly: Sequence[int], receiver: int) -> int:
    """The secret share ``f(receiver)`` sent privately to ``receiver``."""
    return polynomial_at(poly, receiver)


def dkg_check_broadcast(b: DkgRound1, min_signers: int) -> None:
    """Raise :class:`FrostError` unless the broadcast is well formed and its
    proof shows its sender knows its constant term (no rogue-key attack)."""
    if len(b.commitments) != min_signers:
        raise FrostError(f"participant {b.identifier} committed to a polynomial of another degree")
    for point in b.commitments:
        check_element(point)
    big_r, mu = b.proof
    check_element(big_r)
    c = _dkg_challenge(b.identifier, b.commitments[0], big_r)
    if base_mul(mu) != add(big_r, mul(c, b.commitments[0])):
        raise FrostError(f"participant {b.identifier}'s proof of knowledge does not verify")


def dkg_check_share(b: DkgRound1, receiver: int, share: int) -> None:
    """Raise :class:`FrostError` unless ``share`` is ``f_sender(receiver)`` for the
    polynomial ``b`` committed to: the receiver names a cheating dealer."""
    expected = IDENTITY
    power = 1
    for point in b.commitments:
        expected = add(expected, mul(power, point))
        power = power * receiver % L
    if base_mul(share) != expected:
        raise FrostError(f"participant {b.identifier}'s share for {receiver} does not verify")


def dkg_finish(
    identifier: int, broadcasts: Sequence[DkgRound1], received: dict[int, int], min_signers: int
) -> KeyShare:
    """This participant's key share from everyone's broadcasts and the shares
    they sent it (its own included), each checked first."""
    ids = sorted(b.identifier for b in broadcasts)
    if len(set(ids)) != len(ids) or identifier not in ids or set(received) != set(ids):
        raise FrostError("one broadcast and one share from every participant")
    group = IDENTITY
    secret = 0
    for b in broadcasts:
        dkg_check_broadcast(b, min_signers)
        dkg_check_share(b, identifier, received[b.identifier])
        group = add(group, b.commitments[0])
        secret = (secret + received[b.identifier]) % L
    return KeyShare(identifier, secret, check_element(group))


def dkg_together(n: int, min_signers: int) -> list[KeyShare]:
    """Pedersen's DKG run for ``n`` participants in one process, each share
    checked as each participant would: what a ceremony's tool does when it
    makes every member's home (``focusflow testnet``)."""
    polys, broadcasts = {}, []
    for i in range(1, n + 1):
        polys[i], b = dkg_round1(i, min_signers)
        broadcasts.append(b)
    return [
        dkg_finish(j, broadcasts, {i: dkg_share_for(polys[i], j) for i in polys}, min_signers)
        for j in polys
    ]
