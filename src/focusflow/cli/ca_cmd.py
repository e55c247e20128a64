"""``focusflow ca`` and ``focusflow ct``: a standalone CA and its transparency log.

``ca init`` makes a root and an intermediate under ``HOME/ca``; ``ca issue``
a short-lived leaf (``OUT/cert.pem``, ``OUT/key.pem``, ``OUT/chain.pem``),
appended to the log; ``ca revoke`` marks one revoked; ``ca crl`` writes the
CRL. ``ct proof`` prints a certificate's inclusion proof and ``ct
consistency`` a consistency proof between two tree sizes (hex, RFC 6962).
docs/trust.md is the contract.

:func:`require_ca` is the check ``focusflow tx ca ...`` runs before signing: a
chain whose genesis names no CA refuses every ``ca.*`` message, so sending one
would only burn its fee.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from focusflow.cli.common import console, print_json
from focusflow.core.errors import FocusflowError

if TYPE_CHECKING:
    from focusflow.cli.txbuild import Pinned
    from focusflow.client import NodeClient

ca_app = typer.Typer(help="A standalone certificate authority (X.509) with a transparency log.")
ct_app = typer.Typer(help="The CA's transparency log (RFC 6962): inclusion and consistency proofs.")


class NoCaError(FocusflowError):
    """The chain has no certificate authority: a ``ca.*`` transaction would fail."""

    code = "no_ca"


def require_ca(api: NodeClient, pin: Pinned, sender: str) -> None:
    """Refuse, before anything is signed, a CA transaction to a chain without a CA
    (``GET /v1/ca`` answers 404): its receipt would be ``ca_refused`` and its fee burnt."""
    if api.get_optional("/v1/ca") is None:
        raise NoCaError(
            f"chain {pin.chain_id} has no certificate authority (its genesis names none); "
            "nothing was sent"
        )


HomeOpt = typer.Option(..., "--home", help="The CA's directory (ca/ and ct/ live there).")


@ca_app.command("init")
def init_cmd(
    home: Path = HomeOpt,
    name: str = typer.Option("focusflow", "--name", help="The CA's name (its certificates' CN)."),
) -> None:
    """Create a root and an intermediate under HOME/ca."""
    from focusflow.services.trust.ca import StandaloneCa

    ca = StandaloneCa.init(home, name)
    console.print(f"CA ready: {ca.ca_dir / 'root.pem'}, {ca.ca_dir / 'intermediate.pem'}")


@ca_app.command("issue")
def issue_cmd(
    home: Path = HomeOpt,
    name: str = typer.Option(..., "--name", help="The certificate's name (CN and DNS name)."),
    out: Path = typer.Option(..., "--out", help="Directory for cert.pem, key.pem, chain.pem."),
    hours: int = typer.Option(24, "--hours", help="Lifetime in hours (1..2160)."),
    as_json: bool = typer.Option(False, "--json", help="Print serial and leaf index as JSON."),
) -> None:
    """Issue a leaf certificate signed by the intermediate and log it."""
    from focusflow.services.trust.ca import StandaloneCa

    ca = StandaloneCa.open(home)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "key.pem").exists():
        from focusflow.services.trust.ca import CaError

        raise CaError(f"{out / 'key.pem'} exists: issue into a new directory")
    issued = ca.issue(name, hours)
    (out / "cert.pem").write_bytes(issued.cert_pem)
    fd = os.open(out / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(issued.key_pem)
    chain = issued.cert_pem + (ca.ca_dir / "intermediate.pem").read_bytes()
    (out / "chain.pem").write_bytes(chain)
    summary = {"serial": f"{issued.serial:x}", "name": name, "leaf_index": issued.leaf_index}
    if as_json:
        print_json(summary)
    else:
        console.print(f"issued {name}: serial {issued.serial:x}, log entry {issued.leaf_index}")


@ca_app.command("revoke")
def revoke_cmd(
    home: Path = HomeOpt,
    cert: Path = typer.Option(..., "--cert", help="The certificate (PEM) to revoke."),
) -> None:
    """Mark a certificate this CA issued as revoked (the next CRL lists it)."""
    from focusflow.services.trust.ca import StandaloneCa, read_certificate

    ca = StandaloneCa.open(home)
    parsed = read_certificate(cert)
    ca.revoke(parsed)
    console.print(f"revoked serial {parsed.serial_number:x}")


@ca_app.command("crl")
def crl_cmd(
    home: Path = HomeOpt,
    out: Path = typer.Option(..., "--out", help="Where to write the CRL (PEM)."),
) -> None:
    """Write the CRL of every revoked certificate, signed by the intermediate."""
    from focusflow.services.trust.ca import StandaloneCa

    out.write_bytes(StandaloneCa.open(home).crl())
    console.print(f"CRL written: {out}")


@ct_app.command("proof")
def proof_cmd(
    home: Path = HomeOpt,
    cert: Path = typer.Option(..., "--cert", help="A certificate (PEM) the CA issued."),
    as_json: bool = typer.Option(False, "--json", help="Print the proof as JSON."),
) -> None:
    """The inclusion proof of a certificate in the log, at its current size."""
    from focusflow.services.trust.ca import StandaloneCa, read_certificate

    proof = StandaloneCa.open(home).inclusion(read_certificate(cert))
    if as_json:
        print_json(proof)
    else:
        console.print(
            f"leaf {proof['leaf_index']} of {proof['tree_size']}, root {proof['root_hash']}, "
            f"{len(proof['audit_path'])} hashes"
        )


@ct_app.command("sth")
def sth_cmd(
    home: Path = HomeOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the signed tree head as JSON."),
) -> None:
    """The log's signed tree head: its size and root, signed by the log's key
    (HOME/ct/log_pub.pem verifies it)."""
    from focusflow.services.trust.ca import StandaloneCa

    sth = StandaloneCa.open(home).signed_tree_head()
    if as_json:
        print_json(sth.to_json())
    else:
        console.print(f"size {sth.tree_size}, root {sth.root.hex()}, at {sth.timestamp_ms} ms")


@ct_app.command("consistency")
def consistency_cmd(
    home: Path = HomeOpt,
    first: int = typer.Option(..., "--first", help="The older tree size."),
    second: int = typer.Option(..., "--second", help="The newer tree size."),
    as_json: bool = typer.Option(False, "--json", help="Print the proof as JSON."),
) -> None:
    """The consistency proof that the log's first FIRST entries are a prefix of its first SECOND."""
    from focusflow.services.trust.ca import StandaloneCa

    proof = StandaloneCa.open(home).consistency(first, second)
    if as_json:
        print_json(proof)
    else:
        console.print(
            f"{first} -> {second}: roots {proof['first_root']} {proof['second_root']}, "
            f"{len(proof['proof'])} hashes"
        )
