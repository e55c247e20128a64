"""``focusflow keys``: the wallet, named Ed25519 keys under ``<home>/keys``.

Keys are encrypted with a passphrase (asked twice, hidden; or
``$FOCUSFLOW_PASSPHRASE`` for scripts). An unencrypted key needs the explicit
``--unencrypted``, so nobody stores a funded key in the clear by accident. The
file format is documented in :mod:`focusflow.core.keystore` and docs/cli.md.
"""

from __future__ import annotations

import sys
from typing import Annotated, TypedDict

import typer
from rich.table import Table

from focusflow.cli.common import (
    HomeOpt,
    JsonOpt,
    console,
    keystore,
    load_key,
    new_passphrase,
    print_json,
    read_input,
)
from focusflow.core.errors import InputFileError, InvalidParameterError, KeyExistsError
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import KeyInfo, check_key_name

keys_app = typer.Typer(
    help="The wallet: create, list, show, export and import keys.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Key name: 1-64 of A-Z a-z 0-9 _ . -")]
UnencryptedOpt = Annotated[
    bool,
    typer.Option("--unencrypted", help="Store the seed in the clear (devnets and scripts only)."),
]


class KeyDoc(TypedDict):
    """A key as ``--json`` shows it (never its seed)."""

    name: str
    address: str
    public_key: str
    encrypted: bool


def _as_json(info: KeyInfo) -> KeyDoc:
    return {
        "name": info.name,
        "address": info.address,
        "public_key": info.public_key.hex(),
        "encrypted": info.encrypted,
    }


def _store_new(home: str | None, name: str, key: KeyPair, unencrypted: bool, as_json: bool) -> None:
    store = keystore(home)
    check_key_name(name)
    if store.exists(name):  # before asking for a passphrase that would be wasted
        raise KeyExistsError(f"a key named {name!r} already exists in {store.path}")
    passphrase = None if unencrypted else new_passphrase(name)
    info = store.add(name, key, passphrase)
    if as_json:
        print_json(_as_json(info))
        return
    how = "unencrypted" if unencrypted else "encrypted"
    console.print(f"key {info.name} ({how}) stored in {store.file_of(name)}")
    console.print(f"address: {info.address}")


@keys_app.command("add")
def add_cmd(
    name: NameArg,
    unencrypted: UnencryptedOpt = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new random key, encrypted with a passphrase: asked twice on a terminal,
    else read from $FOCUSFLOW_PASSPHRASE (scripts); --unencrypted stores it in the clear."""
    _store_new(home, name, KeyPair.generate(), unencrypted, as_json)
    if not as_json:
        console.print(f"back up its seed with: focusflow keys export {name}")


@keys_app.command("import")
def import_cmd(
    name: NameArg,
    seed_file: Annotated[
        str,
        typer.Option(
            "--seed-file", help="File holding the 32-byte seed as 64 hex digits; - for stdin."
        ),
    ],
    unencrypted: UnencryptedOpt = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store an existing key from its seed (as `keys export` prints it), encrypted with a
    passphrase: asked twice on a terminal, else read from $FOCUSFLOW_PASSPHRASE."""
    raw = read_input(seed_file)
    where = "stdin" if seed_file == "-" else seed_file
    try:
        seed = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise InputFileError(f"{where}: not a seed in hex") from None
    if len(seed) != 32:
        raise InputFileError(f"{where}: a seed is 32 bytes (64 hex digits), got {len(seed)}")
    _store_new(home, name, KeyPair.from_seed(seed), unencrypted, as_json)


@keys_app.command("list")
def list_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Every key in the wallet, by name."""
    store = keystore(home)
    infos = store.list()
    if as_json:
        print_json([_as_json(i) for i in infos])
        return
    if not infos:
        console.print(f"no keys in {store.path}; create one with: focusflow keys add NAME")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("name")
    table.add_column("address")
    table.add_column("encrypted")
    for i in infos:
        table.add_row(i.name, i.address, "yes" if i.encrypted else "no")
    console.print(table)


@keys_app.command("show")
def show_cmd(
    name: NameArg,
    address_only: Annotated[
        bool, typer.Option("--address", help="Print only the address (for scripts).")
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A key's address and public key (no passphrase needed)."""
    store = keystore(home)
    info = store.info(name)
    if address_only:
        sys.stdout.write(info.address + "\n")
    elif as_json:
        print_json(_as_json(info))
    else:
        console.print(f"name:       {info.name}")
        console.print(f"address:    {info.address}")
        console.print(f"public key: {info.public_key.hex()}")
        console.print(f"encrypted:  {'yes' if info.encrypted else 'no'}")
        console.print(f"file:       {store.file_of(name)}")


@keys_app.command("kem")
def kem_cmd(
    name: NameArg,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A key's ML-KEM-768 public key, which others seal private blobs to
    (`blob put FILE --seal KEY`); hex on one line, for a file: `keys kem NAME > NAME.kem`.
    Derived from the key's seed, so an encrypted key's passphrase is asked for."""
    from focusflow.services.storage.sealing_keys import kem_key, key_id_hex, public_hex

    public = kem_key(load_key(home, name)).public_key()
    if as_json:
        print_json(
            {
                "name": name,
                "address": keystore(home).info(name).address,
                "kem_public_key": public_hex(public),
                "key_id": key_id_hex(public),
            }
        )
    else:
        sys.stdout.write(public_hex(public) + "\n")


@keys_app.command("export")
def export_cmd(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a key's secret seed (hex), which `keys import` takes back. An encrypted
    key's passphrase is asked for on a terminal, else read from $FOCUSFLOW_PASSPHRASE."""
    store = keystore(home)
    info = store.info(name)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidParameterError(
                "refusing to print a secret seed without confirmation: pass --yes"
            )
        if not typer.confirm(f"Print the secret seed of {name} ({info.address})?"):
            raise InvalidParameterError("export cancelled")
    key = load_key(home, name)
    if as_json:
        print_json({"name": name, "address": info.address, "seed": key.seed.hex()})
    else:
        sys.stdout.write(key.seed.hex() + "\n")


@keys_app.command("delete")
def delete_cmd(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a key file for good (export its seed first if it holds anything)."""
    store = keystore(home)
    info = store.info(name)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidParameterError("refusing to delete a key without confirmation: pass --yes")
        if not typer.confirm(f"Delete key {name} ({info.address}) for good?"):
            raise InvalidParameterError("delete cancelled")
    store.delete(name)
    if as_json:
        print_json({"deleted": name, "address": info.address})
    else:
        console.print(f"deleted key {name} ({info.address})")
