"""The web page's verified mode, in a real headless Chromium.

``static/verify.js`` checks headers, commit certificates and state and focus
proofs with the browser's own WebCrypto. The first tests feed it vectors made
here by the chain's Python code (real keys, signatures, trees, certificates),
honest ones and each kind of lie, and check that JavaScript accepts exactly
what the Python verifiers accept and names the check that refuses the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import numpy as np
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from focusflow.api.app import STATIC
from focusflow.chain import Msg
from focusflow.chain.block import Header, sign_certificate
from focusflow.chain.focus_commit import (
    FOCUS_CHUNK,
    FOCUS_KEY,
    SCALE,
)
from focusflow.consensus.certificate import (
    CommitSignature,
    decode_certificate,
    encode_certificate,
)
from focusflow.consensus.messages import Step, vote_sign_bytes
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import merkle_proof, merkle_root, verify_merkle_proof
from focusflow.store import smt
from focusflow.testing.devnet import signed, start_devnet, wait_tx
from focusflow.testing.web import (
    CHAIN_ID,
    VERIFY_FOCUS,
    VERIFY_HEADER,
    VERIFY_PAGE,
    keys,
    serve,
    set_of,
    validators_json,
)
from focusflow.testing.web import VerifiedChain as Chain
from tests.api.conftest import scripted_page

UI_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    """The page's static files alone: enough to import verify.js."""
    app = Starlette()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    with serve(app) as url:
        yield url


@pytest.fixture
def js(browser, static_url):
    """A page that has imported verify.js as ``window.V``; JS errors fail the test."""
    with scripted_page(browser, static_url, UI_TIMEOUT_MS, VERIFY_PAGE) as page:
        yield page


# ---------------------------------------------------------------- real chain objects


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain()


def check_header(js, answer: dict) -> str:
    return js.evaluate(VERIFY_HEADER, answer)


# ---------------------------------------------------------------- encodings


def test_cbor_sign_bytes_and_set_hash_match_the_chain(js, chain):
    """The JS encoder writes the chain's bytes; its decoder reads them back and
    refuses what the chain's decoder refuses."""
    header_cbor = encode(chain.header.to_cbor())
    got = js.evaluate(
        """(a) => {
        const h = V.decodeHeader(V.fromHex(a.header));
        return {
          height: String(h.height), chain: h.chain_id, state: V.toHex(h.state_root),
          reencoded: V.toHex(V.cborEncode(V.cborDecode(V.fromHex(a.header)))),
          vote: V.toHex(V.voteSignBytes(a.chain, 7, 3, 2, V.fromHex(a.hash))),
          big: V.toHex(V.cborEncode([2n ** 64n - 1n, 255, 256, 65536, 2 ** 32, "é", null])),
        };
      }""",
        {"header": header_cbor.hex(), "chain": CHAIN_ID, "hash": chain.header.hash.hex()},
    )
    assert got["height"] == "7" and got["chain"] == CHAIN_ID
    assert got["state"] == chain.root.hex()
    assert got["reencoded"] == header_cbor.hex()
    expected_vote = vote_sign_bytes(CHAIN_ID, 7, 3, Step.PRECOMMIT, chain.header.hash)
    assert got["vote"] == expected_vote.hex()
    assert got["big"] == encode([2**64 - 1, 255, 256, 65536, 2**32, "é", None]).hex()

    set_hash = js.evaluate(
        "async (v) => V.toHex(await V.validatorSetHash(V.parseValidators(v)))", chain.validators()
    )
    assert set_hash == chain.vset.hash().hex()

    # maps and bignums as the state holds them
    record = chain.state[FOCUS_KEY]
    decoded = js.evaluate(
        """(a) => {
        const m = V.cborDecode(V.fromHex(a.record));
        return {root: V.toHex(m.get("root")), n: String(m.get("particles")),
                big: String(V.cborDecode(V.fromHex(a.big)))};
      }""",
        {"record": record.hex(), "big": encode(2**70 + 5).hex()},
    )
    assert decoded == {"root": chain.focus_root.hex(), "n": "2500", "big": str(2**70 + 5)}

    # not canonical, or not plain data: each refused with "malformed"
    refused = {
        "long head": "1817",  # 23 in two bytes
        "indefinite array": "9f01ff",
        "float": "f93c00",
        "tag": "c11a00000001",
        "trailing": "0100",
        "truncated": "5a00000010",
        "unsorted map": "a2616201616101",
        "small bignum": "c24101",
        "bad utf-8": "62c328",
        "reserved head": "1c" + "00" * 15 + "01",
        "tag 5 on a bignum's bytes": "c549" + "01" + "00" * 8,
    }
    for name, hexed in refused.items():
        check = js.evaluate("(h) => attempt(() => V.cborDecode(V.fromHex(h)))", hexed)
        assert check == "malformed", name
    # a length past the end is named as such, not as what follows from it
    why = js.evaluate(
        "(h) => { try { V.cborDecode(V.fromHex(h)); } catch (e) { return e.message; } }",
        "825001",
    )
    assert "length past the end" in why


# ---------------------------------------------------------------- headers and certificates


def test_honest_header_verifies(js, chain):
    assert check_header(js, chain.answer()) == "ok"
    # exactly above 2/3: 40 + 30 = 70 of 100 holds, and the smallest such quorum
    assert check_header(js, chain.answer(cert=chain.certificate(chain.keys[:2]))) == "ok"


def test_each_header_lie_is_named(js, chain):
    """Every way a node can misstate a header or its certificate is refused by
    the check meant for it."""
    other = chain.make_header(7, state_root=bytes([1]) * 32)
    k = chain.keys
    cert = chain.certificate()
    sig0 = cert.signatures[0]
    forged = bytearray(sig0.signature)
    forged[5] ^= 1
    outsider = keys(1, base=100)[0]

    def with_sigs(sigs):
        return encode(
            [
                "commit",
                cert.height,
                cert.round,
                cert.value_id,
                [[s.public_key, s.signature] for s in sigs],
            ]
        )

    powers = [dict(v) for v in chain.validators()]
    powers[-1]["power"] += 1
    lies = {
        "header_hash": chain.answer(hash=other.hash.hex()),
        "header_height": chain.answer(height=8),
        "chain_id": chain.answer(chainId="another-chain"),
        "validators_hash": chain.answer(validators=powers),
        # the certificate of another block at the same height
        "cert_value": chain.answer(cert=chain.certificate(header=other)),
        # the certificate of this block's hash, but signed as another height
        "cert_height": chain.answer(cert=sign_certificate(k, CHAIN_ID, 8, chain.header.hash)),
        "cert_signature": chain.answer(
            cert=with_sigs([CommitSignature(sig0.public_key, bytes(forged)), *cert.signatures[1:]])
        ),
        # the signature is the signer's own, but over another chain's vote
        "cert_signature_chain": chain.answer(
            cert=sign_certificate(k, "another-chain", 7, chain.header.hash)
        ),
        "cert_duplicate": chain.answer(cert=with_sigs([sig0, sig0, *cert.signatures[1:2]])),
        "cert_non_member": chain.answer(
            cert=sign_certificate([*k, outsider], CHAIN_ID, 7, chain.header.hash)
        ),
        # 40 + 20 + 10 = 70 is enough, 30 + 20 + 10 = 60 is not; and 40 + 20 = 60 not
        "cert_power": chain.answer(cert=chain.certificate(k[1:])),
        "cert_power_two": chain.answer(cert=chain.certificate([k[0], k[2]])),
    }
    for name, answer in lies.items():
        expected = name.removesuffix("_chain").removesuffix("_two")
        assert check_header(js, answer) == expected, name
    # no certificate at all
    assert check_header(js, {**chain.answer(), "certHex": None}) == "cert_missing"
    # a validator listed twice, a power that is not positive, a key that is not
    # 32 bytes: refused before hashing
    vals = chain.validators()
    twice = [*vals, vals[0]]
    zero = [*vals[:-1], {**vals[-1], "power": 0}]
    short_key = [*vals[:-1], {**vals[-1], "public_key": vals[-1]["public_key"][:62]}]
    for bad in (twice, zero, short_key, []):
        assert check_header(js, chain.answer(validators=bad)) == "malformed", bad


def test_malformed_headers_and_certificates(js, chain):
    """Bytes that do not have the shape of a header or certificate are refused
    as malformed, even when a certificate signs them."""
    fields = chain.header.to_cbor()
    bad_headers = {
        "11 fields": fields[:11],
        "13 fields": [*fields, b""],
        "height as text": [fields[0], "7", *fields[2:]],
        "short root": [*fields[:5], b"\x01" * 31, *fields[6:]],
        "proposer of 5 bytes": [*fields[:10], b"\x01" * 5, fields[11]],
        "last commit of 3 bytes": [*fields[:11], b"\x01" * 3],
        "chain id as bytes": [b"x", *fields[1:]],
    }
    for name, value in bad_headers.items():
        raw = encode(value)
        cert = sign_certificate(chain.keys, CHAIN_ID, 7, hashlib.sha256(raw).digest())
        answer = chain.answer(cert=cert, headerHex=raw.hex(), hash=None, height=None)
        assert check_header(js, answer) == "malformed", name
    cert = chain.certificate()
    sigs = [[x.public_key, x.signature] for x in cert.signatures]
    bad_certs = {
        "not commit": ["vote", 7, 0, cert.value_id, sigs],
        "4 items": ["commit", 7, 0, cert.value_id],
        "short value id": ["commit", 7, 0, cert.value_id[:31], sigs],
        "short signature": ["commit", 7, 0, cert.value_id, [[sigs[0][0], sigs[0][1][:63]]]],
        "signature entry of 3": ["commit", 7, 0, cert.value_id, [[*sigs[0], b""]]],
        "round as text": ["commit", 7, "0", cert.value_id, sigs],
    }
    for name, value in bad_certs.items():
        assert check_header(js, chain.answer(cert=encode(value))) == "malformed", name


def test_browser_without_ed25519_says_so(js, chain):
    """Where WebCrypto has no Ed25519 the header is not checked, and the page says
    why rather than calling the signatures bad."""
    js.evaluate(
        """() => {
        const real = crypto.subtle.importKey.bind(crypto.subtle);
        crypto.subtle.importKey = (format, data, algorithm, ...rest) =>
          algorithm?.name === "Ed25519"
            ? Promise.reject(new DOMException("no Ed25519", "NotSupportedError"))
            : real(format, data, algorithm, ...rest);
      }"""
    )
    assert check_header(js, chain.answer()) == "unsupported"


def test_pinned_set_catches_a_node_that_invents_its_own_validators(js, chain):
    """With a pinned set, a header whose set is not it is accepted only when
    signers from the pinned set hold more than 1/3 of its power."""
    set_hash = chain.vset.hash().hex()
    pinned = {"chain_id": CHAIN_ID, "hash": set_hash, "validators": chain.validators()}
    assert check_header(js, chain.answer(trusted=pinned)) == "ok"
    by_hash = {"chain_id": CHAIN_ID, "hash": set_hash}  # members not seen yet
    assert check_header(js, chain.answer(trusted=by_hash)) == "ok"

    # a node with its own keys: a valid chain of its own, and none of the pinned signers
    fake = Chain(powers=(50, 50), base=50)
    assert check_header(js, fake.answer()) == "ok"  # without a pin: nothing to compare
    assert check_header(js, fake.answer(trusted=pinned)) == "pinned_set"
    assert check_header(js, fake.answer(trusted=by_hash)) == "pinned_set"
    pinned_other_chain = {**pinned, "chain_id": "other"}
    assert check_header(js, chain.answer(trusted=pinned_other_chain)) == "pinned_chain"

    # the set changed: two of the pinned validators stay (40 + 10 of 100 > 1/3)
    answer = chain.moved_to([chain.keys[0], chain.keys[3], *keys(2, base=60)], (40, 10, 30, 30))
    assert check_header(js, {**answer, "trusted": pinned}) == "ok"
    # without the pinned members a change of set cannot be followed
    assert check_header(js, {**answer, "trusted": by_hash}) == "pinned_set"
    # members that are not the pinned set's are refused
    wrong_members = {**pinned, "validators": fake.validators()}
    assert check_header(js, {**answer, "trusted": wrong_members}) == "malformed"
    # only 10 + 20 of the pinned 100 stay (30 is not above 1/3)
    answer = chain.moved_to([chain.keys[2], chain.keys[3], *keys(2, base=60)], (20, 10, 40, 30))
    assert check_header(js, answer) == "ok"
    assert check_header(js, {**answer, "trusted": pinned}) == "pinned_set"


# ---------------------------------------------------------------- state and focus proofs

VERIFY_SMT = """async (a) => {
  try {
    return await V.verifySmtProof(V.fromHex(a.root), V.fromHex(a.key),
      a.value === null ? null : V.fromHex(a.value), V.fromHex(a.proof));
  } catch (e) { if (e instanceof V.VerifyError) return e.check; throw e; }
}"""


def smt_check(js, root: bytes, key: bytes, value: bytes | None, proof: smt.Proof | bytes):
    raw = proof if isinstance(proof, bytes) else proof.encode()
    args = {
        "root": root.hex(),
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": raw.hex(),
    }
    return js.evaluate(VERIFY_SMT, args)


def test_state_proofs_match_the_chain_verifier(js, chain):
    """Inclusion and exclusion proofs: JS agrees with store.verify_proof on
    honest proofs and on each kind of lie."""
    root, nodes = chain.root, chain.nodes
    present = sorted(chain.state)[:6]
    absent = [b"/token/acct/" + bytes([200 + i]) * 20 for i in range(12)]
    kinds = set()
    for key in present + absent:
        proof = smt.prove(nodes.get, root, key)
        value = chain.state.get(key)
        kinds.add((value is None, proof.leaf is None))
        assert smt_check(js, root, key, value, proof) is True
        # the value changed, or said absent / present when it is not
        wrong = b"\x00" if value is None else value + b"\x00"
        assert smt_check(js, root, key, wrong, proof) is False
        assert smt.verify_proof(root, key, wrong, proof) is False
        if value is not None:
            assert smt_check(js, root, key, None, proof) is False
        # the proof of another state's root
        other_root, _ = Chain.build({**chain.state, b"/kv/params": b"\x01"})
        assert smt_check(js, other_root, key, value, proof) is False
    assert (True, True) in kinds and (True, False) in kinds and (False, True) in kinds

    key = present[0]
    proof = smt.prove(nodes.get, root, key)
    value = chain.state[key]
    path = smt.key_path(key)
    # "absent" by showing the key's own leaf as another key's
    own_leaf = smt.Proof(proof.siblings, (path, hashlib.sha256(value).digest()))
    assert smt.verify_proof(root, key, None, own_leaf) is False
    assert smt_check(js, root, key, None, own_leaf) is False
    # an inclusion proof may carry no other leaf
    extra = smt.Proof(proof.siblings, (bytes(32), bytes(32)))
    assert smt_check(js, root, key, value, extra) is False
    # an exclusion leaf off the walked prefix, in a tree folded to fit it
    other = bytes([path[0] ^ 0x80]) + path[1:]
    other_leaf, sibling = smt.leaf_hash(other, bytes(32)), bytes([3]) * 32
    pair = (sibling, other_leaf) if path[0] & 0x80 else (other_leaf, sibling)
    forged_root = smt.node_hash(*pair)
    off_prefix = smt.Proof((sibling,), (other, bytes(32)))
    assert smt.verify_proof(forged_root, key, None, off_prefix) is False
    assert smt_check(js, forged_root, key, None, off_prefix) is False
    # a malformed proof is an error, not a quiet false: a bitmap of the wrong
    # size, or a sibling more than the bitmap lists (the chain refuses both)
    assert smt_check(js, root, key, value, b"\x84\x01\x40\x80\xf6") == "malformed"
    depth, bitmap, full, leaf = decode(proof.encode())
    padded = encode([depth, bitmap, [*full, bytes([5]) * 32], leaf])
    with pytest.raises(DecodeError):
        smt.Proof.decode(padded)
    assert smt_check(js, root, key, value, padded) == "malformed"


def test_merkle_paths_match_rfc6962(js):
    leaves = [bytes([i]) * (i % 5 + 1) for i in range(13)]
    for size in (1, 2, 3, 5, 8, 13):
        root = merkle_root(leaves[:size])
        for index in range(size):
            path = merkle_proof(leaves[:size], index)
            got = js.evaluate(
                """async (a) => {
                const p = a.path.map(V.fromHex), r = V.fromHex(a.root), l = V.fromHex(a.leaf);
                return [await V.verifyMerklePath(r, l, a.i, a.n, p),
                        await V.verifyMerklePath(r, l, a.i + 1, a.n, p),
                        await V.verifyMerklePath(r, l, a.i, a.n + 1, p),
                        await V.verifyMerklePath(r, V.fromHex(a.leaf + "00"), a.i, a.n, p),
                        await V.verifyMerklePath(r, l, a.i, a.n, [...p, r]),
                        V.toHex(await V.merkleRoot(a.all.map(V.fromHex)))];
              }""",
                {
                    "root": root.hex(),
                    "leaf": leaves[index].hex(),
                    "path": [p.hex() for p in path],
                    "i": index,
                    "n": size,
                    "all": [x.hex() for x in leaves[:size]],
                },
            )
            leaf, extra = leaves[index], [*path, root]
            expected = [
                verify_merkle_proof(root, leaf, index, size, path),
                verify_merkle_proof(root, leaf, index + 1, size, path),
                verify_merkle_proof(root, leaf, index, size + 1, path),
                verify_merkle_proof(root, leaf + b"\x00", index, size, path),
                verify_merkle_proof(root, leaf, index, size, extra),
            ]
            assert expected[0] is True and expected[3] is False and expected[4] is False
            assert got[:5] == expected, (size, index, got)
            assert got[5] == root.hex()


def focus_check(js, chain: Chain, index: int, proof: dict, header: Header | None = None, cid=None):
    args = {
        "header": encode((header or chain.header).to_cbor()).hex(),
        "cid": cid or _cid_text(chain.cids[index]),
        "proof": proof,
    }
    check = js.evaluate(VERIFY_FOCUS, args)
    return check, js.evaluate("window.proved")


def _cid_text(raw: bytes) -> str:
    from focusflow.core.cid import cid_from_bytes

    return cid_from_bytes(raw)


def test_particle_focus_proofs(js, chain):
    """A particle's focus: its index through the committed particle list, the
    focus record, and its chunk's RFC 6962 path to the header's focus root."""
    for index in (0, 1023, 1024, 2499):
        check, proved = focus_check(js, chain, index, chain.particle_proof(index))
        assert (check, proved) == ("ok", str(int(chain.q[index])))

    honest = chain.particle_proof(5)
    # another particle's index (its entry is not this CID)
    assert focus_check(js, chain, 5, chain.particle_proof(6))[0] == "particle_index"
    # a particle list chunk of another state
    other = Chain(n_particles=2500)
    other.state[b"/kv/params"] = b"\x02"
    other.root, other.nodes = Chain.build(other.state)
    lie = {**honest, "index_proof": other.particle_proof(5)["index_proof"]}
    assert focus_check(js, chain, 5, lie)[0] == "state_proof"
    # the chunk of another focus vector (every value one more)
    bumped = Chain()
    bumped.q = chain.q + np.uint64(1)
    lie = {**honest, "chunk": bumped.particle_proof(5)["chunk"]}
    assert focus_check(js, chain, 5, lie)[0] == "focus_proof"
    # an honest proof whose answer states another value
    lie = {**honest, "focus_q": honest["focus_q"] + 1}
    assert focus_check(js, chain, 5, lie)[0] == "value_mismatch"
    # a path of another chunk
    lie = {**honest, "path": chain.particle_proof(1500)["path"]}
    assert focus_check(js, chain, 5, lie)[0] == "focus_proof"
    # a header whose focus root is not the state's focus record
    header = chain.make_header(7, focus_root=bytes([4]) * 32)
    assert focus_check(js, chain, 5, honest, header=header)[0] == "focus_record"
    # a particle past the committed count
    short = Chain(n_particles=2500)
    short.state[FOCUS_KEY] = encode(
        {"root": short.focus_root, "particles": 2000, "scale": SCALE, "chunk": 1024}
    )
    short.root, short.nodes = Chain.build(short.state)
    short.header = short.make_header(7)
    assert focus_check(js, short, 2100, short.particle_proof(2100))[0] == "particle_index"


def test_name_proofs(js, chain):
    """A name's record proves the particle it names, or that it is not registered."""
    hub = cid_to_bytes(cid_of_text("hub"))
    state = {**chain.state, b"/kv/name/hub": encode([hub, bytes(20)])}
    root, nodes = Chain.build(state)
    header = chain.make_header(7, state_root=root)

    def check(name: str, value: bytes | None, proof_key: bytes | None = None):
        proof = smt.prove(nodes.get, root, proof_key or b"/kv/name/" + name.encode())
        args = {
            "header": encode(header.to_cbor()).hex(),
            "name": name,
            "value": None if value is None else value.hex(),
            "proof": proof.encode().hex(),
        }
        return js.evaluate(
            """async (a) => { let r;
            const check = await attempt(async () => {
              r = await V.verifyName(V.decodeHeader(V.fromHex(a.header)), a.name, a); });
            return check === "ok" ? (r === null ? null : V.toHex(r)) : check; }""",
            args,
        )

    assert check("hub", state[b"/kv/name/hub"]) == hub.hex()
    assert check("nobody", None) is None
    # "not registered" for a registered name, or another name's record as this one's
    assert check("hub", None) == "state_proof"
    assert check("nobody", state[b"/kv/name/hub"], b"/kv/name/hub") == "state_proof"


def test_cid_spellings(js):
    for text in ("a", "hello world", "particle 7"):
        cid = cid_of_text(text)
        assert js.evaluate("(c) => V.toHex(V.cidToBytes(c))", cid) == cid_to_bytes(cid).hex()
    v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    assert js.evaluate("(c) => V.toHex(V.cidToBytes(c))", v0) == cid_to_bytes(v0).hex()
    assert js.evaluate("(c) => attempt(() => V.cidToBytes(c))", "zQmYwAP") == "malformed"
    # base32 with its two spare bits set is another spelling of no CID
    cid = cid_of_text("a")
    b32 = "abcdefghijklmnopqrstuvwxyz234567"
    stray = cid[:-1] + b32[b32.index(cid[-1]) | 1]
    assert stray != cid
    assert js.evaluate("(c) => attempt(() => V.cidToBytes(c))", stray) == "malformed"


# ---------------------------------------------------------------- the page against real nodes

HUB_NAME = "verified-hub"
GHOST_NAME = "ghost-name"


class LyingProxy:
    """A real HTTP and WebSocket server on loopback in front of an honest node.

    It forwards every request (and relays the live socket) and, while ``lie``
    names one, rewrites the answers that lie touches, as a node that lies
    would serve them: the page cannot tell it from a node.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.lie: str | None = None
        self.client: httpx.AsyncClient | None = None
        self.own_keys = keys(3, base=90)  # the keys of the validators it invents
        self.own_set = set_of(self.own_keys, (10, 10, 10))
        self.spoke = ""  # a particle the name lie points to
        self.hub = ""
        self.url = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/v1/ws", self.relay),
                Route("/{path:path}", self.forward, methods=["GET", "POST"]),
            ],
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Closes the upstream client when the server stops: its pooled
        connections live on the server's loop and must close before it does."""
        yield
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def forward(self, request: Request) -> Response:
        if self.lie == "name_invented" and request.url.path == f"/v1/names/{GHOST_NAME}":
            # a name nobody registered, said to name the hub
            doc = {"name": GHOST_NAME, "cid": self.hub, "owner": "focus1" + "q" * 38}
            return Response(json.dumps(doc), media_type="application/json")
        if self.client is None:
            self.client = httpx.AsyncClient(base_url=self.upstream, timeout=10)
        r = await self.client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "")},
        )
        body, ctype = r.content, r.headers.get("content-type", "")
        if self.lie and r.status_code == 200 and ctype.startswith("application/json"):
            body = json.dumps(self.tamper(request.url.path, json.loads(body))).encode()
        return Response(body, status_code=r.status_code, media_type=ctype or None)

    async def relay(self, ws: WebSocket) -> None:
        await ws.accept()
        url = self.upstream.replace("http://", "ws://") + "/v1/ws"
        async with websockets.connect(url) as up:

            async def down() -> None:
                async for msg in up:
                    doc = json.loads(msg)
                    if self.lie == "focus_value" and doc.get("type") == "focus":
                        for p in doc["particles"]:
                            self.bump(p)
                    await ws.send_text(json.dumps(doc))

            async def upward() -> None:
                while True:
                    await up.send(await ws.receive_text())

            tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(upward())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()

    @staticmethod
    def bump(p: dict) -> None:
        p["focus_q"] += 1
        p["focus"] = p["focus_q"] / SCALE

    def tamper(self, path: str, doc: dict) -> dict:
        lie = self.lie
        if lie == "focus_value" and path.startswith("/v1/focus/particles/"):
            self.bump(doc)
        elif lie == "focus_value" and path == "/v1/focus/top":
            for p in doc["particles"]:
                self.bump(p)
        elif lie == "focus_chunk" and path.startswith("/v1/light/proofs/particle/"):
            # the value and its chunk changed together: the chunk leads elsewhere
            chunk = bytearray.fromhex(doc["chunk"])
            at = 8 * (doc["index"] % FOCUS_CHUNK)
            q = int.from_bytes(chunk[at : at + 8], "little") + 1
            chunk[at : at + 8] = q.to_bytes(8, "little")
            doc["chunk"], doc["focus_q"] = chunk.hex(), q
        elif lie == "name_cid" and path.startswith("/v1/names/"):
            doc["cid"] = self.spoke  # another particle in the graph
        elif lie == "other_root" and path.startswith("/v1/light/proofs/name/"):
            # the true record, proven in a state of the liar's making
            key, value = bytes.fromhex(doc["key"]), bytes.fromhex(doc["value"])
            state = {key: value, b"/kv/params": b"\x01", b"/kv/name/x": b"\x02"}
            root, nodes = Chain.build(state)
            doc["proof"] = smt.prove(nodes.get, root, key).encode().hex()
        elif lie == "forged_cert" and path.startswith("/v1/light/header/"):
            cert = decode_certificate(bytes.fromhex(doc["certificate_cbor"]))
            first = cert.signatures[0]
            forged = bytes([first.signature[0] ^ 1]) + first.signature[1:]
            sigs = (CommitSignature(first.public_key, forged), *cert.signatures[1:])
            doc["certificate_cbor"] = encode_certificate(replace(cert, signatures=sigs)).hex()
        elif lie == "own_set" and path.startswith("/v1/light/header/"):
            # the same block, said to be decided by validators of the liar's own
            header = Header.from_cbor(decode(bytes.fromhex(doc["header_cbor"])))
            header = replace(header, validators_hash=self.own_set.hash())
            cert = sign_certificate(self.own_keys, header.chain_id, header.height, header.hash)
            doc.update(
                hash=header.hash.hex(),
                header_cbor=encode(header.to_cbor()).hex(),
                certificate_cbor=encode_certificate(cert).hex(),
                validators=validators_json(self.own_set),
            )
        return doc


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A devnet with a hub particle that 25 others link to, named HUB_NAME."""
    net = start_devnet(tmp_path_factory.mktemp("verified") / "home")
    tag = f"verified-{time.time_ns()}"
    hub = cid_of_text(f"{tag} hub")
    # 25 spokes: the top list shows 20 particles, each checked
    links = [[cid_to_bytes(cid_of_text(f"{tag} spoke {i}")), cid_to_bytes(hub)] for i in range(25)]
    msgs = [
        Msg("link", {"links": links}),
        Msg("name.register", {"name": HUB_NAME, "cid": cid_to_bytes(hub)}),
    ]
    tx = signed(net, net.dev_key(), msgs)
    with net.client() as c:
        assert c.post("/v1/txs", json={"tx": tx.encoded.hex()}).status_code == 202
    assert wait_tx(net, tx.hash.hex())["code"] == "ok"
    net.hub = hub
    net.spoke = cid_of_text(f"{tag} spoke 0")
    yield net
    net.stop()


@pytest.fixture(scope="module")
def proxy(node):
    liar = LyingProxy(node.api.rstrip("/"))
    with serve(liar.app()) as url:
        liar.url = url
        liar.spoke, liar.hub = node.spoke, node.hub
        yield liar


@pytest.fixture
def open_page(browser):
    """Opens a page in a fresh browser context (its own localStorage)."""
    contexts, errors = [], []

    def opener(url: str):
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url, wait_until="domcontentloaded")
        return page

    yield opener
    for c in contexts:
        c.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def mark(page, selector: str, state: str) -> None:
    page.wait_for_selector(f'{selector}[data-verified="{state}"]')


def open_by_name(page, hub: str, name: str = HUB_NAME, mode: str = "auto") -> None:
    # Searched once the page has its first answers: before them, a particle it
    # has not seen is first checked with a query, whose first run in a busy
    # full suite could outlast the wait below.
    page.wait_for_selector("#top-list li")
    page.select_option("#search-mode", mode)
    page.fill("#search", name)
    page.click("#search-go")
    page.wait_for_selector(f'#particle[data-cid="{hub}"] #particle-focus')


def test_honest_node_everything_verifies(node, open_page, tmp_path):
    page = open_page(f"{node.api.rstrip('/')}/?verified=1")
    # every mark the page sets, from the start: an honest node never earns a
    # mark other than pending and yes (not even "not checked")
    page.evaluate(
        """() => {
        window.marksSeen = [];
        new MutationObserver((records) => {
          for (const r of records) {
            const v = r.target.dataset.verified;
            if (v !== "pending" && v !== "yes") marksSeen.push(`${v}: ${r.target.title}`);
          }
        }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-verified"]});
      }"""
    )
    assert page.is_checked("#verified-toggle")
    mark(page, "#header-mark", "yes")
    text = page.text_content("#verified-header")
    assert "verified" in text and "node's word" in text  # nothing pinned yet
    open_by_name(page, node.hub)
    mark(page, "#particle-focus-mark", "yes")
    mark(page, "#name-mark", "yes")
    page.wait_for_function(
        """() => {
        const marks = [...document.querySelectorAll('#top-list .vmark')];
        return marks.length === 20 && marks.every((m) => m.dataset.verified === 'yes');
      }"""
    )
    assert page.is_hidden("#verify-problems-box")
    page.wait_for_timeout(2500)  # a second round of checks
    assert page.evaluate("marksSeen") == []
    shot = tmp_path / "web-verified.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    # pin the set; the header still verifies, now against the pin
    page.click("#pin")
    page.wait_for_selector('#trust[data-pinned="true"]')
    page.wait_for_function(
        "!document.querySelector('#verified-header').textContent.includes(\"node's word\")"
    )
    mark(page, "#header-mark", "yes")
    assert page.is_hidden("#verify-problems-box")

    # off: no marks, no panel; the choice is remembered
    page.click("#verified-toggle")
    assert page.is_hidden("#verified") and page.is_hidden("#header-mark")
    page.goto(f"{node.api.rstrip('/')}/")
    page.wait_for_selector("#top-list li")
    assert not page.is_checked("#verified-toggle")
    page.click("#verified-toggle")
    page.goto(f"{node.api.rstrip('/')}/")
    mark(page, "#header-mark", "yes")
    assert page.is_checked("#verified-toggle")


LIES = {
    # lie: (what the page is asked to show, the mark that must turn red, the check)
    "focus_value": ("particle", "#particle-focus-mark", "value_mismatch"),
    "focus_chunk": ("particle", "#particle-focus-mark", "focus_proof"),
    "other_root": ("name", "#name-mark", "state_proof"),
    "name_cid": ("name", "#name-mark", "value_mismatch"),
    "name_invented": ("name", "#name-mark", "value_mismatch"),
    "forged_cert": ("header", "#header-mark", "cert_signature"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_lying_node_is_caught(lie, node, proxy, open_page):
    what, selector, check = LIES[lie]
    proxy.lie = lie
    try:
        page = open_page(f"{proxy.url}/?verified=1")
        name = GHOST_NAME if lie == "name_invented" else HUB_NAME
        if what != "header":
            # searched as a name: in auto mode the page asks the name's proof
            # whether it is registered before it asks what it names, and the
            # invented name would be text
            mode = "name" if lie == "name_invented" else "auto"
            open_by_name(page, node.spoke if lie == "name_cid" else node.hub, name, mode)
        mark(page, selector, "no")
        named = {"particle": f"focus {node.hub}", "name": f"name {name}"}.get(what)
        where = f'[data-what="{named}"]' if named else f'[data-check="{check}"]'
        problem = page.locator(f"#verify-problems li{where}").first
        problem.wait_for()
        assert problem.get_attribute("data-check") == check
        text = problem.text_content()
        assert "does not verify" in text
        if what == "header":
            assert problem.get_attribute("data-what").startswith("header ")
            assert "bad precommit signature" in text
    finally:
        proxy.lie = None


def test_pinned_set_catches_a_node_with_validators_of_its_own(node, proxy, open_page):
    """A node that re-signs the chain's blocks with keys of its own passes
    without a pin (the page says the set is the node's word); with the true set
    pinned it is caught."""
    proxy.lie = "own_set"
    try:
        page = open_page(f"{proxy.url}/?verified=1")
        mark(page, "#header-mark", "yes")
        assert "node's word" in page.text_content("#verified-header")
    finally:
        proxy.lie = None
    page = open_page(f"{proxy.url}/?verified=1")
    mark(page, "#header-mark", "yes")
    page.fill("#pin-hash", node_validators_hash(node))
    page.click("#pin")
    page.wait_for_selector('#trust[data-pinned="true"]')
    proxy.lie = "own_set"
    try:
        page.locator('#verify-problems li[data-check="pinned_set"]').first.wait_for()
        mark(page, "#header-mark", "no")
    finally:
        proxy.lie = None


def node_validators_hash(node) -> str:
    with node.client() as c:
        return c.get("/v1/light/header/latest").json()["header"]["validators_hash"]
