"""``focusflow tx``: sign transactions with a wallet key and submit them to a node.

Every command takes the same options: ``--from NAME`` (the signer; the devnet's
funded ``dev`` key by default), ``--fee`` (default: the chain's minimum for the
transaction's size), ``--nonce`` (default: the account's next, counting its
transactions pending in the node's mempool, so several can be sent without
waiting), ``--wait`` (poll until the transaction is in a block and print its
result code; a failed result is an error), ``--chain-id`` and ``--max-fee``
(what the node may not decide: :func:`~focusflow.cli.txbuild.pin_chain`),
``--home``, ``--node`` and ``--json``, declared once (``cli.tx_options``) and
received as one ``opts``. Arguments are checked before the key is unlocked and
before anything is sent, and :func:`~focusflow.cli.txbuild.preflight` refuses
what would only burn a fee.

The chain package takes a second or two to import, so it is imported inside
the commands: ``focusflow keys`` and ``focusflow query`` stay fast.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from focusflow.cli.ca_cmd import require_ca
from focusflow.cli.common import (
    PASSPHRASE_NOTE,
    address,
    client,
    console,
    load_key,
    particle,
    print_json,
    read_input,
)
from focusflow.cli.tx_options import DEFAULT_SIGNER, TxOptions, tx_options
from focusflow.core.errors import InvalidParameterError
from focusflow.core.home import resolve_home
from focusflow.core.keys import decode_address, encode_address, parse_account

if TYPE_CHECKING:
    from collections.abc import Callable

    from focusflow.chain.tx import Msg
    from focusflow.cli.txbuild import Pinned
    from focusflow.client import NodeClient
    from focusflow.core.keys import KeyPair

    #: What a command checks against the node once the chain is pinned (``_submit``).
    Check = Callable[[NodeClient, Pinned, str], dict[str, int] | None]

tx_app = typer.Typer(help="Sign and submit transactions.", no_args_is_help=True)
name_app = typer.Typer(help="Names: short names for particles.", no_args_is_help=True)
tx_app.add_typer(name_app, name="name")
ca_app = typer.Typer(
    help="The network's CA: certificates for names you own (docs/trust.md).",
    no_args_is_help=True,
)
tx_app.add_typer(ca_app, name="ca")
validator_app = typer.Typer(
    help="Validators: join or leave the set at the next epoch.", no_args_is_help=True
)
tx_app.add_typer(validator_app, name="validator")
wasm_app = typer.Typer(help="Upload, instantiate and execute WASM contracts.", no_args_is_help=True)
tx_app.add_typer(wasm_app, name="wasm")

TextOpt = Annotated[
    bool, typer.Option("--text", help="Take every particle argument as text, never as a CID.")
]


def _amount(value: int) -> int:
    if not 0 < value < 2**63:
        raise InvalidParameterError(f"amount {value} must be a positive integer below 2^63")
    return value


def _submit(
    opts: TxOptions,
    msgs: list[Msg],
    extra: dict[str, Any] | None = None,
    describe: list[str] | None = None,
    key: KeyPair | None = None,
    texts: list[str] | None = None,
    check: Check | None = None,
    alone: bool = True,
    carried: int | None = None,
) -> dict[str, Any]:
    """Unlock, sign at the right nonce and fee, check, send, optionally wait; print.
    Returns what it printed (with the receipt's events once committed).

    ``alone``: False for one of several transactions a command sends (links
    routed to their rollups): the caller prints the JSON of all and checks
    their receipts once all are sent.

    ``key`` signs instead of the wallet key ``opts.signer`` (the node's validator key).
    ``texts`` (the texts particles were made from that the transaction does not
    carry) go to the node once it has accepted the transaction: it keeps texts
    only of particles that links name. ``carried``: how many texts the
    transaction's link messages carry themselves, reported beside them.
    ``check(api, pin, address)`` runs once the chain is pinned, before anything is
    signed: it raises what the node's state shows would fail, may add to ``extra``
    and ``describe``, and returns what the transaction will spend by denom that
    ``txbuild.spends`` cannot know (a deposit at the pool's ratio), or None.
    """
    from focusflow.cli import txbuild

    signer_name = opts.signer if key is None else "validator key"
    if key is None:
        key = load_key(opts.home, opts.signer or DEFAULT_SIGNER)
    with client(opts.home, opts.node) as api:
        pin = txbuild.pin_chain(api, resolve_home(opts.home), opts.chain_id, opts.max_fee)
        more = (check(api, pin, key.address) if check is not None else None) or {}
        account = api.account(key.address)
        nonce = account.next_nonce if opts.nonce is None else opts.nonce
        tx = txbuild.build_tx(
            key, pin.chain_id, nonce, msgs, pin.params, opts.fee, pin.max_fee, pin.fee_per_byte
        )
        denoms = {*txbuild.spends(tx.msgs, pin.params), *more}
        balances = None
        if pin.params.economics or denoms - {"cyb"}:
            balances = api.balances(key.address)
        txbuild.preflight(tx, account, pin.params, balances, more)
        tx_hash = api.submit(tx.encoded)
        result: dict[str, Any] = {
            "hash": tx_hash,
            "from": key.address,
            "nonce": nonce,
            "fee": tx.fee,
            "status": "pending",
            **(extra or {}),
        }
        if not opts.as_json:
            for line in describe or []:
                console.print(line)
            console.print(
                f"tx {tx_hash} submitted (from {signer_name} {key.address}, "
                f"nonce {nonce}, fee {tx.fee})"
            )
        if carried is not None or texts:
            sent = _send_texts(api, texts, opts.as_json) if texts else {}
            result["texts"] = {"carried": carried or 0, **sent}
            if not opts.as_json and carried:
                console.print(f"texts: {carried} carried by the transaction")
        if opts.wait:
            record = txbuild.wait_tx(api, tx_hash, opts.timeout)
            result.update(
                status="committed",
                height=record.get("height"),
                index=record.get("index"),
                code=record.get("code"),
                log=record.get("log"),
                events=record.get("events"),
            )
            if not opts.as_json:
                console.print(f"committed at height {record.get('height')}: {record.get('code')}")
        if opts.as_json and alone:
            print_json(result)
        if opts.wait and alone:
            sys.stdout.flush()  # the result first, then the error line if it failed
            txbuild.check_receipt(result)
    return result


def _send_texts(api: Any, texts: list[str], as_json: bool) -> dict[str, Any]:
    """Give the node the texts of the particles just linked; what it kept.

    The link is in the mempool already, so a node that cannot take the texts
    (an older node, one that keeps none) is a warning on stderr, not a failure.
    """
    from focusflow.cli.particle_texts import send_texts
    from focusflow.core.errors import FocusflowError

    try:
        sent = send_texts(api, texts)
    except FocusflowError as exc:
        warning = f"warning: the node did not keep the texts: {exc.message} [{exc.code}]"
        typer.echo(warning, err=True)
        return {"error": {"code": exc.code, "message": exc.message}}
    if not as_json:
        console.print(f"texts: {sent.stored} kept by the node")
        if sent.too_large:
            console.print(f"texts: {sent.too_large} longer than a node keeps, not sent")
    return sent.as_json()


def _msg(type_: str, body: dict[str, Any]) -> Msg:
    from focusflow.chain.tx import Msg

    return Msg(type_, body)


@tx_app.command("send")
@tx_options()
def send_cmd(
    to: Annotated[str, typer.Argument(help="Recipient: an address or a wallet key name.")],
    amount: Annotated[int, typer.Argument(help="Amount in base units.")],
    denom: Annotated[
        str, typer.Option("--denom", help="The token: cyb, h, a pool's shares lp/A/B, ...")
    ] = "cyb",
    *,
    opts: TxOptions,
) -> None:
    """Send tokens to an address (cyb unless --denom names another token)."""
    denom = check_denom(denom, "--denom")
    dest = address(to, opts.home)
    body: dict[str, Any] = {"to": decode_address(dest), "amount": _amount(amount)}
    if denom != "cyb":  # a send without a denom is of cyb, and older nodes take it
        body["denom"] = denom
    _submit(opts, [_msg("send", body)], {"to": dest, "amount": amount, "denom": denom})


def check_denom(denom: str, what: str) -> str:
    """``denom`` if it names a token (``modules.tokens.is_denom``), else invalid_parameter."""
    from focusflow.modules.tokens import is_denom

    if not is_denom(denom):
        raise InvalidParameterError(
            f"{what} {denom!r} is not a denom: a lowercase letter and up to 15 lowercase "
            "letters or digits (cyb, h), or a pool's shares lp/A/B"
        )
    return denom


@tx_app.command("stake")
@tx_options()
def stake_cmd(
    amount: Annotated[int, typer.Argument(help="Amount to bond.")],
    *,
    opts: TxOptions,
) -> None:
    """Bond tokens: stake is a neuron's weight, and its links' budget."""
    _submit(opts, [_msg("stake", {"amount": _amount(amount)})], {"amount": amount})


@tx_app.command("unstake")
@tx_options()
def unstake_cmd(
    amount: Annotated[int, typer.Argument(help="Amount to unbond.")],
    *,
    opts: TxOptions,
) -> None:
    """Unbond tokens (liquid again after the unbonding period)."""
    _submit(opts, [_msg("unstake", {"amount": _amount(amount)})], {"amount": amount})


@tx_app.command("link")
@tx_options()
def link_cmd(
    particles: Annotated[
        list[str] | None,
        typer.Argument(metavar="FROM TO [FROM TO ...]", help="CIDs, or text that becomes a CID."),
    ] = None,
    as_text: TextOpt = False,
    proposals: Annotated[
        Path | None,
        typer.Option(
            "--proposals",
            help="Link the proposals of a from<TAB>to<TAB>probability file (a fine-tuned "
            "model's implicit links) instead of FROM TO arguments.",
        ),
    ] = None,
    top: Annotated[
        int | None, typer.Option("--top", help="With --proposals: only the N most probable.")
    ] = None,
    min_probability: Annotated[
        float,
        typer.Option(
            "--min-probability", help="With --proposals: only those at least this likely."
        ),
    ] = 0.0,
    *,
    opts: TxOptions,
) -> None:
    """Link particles: one cyberlink per FROM TO pair, all in one transaction.

    The texts of particles given as text travel in the transaction (at most
    64 of 4096 UTF-8 bytes each; the rest go to the node after it): every node
    that executes the block checks them against their CIDs and shows them.

    With ``--proposals FILE`` the pairs come from a model's proposals
    (cli/link_proposals.py): the chosen ones are shown with their
    probabilities and linked by this key, in one transaction, as a person who
    reviewed them would link them by hand.
    """
    particles = _proposed_pairs(particles or [], proposals, top, min_probability)
    if len(particles) % 2:
        raise InvalidParameterError(
            f"link takes FROM TO pairs; got {len(particles)} particles (one is unpaired)"
        )
    parsed = [particle(p, as_text=as_text) for p in particles]
    texts = [p for p, (cid, _) in zip(particles, parsed, strict=True) if as_text or cid != p]
    links, shown = [], []
    for i in range(0, len(parsed), 2):
        (a, a_raw), (b, b_raw) = parsed[i], parsed[i + 1]
        if a_raw == b_raw:
            raise InvalidParameterError(f"{particles[i]!r} -> {particles[i + 1]!r} is a self-link")
        links.append([a_raw, b_raw])
        shown.append([a, b])
    describe = [
        f"link {_label(particles[i], a)} -> {_label(particles[i + 1], b)}"
        for (a, b), i in zip(shown, range(0, len(particles), 2), strict=True)
    ]
    by_cid = {raw: p for p, (cid, raw) in zip(particles, parsed, strict=True) if p in texts}
    routes = _link_routes(opts, links)
    if routes is None:
        body, rest = _link_body(links, by_cid)
        _submit(
            opts,
            [_msg("link", body)],
            {"links": shown},
            describe,
            texts=rest,
            carried=len(body.get("texts", ())),
        )
        return
    results = []
    for (node, chain_id), idx in routes.items():
        body, rest = _link_body([links[i] for i in idx], by_cid)
        results.append(
            _submit(
                dataclasses.replace(opts, node=node, chain_id=chain_id),
                [_msg("link", body)],
                {"links": [shown[i] for i in idx], "chain_id": chain_id},
                [describe[i] for i in idx],
                texts=rest,
                alone=False,
                carried=len(body.get("texts", ())),
            )
        )
    if opts.as_json:
        print_json({"txs": results})
    if opts.wait:
        sys.stdout.flush()
        for result in results:
            from focusflow.cli import txbuild

            txbuild.check_receipt(result)


def _proposed_pairs(
    particles: list[str], proposals: Path | None, top: int | None, min_probability: float
) -> list[str]:
    """The FROM TO arguments, or the pairs of a proposals file (printed for
    review on stderr), flattened; InvalidParameterError for both or neither."""
    if proposals is None:
        if top is not None or min_probability:
            raise InvalidParameterError("--top and --min-probability go with --proposals FILE")
        if not particles:
            raise InvalidParameterError("link takes FROM TO pairs, or --proposals FILE")
        return particles
    if particles:
        raise InvalidParameterError("give FROM TO pairs or --proposals FILE, not both")
    from focusflow.cli.link_proposals import read_proposals

    chosen = read_proposals(proposals, top=top, min_probability=min_probability)
    if not chosen:
        raise InvalidParameterError(
            f"no proposal in {proposals} is at least {min_probability} likely: nothing to link"
        )
    for p in chosen:
        print(f"proposal {p.source} -> {p.target} (p = {p.probability:.4g})", file=sys.stderr)
    return [key for p in chosen for key in (p.source, p.target)]


def _link_body(
    links: list[list[bytes]], texts: dict[bytes, str]
) -> tuple[dict[str, Any], list[str]]:
    """A ``link`` message's body carrying the texts of its particles (``texts``:
    binary CID to the text it was made from), at most MAX_TEXTS_PER_TX of them;
    and the texts it names that do not fit, for the node's side channel (a text
    longer than a node keeps goes there too, which counts it as too large)."""
    from focusflow.cli.particle_texts import fits
    from focusflow.modules import MAX_TEXTS_PER_TX

    named = [cid for pair in links for cid in pair if cid in texts]
    carried: list[list[Any]] = []
    rest: list[str] = []
    for cid in dict.fromkeys(named):
        text = texts[cid]
        if fits(text) and len(carried) < MAX_TEXTS_PER_TX:
            carried.append([cid, text])
        else:
            rest.append(text)
    body: dict[str, Any] = {"links": links}
    if carried:
        body["texts"] = carried
    return body, rest


def _link_routes(
    opts: TxOptions, links: list[list[bytes]]
) -> dict[tuple[str | None, str | None], list[int]] | None:
    """In a network of rollups, the links grouped by the rollup that owns them:
    ``{(its API, its chain id): [link indices]}``; None when the node's chain
    holds them all (or is a chain on its own). The owner of each link follows
    the rule the node reports (``GET /v1/rollup``), so a user never names it."""
    from focusflow.client.errors import NodeUnreachableError
    from focusflow.focus.buckets import BucketRule, link_bucket

    try:
        with client(opts.home, opts.node) as api:
            doc = api.get_optional("/v1/rollup")
    except NodeUnreachableError:
        # Signing says why first (a missing key, say); then sending says this.
        return None
    if not isinstance(doc, dict) or doc.get("role") not in ("hub", "rollup"):
        return None
    rule: BucketRule = "semcon" if doc.get("rule") == "semcon" else "source"
    owners = [link_bucket(entry, int(doc["buckets"]), rule) for entry in links]
    if doc["role"] == "rollup" and all(o == doc["bucket"] for o in owners):
        return None
    routes: dict[tuple[str | None, str | None], list[int]] = {}
    for i, owner in enumerate(owners):
        entry = doc["rollups"][owner]
        if doc["role"] == "rollup" and owner == doc["bucket"]:
            where: tuple[str | None, str | None] = (opts.node, opts.chain_id)
        elif entry.get("apis"):
            where = (str(entry["apis"][0]), str(entry["chain_id"]))
        else:
            raise InvalidParameterError(
                f"links[{i}] belongs to bucket {owner} (chain {entry['chain_id']}), and the "
                "node knows no API of that rollup: pass --node of one; nothing was signed"
            )
        routes.setdefault(where, []).append(i)
    return routes


def _label(arg: str, cid: str) -> str:
    return cid if arg == cid else f"{arg!r} ({cid})"


@tx_app.command("blob")
@tx_options()
def blob_cmd(
    file: Annotated[str, typer.Argument(help="File to store on chain; - for stdin.")],
    *,
    opts: TxOptions,
) -> None:
    """Store content on chain under its CID (costs blob credits per byte)."""
    from focusflow.core.cid import cid_from_bytes, raw_cid_bytes

    data = read_input(file)
    if not data:
        raise InvalidParameterError("an empty blob stores nothing")
    cid = cid_from_bytes(raw_cid_bytes(data))
    extra = {"cid": cid, "size": len(data)}
    _submit(opts, [_msg("blob.put", {"data": data})], extra, [f"blob {cid} ({len(data)} bytes)"])


def _check_name(name: str) -> str:
    from focusflow.modules.names import check_name

    check_name(name)
    return name


@name_app.command("register")
@tx_options()
def name_register_cmd(
    name: Annotated[str, typer.Argument(help="3-32 of a-z 0-9 -, starting with a letter.")],
    target: Annotated[str, typer.Argument(help="The particle: a CID, or text.")],
    as_text: TextOpt = False,
    *,
    opts: TxOptions,
) -> None:
    """Register a name for a particle (burns the name fee; 10x for 3-4 letters)."""
    cid, raw = particle(target, as_text=as_text)
    body = {"name": _check_name(name), "cid": raw}
    _submit(opts, [_msg("name.register", body)], {"name": name, "cid": cid})


@ca_app.command("request")
@tx_options()
def ca_request_cmd(
    name: Annotated[str, typer.Argument(help="A name you own: the certificate is for NAME.focus.")],
    key: Annotated[str, typer.Argument(help="The node's Ed25519 public key: 64 hex digits.")],
    hours: Annotated[int, typer.Option("--hours", min=1, max=2160, help="Validity.")] = 24,
    *,
    opts: TxOptions,
) -> None:
    """Ask the network's CA for a certificate; the validators sign it in a few blocks
    (GET /v1/ca/certs/SERIAL, the serial in the transaction's ca.request event)."""
    raw = _hex_bytes(key, 32, "key")
    body = {"name": _check_name(name), "key": raw, "hours": hours}
    extra = {"name": name, "key": key, "hours": hours}
    _submit(opts, [_msg("ca.request", body)], extra, check=require_ca)


@ca_app.command("revoke")
@tx_options()
def ca_revoke_cmd(
    serial: Annotated[str, typer.Argument(help="The certificate's serial: 32 hex digits.")],
    *,
    opts: TxOptions,
) -> None:
    """Revoke a certificate you asked for; the validators sign the new CRL (GET /v1/ca/crl)."""
    body = {"serial": _hex_bytes(serial, 16, "serial")}
    _submit(opts, [_msg("ca.revoke", body)], {"serial": serial}, check=require_ca)


@ca_app.command("federate")
@tx_options()
def ca_federate_cmd(
    root: Annotated[Path, typer.Argument(help="The other network's root certificate (PEM).")],
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Validity.")] = 365,
    permit: Annotated[
        list[str] | None,
        typer.Option("--permit", help="A DNS name the other network may certify (repeatable)."),
    ] = None,
    *,
    opts: TxOptions,
) -> None:
    """Vote, as a validator, that the network vouch for another network's root;
    decided by 2/3 of the power, the validators sign a cross-certificate of it
    (GET /v1/ca/federation)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(root.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"{root}: not a PEM certificate ({exc})") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    body = {"root": der, "days": days, "permitted": sorted(permit or [])}
    _submit(opts, [_msg("ca.federate", body)], {"root": str(root), "days": days})


@ca_app.command("withdraw")
@tx_options()
def ca_withdraw_cmd(
    root_hash: Annotated[
        str, typer.Argument(help="SHA-256 of the other root's DER: 64 hex digits.")
    ],
    *,
    opts: TxOptions,
) -> None:
    """Vote, as a validator, to stop vouching for another network's root; decided,
    its cross-certificate is revoked in the next CRL."""
    body = {"root_hash": _hex_bytes(root_hash, 32, "root hash")}
    _submit(opts, [_msg("ca.withdraw", body)], {"root_hash": root_hash})


def _hex_bytes(text: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise InvalidParameterError(f"{what} must be {2 * size} hex digits, got {text!r}")
    return raw


@name_app.command("update")
@tx_options()
def name_update_cmd(
    name: Annotated[str, typer.Argument(help="A name you own.")],
    target: Annotated[str, typer.Argument(help="The new particle: a CID, or text.")],
    as_text: TextOpt = False,
    *,
    opts: TxOptions,
) -> None:
    """Point a name you own at another particle."""
    cid, raw = particle(target, as_text=as_text)
    body = {"name": _check_name(name), "cid": raw}
    _submit(opts, [_msg("name.update", body)], {"name": name, "cid": cid})


@name_app.command("transfer")
@tx_options()
def name_transfer_cmd(
    name: Annotated[str, typer.Argument(help="A name you own.")],
    to: Annotated[str, typer.Argument(help="New owner: an address or a wallet key name.")],
    *,
    opts: TxOptions,
) -> None:
    """Give a name you own to another address."""
    dest = address(to, opts.home)
    body = {"name": _check_name(name), "to": decode_address(dest)}
    _submit(opts, [_msg("name.transfer", body)], {"name": name, "to": dest})


@name_app.command("address")
@tx_options()
def name_address_cmd(
    name: Annotated[str, typer.Argument(help="A name you own.")],
    where: Annotated[
        str, typer.Argument(help="host:port your node listens at ([v6]:port), or '' to remove.")
    ],
    *,
    opts: TxOptions,
) -> None:
    """Say where the node of a name you own listens (DNS A/AAAA and SRV; peers dial it)."""
    if where:
        from focusflow.modules.names import check_address

        check_address(where)
    body = {"name": _check_name(name), "address": where}
    _submit(opts, [_msg("name.address", body)], {"name": name, "address": where})


ValidatorFromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        metavar="NAME",
        help="Wallet key of the validator (default: the home's validator_key). " + PASSPHRASE_NOTE,
    ),
]


def _validator_key(home: str | None, signer: str | None) -> KeyPair | None:
    """The home's validator key unless a wallet key is named."""
    if signer is not None:
        return None
    from focusflow.core.home import validator_key_path
    from focusflow.core.keys import KeyPair

    path = validator_key_path(resolve_home(home))
    if not path.exists():
        raise InvalidParameterError(
            f"{path} does not exist: give the validator's --home, or --from a wallet key"
        )
    return KeyPair.load(path)


@validator_app.command("register")
@tx_options(signer=(ValidatorFromOpt, None))
def validator_register_cmd(
    name: Annotated[str, typer.Option("--name", help="Shown in events; 32 characters.")] = "",
    stake: Annotated[
        int, typer.Option("--stake", min=0, help="Bond this much first, in the same tx.")
    ] = 0,
    *,
    opts: TxOptions,
) -> None:
    """Offer the key as a validator: it joins the set at the next epoch boundary
    with power bonded // power_unit (the largest max_validators stakes)."""
    if len(name) > 32 or not name.isprintable():
        raise InvalidParameterError("--name takes at most 32 printable characters")
    key = _validator_key(opts.home, opts.signer)
    msgs = [_msg("stake", {"amount": _amount(stake)})] if stake else []
    msgs.append(_msg("validator.register", {"name": name} if name else {}))
    _submit(opts, msgs, {"name": name, "stake": stake}, key=key)


@validator_app.command("unregister")
@tx_options(signer=(ValidatorFromOpt, None))
def validator_unregister_cmd(*, opts: TxOptions) -> None:
    """Leave the validator set at the next epoch boundary (stake stays bonded)."""
    key = _validator_key(opts.home, opts.signer)
    _submit(opts, [_msg("validator.unregister", {})], key=key)


GasOpt = Annotated[
    int, typer.Option("--gas", min=1, help="Most gas the call may use (the fee pays for it).")
]
MsgOpt = Annotated[str, typer.Option("--msg", help="The message: JSON text.")]


def _json_msg(text: str) -> bytes:
    import json

    from focusflow.core.jsontext import too_deep

    if too_deep(text, 32):
        raise InvalidParameterError("--msg nests deeper than 32 levels")
    try:
        json.loads(text)
    except ValueError:
        raise InvalidParameterError(f"--msg must be JSON, got {text!r}") from None
    return text.encode()


@wasm_app.command("store")
@tx_options()
def wasm_store_cmd(
    file: Annotated[str, typer.Argument(help="A .wasm module, or WAT text (.wat); - for stdin.")],
    *,
    opts: TxOptions,
) -> None:
    """Upload a contract's module; its code hash (SHA-256) names it."""
    from focusflow.core.hashing import sha256
    from focusflow.vm import wasm

    data = read_input(file)
    if not data.startswith(b"\0asm"):
        import wasmtime

        try:
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (UnicodeDecodeError, wasmtime.WasmtimeError) as exc:
            raise InvalidParameterError(
                f"{file}: neither a WASM module nor WAT text: {exc}"
            ) from None
    wasm.compile_module(data)  # refuse a bad module here, not after paying for it
    code_hash = sha256(data).hex()
    extra = {"code_hash": code_hash, "size": len(data)}
    _submit(opts, [_msg("wasm.store", {"code": data})], extra, [f"code {code_hash}"])


@wasm_app.command("instantiate")
@tx_options()
def wasm_instantiate_cmd(
    code: Annotated[str, typer.Argument(help="The code hash (hex) wasm store printed.")],
    msg: MsgOpt = "{}",
    label: Annotated[str, typer.Option("--label", help="A name for the instance.")] = "",
    gas: GasOpt = 10_000_000,
    *,
    opts: TxOptions,
) -> None:
    """Create an instance of stored code; with --wait its address is in the events."""
    try:
        code_hash = bytes.fromhex(code)
    except ValueError:
        code_hash = b""
    if len(code_hash) != 32:
        raise InvalidParameterError(f"code must be 64 hex digits, got {code!r}")
    body = {"code": code_hash, "msg": _json_msg(msg), "label": label, "gas": gas}
    extra: dict[str, Any] = {"code_hash": code, "label": label}
    describe: list[str] = []

    def name_the_instance(api: NodeClient, pin: Pinned, sender: str) -> None:
        """The instance's address follows from the sender and the nonce the
        transaction is signed at, so it is known, and printed, before it is sent."""
        from focusflow.core.keys import hex_address
        from focusflow.vm.wasm import contract_address

        nonce = api.account(sender).next_nonce if opts.nonce is None else opts.nonce
        raw = contract_address(decode_address(sender), nonce, 0)
        extra.update(contract=encode_address(raw), contract_hex=hex_address(raw))
        describe.append(f"contract {extra['contract']} ({extra['contract_hex']})")

    result = _submit(
        opts, [_msg("wasm.instantiate", body)], extra, describe, check=name_the_instance
    )
    _print_answer(opts, result)


@wasm_app.command("execute")
@tx_options()
def wasm_execute_cmd(
    contract: Annotated[
        str, typer.Argument(help="The instance's address: focus1... or 0x... (either spelling).")
    ],
    msg: MsgOpt = "{}",
    gas: GasOpt = 10_000_000,
    *,
    opts: TxOptions,
) -> None:
    """Call an instance's execute with a JSON message."""
    raw = parse_account(contract)
    body = {"contract": raw, "msg": _json_msg(msg), "gas": gas}
    result = _submit(opts, [_msg("wasm.execute", body)], {"contract": encode_address(raw)})
    _print_answer(opts, result)


def _print_answer(opts: TxOptions, result: dict[str, Any]) -> None:
    """A committed call's answer as people read it: the JSON a contract answers
    (CosmWasm's convention), else its bytes in hex."""
    if opts.as_json or result.get("code") != "ok":
        return
    from focusflow.cli.contract_answers import answer_text

    for event in result.get("events") or []:
        if event.get("type") in ("wasm.instantiate", "wasm.execute") and "answer" in event:
            console.print(f"answer {answer_text(bytes.fromhex(event['answer']))}")
