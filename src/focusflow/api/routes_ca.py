"""The network's CA and its transparency log, served by every node (``modules.ca``).

``GET /v1/ca`` names the group (threshold, key, members), its root and the
log's head; ``GET /v1/ca/crl`` answers the newest CRL the group signed; ``GET
/v1/ca/certs/{serial}`` answers an issued certificate with its RFC 6962
inclusion proof against that head; ``GET /v1/ct/consistency`` proves an older
head a prefix of a newer one; ``GET /v1/ca/federation`` lists the other
networks' roots it vouches for; ``GET /v1/bootstrap`` says which of the bootstrap
phases this node is in (``node.bootstrap``). The head is in the state, so a client that also
asks ``/v1/proofs?key=/kv/ct/head`` checks it against a header the validators
signed. Proofs come from a copy of the log kept in memory and extended as the
chain's log grows (``ctlog.MerkleLog``): a proof costs O(log² n), not a read
of every leaf.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from focusflow.api import schemas
from focusflow.api.errors import ERROR_RESPONSES, ApiError
from focusflow.api.params import INT64_MAX
from focusflow.api.state import app_state
from focusflow.core.encoding import decode
from focusflow.core.keys import encode_address
from focusflow.services.trust.ctlog import MerkleLog
from focusflow.state_schema.ca import (
    CROSS_PREFIX,
    certificate_for,
    is_revoked,
    issued,
    latest_crl,
    load_group,
    log_head,
    log_leaves,
)

if TYPE_CHECKING:
    from focusflow.chain.state import Readable

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
SerialPath = Annotated[
    str, Path(description="a certificate's serial, 32 hex digits", pattern="^[0-9a-f]{32}$")
]
KeyPath = Annotated[
    str, Path(description="an Ed25519 node key, 64 hex digits", pattern="^[0-9a-f]{64}$")
]


class LogCopy:
    """The chain's transparency log in memory, extended to the size asked for."""

    def __init__(self) -> None:
        self.log = MerkleLog()
        self.lock = threading.Lock()

    def at(self, reader: Readable, size: int) -> MerkleLog:
        with self.lock:
            for leaf in log_leaves(reader, size, self.log.size):
                self.log.append_hash(leaf)
            return self.log


@router.get("/ca", response_model=None, responses={200: {"model": schemas.CaOut}})
def ca(request: Request) -> JSONResponse:
    """The CA group, its root certificate (PEM) and the log's head."""
    with app_state(request).node.chain.reader() as r:
        group = load_group(r)
        size, root_hash, _ = log_head(r)
        height = r.height
    if group is None:
        raise ApiError("not_found", "this chain has no certificate authority")
    root = x509.load_der_x509_certificate(group.root)
    return JSONResponse(
        {
            "height": height,
            "threshold": group.threshold,
            "public_key": group.public_key.hex(),
            "root_pem": root.public_bytes(serialization.Encoding.PEM).decode(),
            "members": [
                {"address": encode_address(a), "identifier": i}
                for a, (i, _) in sorted(group.members.items(), key=lambda m: m[1][0])
            ],
            "log": {"tree_size": size, "root_hash": root_hash.hex()},
        }
    )


@router.get("/ca/crl", response_model=None, responses={200: {"model": schemas.CaCrlOut}})
def crl(request: Request) -> JSONResponse:
    """The newest CRL the group signed (PEM) and its CRL number."""
    with app_state(request).node.chain.reader() as r:
        found = latest_crl(r)
        height = r.height
    if found is None:
        raise ApiError("not_found", "the CA has signed no CRL: nothing was revoked")
    number, der = found
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    return JSONResponse({"height": height, "number": number, "pem": pem.decode()})


@router.get(
    "/ca/certs/{serial}", response_model=None, responses={200: {"model": schemas.CaCertOut}}
)
def certificate(request: Request, serial: SerialPath) -> JSONResponse:
    """An issued certificate (PEM) and its inclusion proof against the log's head."""
    state = app_state(request)
    with state.node.chain.reader() as r:
        found = issued(r, bytes.fromhex(serial))
        size, root_hash, _ = log_head(r)
        height = r.height
        if found is None:
            raise ApiError("not_found", f"no certificate {serial} was issued on this chain")
        log = state.ct_log.at(r, size)
    index, der = found
    with state.ct_log.lock:
        path = log.inclusion_proof(index, size)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return JSONResponse(
        {
            "serial": serial,
            "height": height,
            "pem": pem.decode(),
            "leaf_index": index,
            "tree_size": size,
            "root_hash": root_hash.hex(),
            "audit_path": [h.hex() for h in path],
        }
    )


@router.get("/ca/keys/{key}", response_model=None, responses={200: {"model": schemas.CaKeyOut}})
def key_certificate(request: Request, key: KeyPath) -> JSONResponse:
    """The newest certificate issued for a node key (PEM) and whether it is
    revoked: how a light client of another network finds a validator's
    certificate (``light.federation``), checking it itself."""
    with app_state(request).node.chain.reader() as r:
        found = certificate_for(r, bytes.fromhex(key))
        revoked = found is not None and is_revoked(r, found[0])
        height = r.height
    if found is None:
        raise ApiError("not_found", f"no certificate was issued for key {key} on this chain")
    serial, der = found
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    doc = {"key": key, "serial": serial.hex(), "height": height, "pem": pem.decode()}
    return JSONResponse({**doc, "revoked": revoked})


@router.get(
    "/ct/consistency", response_model=None, responses={200: {"model": schemas.CtConsistencyOut}}
)
def consistency(
    request: Request,
    first: Annotated[int, Query(ge=1, le=INT64_MAX)],
    second: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> JSONResponse:
    """RFC 6962's consistency proof between the log's heads at ``first`` and
    ``second`` leaves (the current size if not given)."""
    state = app_state(request)
    with state.node.chain.reader() as r:
        size, _, _ = log_head(r)
        log = state.ct_log.at(r, size)
    end = size if second is None else second
    if end > size:
        raise ApiError("not_found", f"the log has {size} entries, no tree of {end}")
    if first > end:
        raise ApiError("not_found", "no consistency proof leads from a larger tree to a smaller")
    with state.ct_log.lock:
        proof = log.consistency_proof(first, end)
        first_root, second_root = log.root(first), log.root(end)
    return JSONResponse(
        {
            "first": first,
            "second": end,
            "first_root": first_root.hex(),
            "second_root": second_root.hex(),
            "proof": [h.hex() for h in proof],
        }
    )


@router.get(
    "/ca/federation", response_model=None, responses={200: {"model": schemas.FederationOut}}
)
def federation(request: Request) -> JSONResponse:
    """The other networks' roots this network vouches for (``ca.federate``,
    decided by the validators' votes), each with its cross-certificate; a
    withdrawn one is gone here and revoked in the CRL."""
    chain = app_state(request).node.chain
    with chain.reader() as r:
        if load_group(r) is None:
            raise ApiError("not_found", "this chain has no certificate authority")
        roots = [
            (key[len(CROSS_PREFIX) :], decode(raw, "ca cross"))
            for key, raw in r.items(CROSS_PREFIX)
        ]
    return JSONResponse(
        {
            "height": chain.height,
            "roots": [
                {
                    "root_hash": root_hash.hex(),
                    "serial": serial.hex(),
                    "pem": x509.load_der_x509_certificate(der)
                    .public_bytes(serialization.Encoding.PEM)
                    .decode(),
                }
                for root_hash, (serial, der) in roots
            ],
        }
    )


@router.get("/bootstrap", response_model=None, responses={200: {"model": schemas.BootstrapOut}})
def bootstrap(request: Request) -> JSONResponse:
    """This node's bootstrap phase (``node.bootstrap``): the certificate it
    presents, who vouched for each end of its connections, and where it dials
    each validator (from its certified name, or as configured)."""
    duty = app_state(request).node.bootstrap
    if duty is None:
        off = {"phase": 0, "name": "self-signed", "certificate": None, "reached": {}, "links": []}
        off["peers"] = []
        return JSONResponse({"enabled": False, **off})
    return JSONResponse({"enabled": True, **duty.status()})
