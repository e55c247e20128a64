"""Signature checks in batches answer what the single check does, item for item.

Which signatures are valid is a consensus rule, so ``verify_batch`` is held to
``keys.verify`` on published edge cases (Wycheproof's Ed25519 vectors, and the
twelve cases of "Taming the many EdDSAs", whose published table says which
libraries accept which), on random good and bad signatures in every position,
at several thread counts; and its limits refuse before any check runs.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

from focusflow.core import sig_batch
from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import KeyPair, verify
from focusflow.core.sig_batch import (
    MAX_BYTES,
    MAX_ITEMS,
    PER_THREAD_MIN,
    SERIAL_BELOW,
    SignatureBatchTooLargeError,
    default_threads,
    verify_batch,
)

VECTORS = json.loads((Path(__file__).parent / "ed25519_vectors.json").read_text())
#: The order of the group Ed25519's base point generates.
L = 2**252 + 27742317777372353535851937790883648493
THREADS = [1, 2, 3, 8]


def _single(items):
    return [verify(*item) for item in items]


def _wycheproof():
    tests = VECTORS["wycheproof"]["tests"]
    items = [(bytes.fromhex(k), bytes.fromhex(s), bytes.fromhex(m)) for _, k, m, s, _ in tests]
    return items, [result == "valid" for *_, result in tests]


@pytest.mark.parametrize("threads", THREADS)
def test_wycheproof_vectors(threads):
    items, expected = _wycheproof()
    assert len(items) == 151 and True in expected and False in expected
    assert _single(items) == expected  # libsodium passes every Wycheproof Ed25519 vector
    assert verify_batch(items, threads) == expected


@pytest.mark.parametrize("threads", THREADS)
def test_taming_the_many_eddsas_cases(threads):
    """libsodium accepts case 3 alone; OpenSSL and the ZIP-215 verifier (ed25519-zebra,
    whose batch agrees with its single check) accept more, which is why neither is
    a stand-in for the chain's rule. Repeated so the batch runs on threads."""
    spec = VECTORS["speccheck"]
    cases = [(bytes.fromhex(k), bytes.fromhex(s), bytes.fromhex(m)) for k, m, s in spec["cases"]]
    accepted = [i in spec["accepted_by"]["LibSodium"] for i in range(len(cases))]
    assert len(cases) == 12 and accepted.count(True) == 1
    assert _single(cases) == accepted
    items = cases * 4
    assert verify_batch(items, threads) == accepted * 4
    zebra = set(spec["accepted_by"]["Zebra"])
    assert zebra - {3} and not any(accepted[i] for i in zebra - {3})


def test_openssl_accepts_what_libsodium_refuses():
    """The published table's PyCA row holds for the OpenSSL this node links: the
    reason keys.verify, not OpenSSL, is the rule."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    spec = VECTORS["speccheck"]

    def openssl(key: bytes, sig: bytes, msg: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True

    got = [
        i
        for i, (k, m, s) in enumerate(spec["cases"])
        if openssl(bytes.fromhex(k), bytes.fromhex(s), bytes.fromhex(m))
    ]
    assert got == spec["accepted_by"]["PyCA"]


def _mutations(rng: random.Random, n: int) -> list[tuple[bytes, bytes, bytes]]:
    """Good signatures and ways of breaking them, shuffled."""
    keys = [KeyPair.from_seed(rng.randbytes(32)) for _ in range(8)]
    spec = VECTORS["speccheck"]["cases"]
    small_order_keys = [bytes.fromhex(spec[0][0]), bytes.fromhex(spec[10][0])]
    items = []
    for i in range(n):
        key = keys[i % len(keys)]
        msg = rng.randbytes(rng.choice([0, 1, 32, 200, 3000]))
        sig = key.sign(msg)
        pk = key.public_key
        kind = i % 12
        if kind == 1:
            sig = bytearray(sig)
            sig[rng.randrange(32)] ^= 1 << rng.randrange(8)  # R
            sig = bytes(sig)
        elif kind == 2:
            sig = bytearray(sig)
            sig[32 + rng.randrange(32)] ^= 1 << rng.randrange(8)  # S
            sig = bytes(sig)
        elif kind == 3:
            msg = msg + b"\0"
        elif kind == 4:
            pk = keys[(i + 1) % len(keys)].public_key
        elif kind == 5:  # S + L: the same point equation, S not canonical
            s = int.from_bytes(sig[32:], "little") + L
            sig = sig[:32] + s.to_bytes(32, "little")
        elif kind == 6:
            sig = sig[: rng.choice([0, 63])] if rng.random() < 0.5 else sig + b"\0"
        elif kind == 7:
            pk = pk[:31] if rng.random() < 0.5 else pk + b"\0"
        elif kind == 8:
            pk = rng.choice(small_order_keys)
        elif kind == 9:
            sig = bytes(64)
        elif kind == 10:
            items.append((bytearray(pk), memoryview(sig), bytearray(msg)))
            continue
        items.append((pk, sig, msg))
    rng.shuffle(items)
    return items


@pytest.mark.parametrize("seed", range(3))
def test_random_good_and_bad_signatures(seed):
    items = _mutations(random.Random(seed), 300)
    expected = _single(items)
    assert 60 < expected.count(True) < 240  # both kinds, in every thread's chunks
    for threads in THREADS:
        assert verify_batch(items, threads) == expected


def test_every_size_around_the_cutoffs_and_chunk_edges():
    items = _mutations(random.Random(7), 70)
    for n in [0, 1, SERIAL_BELOW - 1, SERIAL_BELOW, SERIAL_BELOW + 1, 31, 32, 33, 64, 65, 70]:
        for threads in [1, 2, 3, 5, 16]:
            assert verify_batch(items[:n], threads) == _single(items[:n])


def test_the_checks_run_on_several_threads_and_none_outlives_the_call(monkeypatch):
    seen: set[int] = set()
    second = threading.Event()

    def recording(key, sig, msg):
        seen.add(threading.get_ident())
        # The first worker waits (5 s at most) until a second one runs.
        if len(seen) >= 2 or not second.wait(timeout=5):
            second.set()
        return verify(key, sig, msg)

    main = threading.get_ident()
    items = _mutations(random.Random(3), 64)
    expected = _single(items)
    monkeypatch.setattr(sig_batch, "verify", recording)
    assert verify_batch(items, 2) == expected
    assert len(seen) == 2 and main not in seen
    assert not [t for t in threading.enumerate() if t.name.startswith("sig-batch")]
    seen.clear()
    assert verify_batch(items, 16) == expected
    assert 2 <= len(seen) <= len(items) // PER_THREAD_MIN  # a thread per 16 items at most
    seen.clear()
    assert verify_batch(items[: SERIAL_BELOW - 1], 4) == expected[: SERIAL_BELOW - 1]
    assert seen == {main}


def test_over_the_item_limit_nothing_is_checked(monkeypatch):
    calls = []
    monkeypatch.setattr(sig_batch, "verify", lambda *a: calls.append(a) or True)
    item = (bytes(32), bytes(64), b"")
    assert len(verify_batch([item] * MAX_ITEMS, 1)) == MAX_ITEMS
    calls.clear()
    with pytest.raises(SignatureBatchTooLargeError) as info:
        verify_batch([item] * (MAX_ITEMS + 1), 2)
    assert info.value.code == "signature_batch_too_large"
    assert calls == []


def test_over_the_byte_limit_nothing_is_checked(monkeypatch):
    calls = []
    monkeypatch.setattr(sig_batch, "verify", lambda *a: calls.append(a) or True)
    fits = bytes(MAX_BYTES - 96)
    assert verify_batch([(bytes(32), bytes(64), fits)], 1) == [True]
    calls.clear()
    with pytest.raises(SignatureBatchTooLargeError) as info:
        verify_batch([(bytes(32), bytes(64), b"x")] * 3 + [(bytes(32), bytes(64), fits)], 2)
    assert info.value.code == "signature_batch_too_large"
    assert "from 3 on" in info.value.message
    assert calls == []


@pytest.mark.parametrize(
    "item",
    [
        [bytes(32), bytes(64), b""],  # a list, not a tuple
        (bytes(32), bytes(64)),
        (bytes(32), bytes(64), b"", b""),
        (bytes(32), bytes(64), "text"),
        (None, bytes(64), b""),
        (bytes(32), 7, b""),
    ],
)
def test_a_malformed_item_is_refused_before_any_check(monkeypatch, item):
    calls = []
    monkeypatch.setattr(sig_batch, "verify", lambda *a: calls.append(a) or True)
    with pytest.raises(InvalidParameterError) as info:
        verify_batch([(bytes(32), bytes(64), b"")] * 20 + [item], 2)
    assert "signature check 20" in info.value.message
    assert calls == []


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
def test_a_bad_thread_count_is_refused(threads):
    with pytest.raises(InvalidParameterError):
        verify_batch([], threads)


def test_the_thread_count_follows_the_environment(monkeypatch):
    import os

    monkeypatch.delenv(sig_batch.THREADS_ENV, raising=False)
    assert default_threads() == (os.cpu_count() or 1)
    monkeypatch.setenv(sig_batch.THREADS_ENV, "3")
    assert default_threads() == 3
    items = _mutations(random.Random(5), 40)
    assert verify_batch(items) == _single(items)
    for bad in ["0", "-2", "two", "1.5"]:
        monkeypatch.setenv(sig_batch.THREADS_ENV, bad)
        with pytest.raises(InvalidParameterError) as info:
            default_threads()
        assert sig_batch.THREADS_ENV in info.value.message
