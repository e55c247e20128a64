"""The light client: follows a node's headers by certificates and checks every answer.

:class:`LightClient` asks one node (``/v1/light`` routes, docs/api.md) and trusts
nothing it says: headers are verified from the store's newest trusted header by
skipping verification, bisecting when the trusted set's signers of a far header
hold too little power (CometBFT's ``VerifySkipping``), down to adjacent steps
whose validator-set change is proven from the trusted state. Each answer is
then checked against the verified header of the height it names
(focusflow.light.answers). A header that conflicts with a stored verified one
yet carries a valid certificate is a fork (:class:`ForkError`), as is a
witness's valid header that differs from the primary's.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from cryptography import x509

from focusflow.chain.genesis import Genesis, read_json
from focusflow.chain.params import KERNEL_PARAMS
from focusflow.client import (
    BadNodeAnswerError,
    NodeClient,
    NodeUnreachableError,
    RemoteError,
)
from focusflow.consensus.certificate import verify_certificate
from focusflow.consensus.errors import InvalidCertificateError
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.light import answers
from focusflow.light.errors import (
    BadCertificateError,
    ForkError,
    HeaderMismatchError,
    InsufficientTrustError,
    MalformedAnswerError,
    NodeRequestError,
    TrustExpiredError,
    ValidatorSetMismatchError,
    VerificationError,
    WrongValueError,
)
from focusflow.light.federation import (
    FederatedTrust,
    certified_validators,
    check_cross,
    require_two_thirds,
    revoked_serials,
)
from focusflow.light.store import LightStore
from focusflow.light.trust import DEFAULT_TRUST_LEVEL, DEFAULT_TRUSTING_PERIOD_S
from focusflow.light.verify import (
    LightBlock,
    parse_light_block,
    verify_adjacent,
    verify_skipping,
)

#: Times a query is asked again when the node moved past the asked height.
STALE_RETRIES = 3
#: Most headers one sync verifies (bisection over 2^63 heights needs ~63 per change).
MAX_VERIFY_STEPS = 100_000
#: Largest answer read from a node (a links page is capped at 4 MiB of messages,
#: twice that in hex).
MAX_ANSWER_BYTES = 16 << 20
#: Seconds a witness may take to reach the primary's height: a witness that
#: commits the same block a moment later is behind, not wrong.
WITNESS_WAIT_S = 10.0
#: Pause between asks of a witness that has not reached the height yet.
WITNESS_POLL_S = 0.2
#: Largest certificate and CRL read from a node's answer (PEM characters).
MAX_PEM = 8 << 10
MAX_CRL_PEM = 4 << 20


#: What a check of an answer proves (an ``answers.*Answer``).
_Proven = TypeVar("_Proven")


def now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    """One node's ``/v1/light`` routes over HTTP; answers are JSON, unverified.

    The requests go through the shared client (``focusflow.client``), with
    answers capped at MAX_ANSWER_BYTES. What goes wrong is said in the light
    client's terms (docs/light.md, *Errors and exit status*): an answer that
    is not JSON or over the cap is ``malformed_answer``, a node's lie (exit
    3); one the node refuses or cannot give is ``node_request_failed`` (exit
    2), carrying the node's own code in ``node_code``.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise NodeRequestError(f"a node URL is http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        try:
            self.api = NodeClient(self.url, timeout=timeout, max_bytes=MAX_ANSWER_BYTES)
        except InvalidParameterError as exc:
            raise NodeRequestError(exc.message) from None

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> object:
        """The JSON of a success answer, unchecked; NodeRequestError for an error answer."""
        try:
            return self.api.get(path, params)
        except BadNodeAnswerError as exc:
            raise MalformedAnswerError(exc.message) from None
        except RemoteError as exc:
            raise NodeRequestError(
                f"{self.url}{path}: {exc.message} ({exc.code})",
                status=exc.status,
                node_code=exc.code,
            ) from None
        except NodeUnreachableError as exc:
            raise NodeRequestError(exc.message) from None
        except NodeRequestError as exc:
            raise NodeRequestError(
                f"{self.url}{path}: answered {exc.status}", status=exc.status
            ) from None

    def header(self, height: int | None) -> object:
        return self.get("/v1/light/header/" + ("latest" if height is None else str(height)))

    def get_or_none(self, path: str) -> object:
        """Like :meth:`get`, but None where the node answers 404 (it has none)."""
        try:
            return self.get(path)
        except NodeRequestError as exc:
            if exc.node_code == "not_found":
                return None
            raise


def _pem_certificate(doc: object, key: str) -> x509.Certificate:
    """The certificate under ``key`` of a node's JSON answer, bounded and parsed."""
    pem = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(pem, str) or len(pem) > MAX_PEM:
        raise MalformedAnswerError(f"a certificate answer has a PEM {key!r} of at most {MAX_PEM}")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise MalformedAnswerError(f"{key!r} is not a PEM certificate") from None


def _pem_crl(doc: object) -> x509.CertificateRevocationList:
    pem = doc.get("pem") if isinstance(doc, dict) else None
    if not isinstance(pem, str) or len(pem) > MAX_CRL_PEM:
        raise MalformedAnswerError(f"a CRL answer has a PEM 'pem' of at most {MAX_CRL_PEM}")
    try:
        return x509.load_pem_x509_crl(pem.encode())
    except ValueError:
        raise MalformedAnswerError("'pem' is not a PEM CRL") from None


def genesis_trust(path: Path) -> tuple[str, ValidatorSet]:
    """(chain id, validator set of height 1) from a genesis file (GenesisError if bad).

    The kernel's parameters are checked as a node checks them; the modules'
    sections are left out: the light client runs no module, imports none (so no
    section is declared in its process), and trusts the genesis for its chain
    id and validators only."""
    raw = read_json(Path(path))
    if isinstance(raw, dict) and isinstance(raw.get("params"), dict):
        kernel = {k: v for k, v in raw["params"].items() if k in KERNEL_PARAMS}
        raw = {**raw, "params": kernel}
    gen = Genesis.from_json(raw)
    return gen.chain_id, gen.validator_set()


class LightClient:
    """Verified headers in ``store``, extended from ``node`` on demand."""

    def __init__(
        self,
        store: LightStore,
        node: Node,
        *,
        trusting_period_s: float = DEFAULT_TRUSTING_PERIOD_S,
        trust_level: Fraction = DEFAULT_TRUST_LEVEL,
        clock: Callable[[], int] = now_ms,
        witness_wait_s: float = WITNESS_WAIT_S,
    ) -> None:
        self.store = store
        self.witness_wait_s = witness_wait_s
        self.node = node
        self.trusting_period_s = trusting_period_s
        self.trust_level = trust_level
        self.clock = clock
        #: Headers verified by this client object (the CLI's ``verified_headers``).
        self.verified = 0

    @property
    def chain_id(self) -> str:
        return self.store.chain_id

    # --- roots of trust -----------------------------------------------------

    def trust_genesis(self, genesis_set: ValidatorSet) -> LightBlock:
        """Verify header 1 against the genesis set and make it the root of trust."""
        block = self._fetch(self.node, 1)
        if block.header.validators_hash != genesis_set.hash():
            raise ValidatorSetMismatchError("header 1 is not signed by the genesis validator set")
        self.store.add(block, root=True)
        self.verified += 1
        return block

    def trust_hash(self, height: int, block_hash: bytes) -> LightBlock:
        """Take the header at ``height`` whose hash the user gives as the root of trust."""
        block = self._fetch(self.node, height)
        if block.hash != block_hash:
            raise HeaderMismatchError(
                f"the node's header {height} is {block.hash.hex()}, not the trusted "
                f"{block_hash.hex()}"
            )
        self._check_known(block, self.node)
        self.store.add(block, root=True)
        self.verified += 1
        return block

    def trust_federated(
        self, home_root: x509.Certificate, cross: x509.Certificate, height: int | None = None
    ) -> tuple[LightBlock, FederatedTrust]:
        """Take the node's header at ``height`` (default: its newest) as the root
        of trust because its validators hold certificates from a network the
        user's own network vouches for (``light.federation``)."""
        now = dt.datetime.fromtimestamp(self.clock() / 1000, dt.UTC)
        permitted = check_cross(home_root, cross, now)
        block = self._fetch(self.node, height)
        if block.header.time_ms + self.trusting_period_s * 1000 < self.clock():
            raise TrustExpiredError(
                f"header {block.height} is older than the trusting period: take a newer one"
            )
        certificates = {}
        for validator in block.validators.validators:
            doc = self.node.get_or_none(f"/v1/ca/keys/{validator.public_key.hex()}")
            if doc is not None:
                certificates[validator.public_key] = _pem_certificate(doc, "pem")
        crl_doc = self.node.get_or_none("/v1/ca/crl")
        crl = None if crl_doc is None else _pem_crl(crl_doc)
        trust = certified_validators(
            block, cross, permitted, certificates, revoked_serials(crl, cross)
        )
        require_two_thirds(trust, block.height)
        self._check_known(block, self.node)
        self.store.add(block, root=True)
        self.verified += 1
        return block, trust

    # --- headers ---------------------------------------------------------------

    def _fetch(self, node: Node, height: int | None) -> LightBlock:
        return parse_light_block(node.header(height), self.chain_id, height)

    def sync(self, height: int | None = None) -> LightBlock:
        """Verify the node's header at ``height`` (default: its newest) and store it."""
        target = self._fetch(self.node, height)
        return self.verify_to(target, self.node)

    def verify_to(self, target: LightBlock, node: Node) -> LightBlock:
        """Verify ``target`` from the store by bisection; headers come from ``node``."""
        self._check_known(target, node)
        if self.store.get(target.height) is not None:
            return target
        trusted = self.store.at_or_below(target.height)
        if trusted is None:
            raise BelowTrustRootError(
                f"height {target.height} is below the root of trust {self.store.root_height}"
            )
        pending = [target]
        steps = 0
        while pending:
            steps += 1
            if steps > MAX_VERIFY_STEPS:
                raise VerificationError("bisection did not end; the node's headers are looping")
            candidate = pending[-1]
            try:
                self._verify_step(trusted, candidate, node)
            except InsufficientTrustError:
                pivot = (trusted.height + candidate.height) // 2
                block = self._fetch(node, pivot)
                self._check_known(block, node)
                pending.append(block)
                continue
            self.store.add(candidate)
            self.verified += 1
            trusted = pending.pop()
        return target

    def _verify_step(self, trusted: LightBlock, target: LightBlock, node: Node) -> None:
        now = self.clock()
        if target.height == trusted.height + 1:
            verify_adjacent(
                trusted, target, lambda t: self._next_set(t, node), now, self.trusting_period_s
            )
        else:
            verify_skipping(trusted, target, now, self.trusting_period_s, self.trust_level)

    def _next_set(self, trusted: LightBlock, node: Node) -> ValidatorSet | None:
        doc = node.get(
            f"/v1/light/proofs/validators/{trusted.height + 1}", {"height": trusted.height}
        )
        return answers.verify_next_set(doc, trusted)

    def _check_known(self, block: LightBlock, node: Node) -> None:
        """A header at a height already verified must be that one; a valid other is a fork."""
        known = self.store.get(block.height)
        if known is None or known.hash == block.hash:
            return
        assert block.certificate is not None
        try:
            verify_certificate(
                block.certificate,
                known.validators,
                self.chain_id,
                height=block.height,
                value_id=block.hash,
            )
        except InvalidCertificateError as exc:
            raise BadCertificateError(
                f"header {block.height} from {node.url} is not the verified one and its "
                f"certificate is not of the verified set: {exc}"
            ) from None
        raise ForkError(block.height, known.hash, block.hash, node.url)

    def check_witness(self, witness: Node, block: LightBlock) -> None:
        """Compare ``witness``'s header at ``block.height`` with the verified one.

        A different header is verified from this client's root of trust with the
        witness's headers (without storing them): if it verifies, the two nodes
        show a fork (ForkError naming both hashes); if not, the witness lied.
        """
        other = self._fetch_reached(witness, block.height)
        if other.hash == block.hash:
            return
        trusted = self.store.get(self.store.root_height) if self.store.root_height else None
        if trusted is None or trusted.height >= other.height:
            self._check_known(other, witness)
            return
        scratch = LightClient(
            _ScratchStore(self.store.chain_id, trusted),
            witness,
            trusting_period_s=self.trusting_period_s,
            trust_level=self.trust_level,
            clock=self.clock,
        )
        scratch.verify_to(other, witness)
        raise ForkError(block.height, block.hash, other.hash, witness.url)

    def _fetch_reached(self, witness: Node, height: int) -> LightBlock:
        """The witness's header at ``height``, waiting up to ``witness_wait_s``
        while it answers ``unknown_block`` (it has not committed it yet)."""
        deadline = time.monotonic() + self.witness_wait_s
        while True:
            try:
                return self._fetch(witness, height)
            except NodeRequestError as exc:
                if exc.node_code != "unknown_block":
                    raise
                if time.monotonic() >= deadline:
                    raise WitnessLaggingError(
                        f"the witness {witness.url} has no header {height} after "
                        f"{self.witness_wait_s:g} s: it is behind the primary"
                    ) from None
            time.sleep(WITNESS_POLL_S)

    # --- verified answers ------------------------------------------------------

    def block_at(self, height: int) -> LightBlock:
        """The verified block at ``height``: stored, or verified now from the node."""
        found = self.store.get(height)
        if found is not None:
            return found
        return self.sync(height)

    def _answer(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        verify: Callable[[object, LightBlock], _Proven],
    ) -> _Proven:
        """Ask, verify the header of the height the answer names, check the answer.

        A node that moved past the height between the two is asked again at the
        newer height (``stale_height``), at most STALE_RETRIES times.
        """
        params = dict(params or {})
        for _ in range(STALE_RETRIES):
            try:
                doc = self.node.get(path, params)
            except NodeRequestError as exc:
                if exc.node_code == "stale_height" and "height" in params:
                    params.pop("height")
                    continue
                raise
            height = doc.get("height") if isinstance(doc, dict) else None
            if not isinstance(height, int) or isinstance(height, bool) or height < 0:
                raise MalformedAnswerError(f"{path}: the answer names no height")
            return verify(doc, self.block_at(height))
        raise NodeRequestError(f"{path}: the node kept moving past the asked height")

    def balance(self, address: bytes) -> answers.AccountAnswer:
        from focusflow.core.keys import encode_address

        return self._answer(
            f"/v1/light/proofs/account/{encode_address(address)}",
            None,
            lambda d, b: answers.verify_account(d, b, address),
        )

    def name(self, name: str) -> answers.NameAnswer:
        return self._answer(
            f"/v1/light/proofs/name/{quote(name, safe='')}",
            None,
            lambda d, b: answers.verify_name(d, b, name),
        )

    def particle(self, cid: str) -> answers.FocusAnswer:
        return self._answer(
            f"/v1/light/proofs/particle/{cid}",
            None,
            lambda d, b: answers.verify_particle(d, b, cid),
        )

    def text(self, cid: str) -> str | None:
        """The text the node keeps for particle ``cid``, or None when it keeps none
        (or serves no texts: a 404).

        No header is needed: a particle is the hash of its text, so the text is
        hashed here and one that is not ``cid``'s is refused (``wrong_value``),
        whoever the node is. Texts are at most MAX_TEXT_BYTES of UTF-8.
        """
        from focusflow.core.cid import cid_to_bytes, raw_cid_bytes
        from focusflow.store.particle_texts import MAX_TEXT_BYTES

        want = cid_to_bytes(cid)
        try:
            doc = self.node.get(f"/v1/particles/{quote(cid, safe='')}/text")
        except NodeRequestError as exc:
            if exc.status == 404:
                return None
            raise
        text = doc.get("text") if isinstance(doc, dict) else None
        if not isinstance(text, str) or not text:
            raise MalformedAnswerError(f"the text of {cid} is not a non-empty string")
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_TEXT_BYTES:
            raise MalformedAnswerError(f"the text of {cid} is over {MAX_TEXT_BYTES} bytes")
        if raw_cid_bytes(raw) != want:
            raise WrongValueError(f"the node's text for {cid} does not hash to it")
        return text

    def global_particle(self, cid: str) -> answers.GlobalFocusAnswer:
        """A particle's global focus from a hub: this client must trust the hub."""
        return self._answer(
            f"/v1/global/particles/{cid}",
            None,
            lambda d, b: answers.verify_global_particle(d, b, cid),
        )

    def links(
        self, cid: str, direction: str = "out", offset: int = 0, limit: int = 20
    ) -> answers.LinksAnswer:
        return self._answer(
            f"/v1/light/proofs/links/{cid}",
            {"direction": direction, "offset": offset, "limit": limit},
            lambda d, b: answers.verify_links(d, b, cid, direction),
        )


class WitnessLaggingError(NodeRequestError):
    """A witness never reached the height the primary's header was checked at."""

    code = "witness_lagging"


class BelowTrustRootError(FocusflowError):
    """A height below the root of trust: this client verifies forward only."""

    code = "below_trust_root"


class _ScratchStore(LightStore):
    """An in-memory store for checking a witness's chain (never saved)."""

    def __init__(self, chain_id: str, root: LightBlock) -> None:
        super().__init__(Path("."), chain_id)
        self.add(root, root=True)

    def save(self) -> None:  # pragma: no cover - never called
        raise RuntimeError("a scratch store is not saved")


__all__ = ["BelowTrustRootError", "LightClient", "Node", "genesis_trust", "now_ms"]
