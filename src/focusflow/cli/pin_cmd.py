"""``focusflow tx pin``: ask the network to keep a blob, and earn its bounty.

``request`` escrows a bounty for a blob (``modules.proofs``); ``prove`` is the
pinner's side in one command: it opens a challenge, waits for it to be
committed, reads the byte it picks, asks the node that holds the blob for the
proof (``GET /v1/blobs/{cid}/proof``), checks it here, and sends it; ``close``
takes back what is left once the request expired. docs/storage.md, *Proofs of
state*.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from focusflow.cli.common import client
from focusflow.cli.tx_cmd import _msg, _submit
from focusflow.cli.tx_options import TxOptions, tx_options
from focusflow.core.cid import cid_to_bytes
from focusflow.core.errors import InvalidParameterError

pin_app = typer.Typer(
    help="Pins: a bounty for keeping a blob, paid per proof.", no_args_is_help=True
)


def _request_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise InvalidParameterError("a pin request id is 32 hex digits")
    return raw


@pin_app.command("request")
@tx_options()
def request_cmd(
    cid: Annotated[str, typer.Argument(help="The blob's CID (its root).")],
    size: Annotated[int, typer.Option("--size", help="The blob's size in bytes.")],
    reward: Annotated[int, typer.Option("--reward", help="Paid per verified proof.")],
    bounty: Annotated[int, typer.Option("--bounty", help="Escrowed; pays the rewards.")],
    blocks: Annotated[int, typer.Option("--blocks", help="How long it runs.")],
    *,
    opts: TxOptions,
) -> None:
    """Escrow BOUNTY for the network to keep CID, paying REWARD per proof."""
    body = {"cid": cid_to_bytes(cid), "size": size, "reward": reward, "bounty": bounty,
            "blocks": blocks}  # fmt: skip
    _submit(opts, [_msg("pin.request", body)], {"cid": cid, "bounty": bounty})


@pin_app.command("close")
@tx_options()
def close_cmd(
    request: Annotated[str, typer.Argument(help="The pin request's id (hex).")],
    *,
    opts: TxOptions,
) -> None:
    """Take back what is left of an expired pin request's escrow."""
    body = {"request": _request_id(request)}
    _submit(opts, [_msg("pin.close", body)], {"request": request})


@pin_app.command("prove")
@tx_options(fixed={"nonce": None, "wait": True})
def prove_cmd(
    request: Annotated[str, typer.Argument(help="The pin request's id (hex).")],
    *,
    opts: TxOptions,
) -> None:
    """Prove that the node holds the requested blob, and be paid its reward."""
    from focusflow.services.storage.proofs import challenge_offset, verify_retrievability

    raw = _request_id(request)
    with client(opts.home, opts.node) as api:
        doc = api.pin(request)
    opened = _submit(opts, [_msg("pin.challenge", {"request": raw})], {"request": request})
    events = opened["events"] or []
    challenge = next(bytes.fromhex(e["challenge"]) for e in events if e["type"] == "pin.challenge")
    # the proof goes in a later block than its challenge
    _wait_next_block(opts.home, opts.node, opened["height"], opts.timeout)
    offset = challenge_offset(challenge, doc["size"])
    with client(opts.home, opts.node) as api:
        proof = api.blob_proof(doc["cid"], offset)
    path = [bytes.fromhex(b) for b in proof["path"]]
    verify_retrievability(cid_to_bytes(doc["cid"]), doc["size"], offset, path)
    body = {"request": raw, "path": path}
    _submit(opts, [_msg("pin.prove", body)], {"request": request, "offset": offset})


def _wait_next_block(home: str | None, node: str | None, height: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with client(home, node) as api:
        while api.status()["height"] <= height:
            if time.monotonic() > deadline:
                raise InvalidParameterError(f"no block after height {height} in {timeout} s")
            time.sleep(0.1)
