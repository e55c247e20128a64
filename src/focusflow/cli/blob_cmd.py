"""``focusflow blob put|get|rm``: files as content-addressed blobs on a node.

``put`` streams a file to ``POST /v1/blobs`` (the node cuts it into
content-defined chunks and stores what is new to it); ``get`` first has a node
that lacks the blob fetch it from the nodes that hold it, then fetches the root
block and then every chunk by CID from ``/v1/chunks/{cid}``, checking each
against its hash here before a byte of it is written, and moves the file into
place only once the whole blob checked. docs/storage.md.

``put --seal KEY`` seals the file here, before a byte leaves the machine, to
each recipient's ML-KEM-768 public key (services.storage.sealed: Brotli, then
AES-256-GCM under a key sealed to each recipient); the node stores only the
sealed bytes. ``get`` recognises a sealed blob by its header and opens it with
the ML-KEM key of a wallet key (``--key``, services.storage.sealing_keys), or
writes it as it is with ``--raw``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Protocol, TextIO

import typer

from focusflow.cli.common import HomeOpt, JsonOpt, NodeOpt, client, load_key
from focusflow.cli.tx_options import DEFAULT_SIGNER
from focusflow.client import NodeClient, RemoteError
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.core.home import read_token_file, resolve_home
from focusflow.services.storage import dag

app = typer.Typer(help="Files as content-addressed blobs on a node (chunked, deduplicated).")

ENV_TOKEN = "FOCUSFLOW_TOKEN"
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"A credential with the blobs role. Default: ${ENV_TOKEN}, else the node "
        "home's admin_token.",
        show_default=False,
    ),
]
#: Seconds a put or a block fetch may take.
TIMEOUT_S = 600.0
#: Largest file ``put --seal`` seals, and largest plaintext ``get`` opens: sealing
#: compresses and encrypts the whole file in memory (services.storage.sealed.MAX_PLAIN).
SEAL_MAX = 1 << 30
SealOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--seal",
        help="Seal the file to this ML-KEM-768 public key (hex, or a file holding it: "
        "`focusflow keys kem NAME`) before it leaves; repeatable for several recipients.",
        show_default=False,
    ),
]


def _auth(token: str | None, home: Path) -> dict[str, str]:
    """The Authorization header of the credential: ``--token``, else
    ``$FOCUSFLOW_TOKEN``, else the node home's admin token; none if none."""
    secret = token or os.environ.get(ENV_TOKEN)
    if not secret:
        try:
            secret = read_token_file(home / "admin_token")
        except (OSError, ValueError):
            return {}
    return {"Authorization": f"Bearer {secret}"}


class _Progress(Protocol):
    """What the upload advances: typer's progress bar."""

    def update(self, n_steps: int) -> None: ...


def _file_chunks(path: Path, progress: _Progress) -> Iterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            progress.update(len(piece))
            yield piece


def _pieces(data: bytes, progress: _Progress) -> Iterator[bytes]:
    for at in range(0, len(data), 1 << 20):
        piece = data[at : at + (1 << 20)]
        progress.update(len(piece))
        yield piece


def _sealed(file: Path, keys: list[str]) -> bytes:
    """The file sealed to each of ``keys`` (parsed before the file is read)."""
    from focusflow.services.storage.sealed import seal
    from focusflow.services.storage.sealing_keys import parse_public

    recipients = [parse_public(k) for k in keys]
    if file.stat().st_size > SEAL_MAX:
        raise InputFileError(f"{file} is over {SEAL_MAX:,} bytes, the most --seal seals")
    return seal(file.read_bytes(), recipients)


@app.command("put")
def put(
    file: Annotated[Path, typer.Argument(help="The file to store.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    token: TokenOpt = None,
    seal_to: SealOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store FILE on the node: its CID, size, chunks and what was new there.
    With --seal, the node gets only the file sealed to those keys."""
    if not file.is_file():
        raise InputFileError(f"{file} is not a readable file")
    where = resolve_home(home)
    sealed = _sealed(file, seal_to) if seal_to else None
    size = len(sealed) if sealed is not None else file.stat().st_size
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    headers.update(_auth(token, where))
    with (
        client(home, node, TIMEOUT_S) as api,
        _progress_stream(as_json) as stream,
        typer.progressbar(length=size, label="put", file=stream) as bar,
    ):
        content = _pieces(sealed, bar) if sealed is not None else _file_chunks(file, bar)
        result = api.put_blob(content, headers)
    if sealed is not None:
        result = {**result, "sealed": True, "recipients": len(seal_to or [])}
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    print(result["cid"])
    sealed_note = f" (sealed to {len(seal_to or [])} keys)" if sealed is not None else ""
    print(
        f"{result['size']:,} bytes{sealed_note} in {result['chunks']:,} chunks; new here: "
        f"{result['new_chunks']:,} chunks, {result['new_bytes']:,} bytes"
    )


@app.command("get")
def get(
    cid: Annotated[str, typer.Argument(help="The blob's CID.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the blob.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    token: TokenOpt = None,
    key: Annotated[
        str,
        typer.Option("--key", help="The wallet key whose ML-KEM key opens a sealed blob."),
    ] = DEFAULT_SIGNER,
    raw: Annotated[
        bool, typer.Option("--raw", help="Write a sealed blob as it is, without opening it.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a blob block by block, each checked against its CID, into --out;
    a sealed blob is opened with --key's ML-KEM key (docs/storage.md).

    A node that does not hold the blob is asked to fetch it from the nodes that
    do (found through the network's DHT) and pin it first: that takes the
    put's credential."""
    root = cid_to_bytes(cid)
    try:
        dag.codec_of(root)
    except dag.BlobError:
        raise InvalidParameterError(f"{cid} is not a blob's CID (CIDv1 raw or dag-cbor)") from None
    where = resolve_home(home)
    tmp = out.with_name(out.name + ".part")
    size = 0
    with client(home, node, TIMEOUT_S) as api:
        fetched = _fetch_if_absent(api, root, _auth(token, where), as_json)
        with tmp.open("wb") as f:
            try:
                for chunk in _verified_chunks(api, root):
                    f.write(chunk)
                    size += len(chunk)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    opened = None
    try:
        if not raw:
            opened = _open_if_sealed(tmp, size, home, key)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    if as_json:
        doc: dict[str, Any] = {"cid": cid_from_bytes(root), "size": size, "out": str(out)}
        if opened is not None:
            doc |= {"sealed": True, "opened_size": opened}
        print(json.dumps(doc | ({"fetched": fetched} if fetched else {}), sort_keys=True))
    elif opened is not None:
        print(f"{size:,} sealed bytes opened with {key}'s key: {opened:,} bytes to {out}")
    else:
        print(f"{size:,} bytes to {out}")


def _open_if_sealed(part: Path, size: int, home: str | None, key: str) -> int | None:
    """When the fetched blob in ``part`` is sealed, replace it with what it opens
    to under ``key``'s ML-KEM key; the size opened, or None for a blob that is not
    sealed. sealed_blob_error, the file left out, for a blob not sealed to the key."""
    from focusflow.services.storage.sealing_keys import looks_sealed

    with part.open("rb") as f:
        if not looks_sealed(f.read(8)):
            return None
    from focusflow.services.storage.sealed import SealedBlobError, open_sealed, recipients_of
    from focusflow.services.storage.sealing_keys import kem_key, key_id_hex

    if size > 2 * SEAL_MAX:
        raise InputFileError(f"a sealed blob of {size:,} bytes is over what get opens")
    private = kem_key(load_key(home, key))
    blob = part.read_bytes()
    mine = key_id_hex(private.public_key())
    if bytes.fromhex(mine) not in recipients_of(blob):
        n = len(recipients_of(blob))
        raise SealedBlobError(
            f"the blob is not sealed to key {key} (ML-KEM key id {mine[:16]}...) but to "
            f"{n} other key{'s' if n != 1 else ''}: open it with --key NAME of a recipient"
        )
    plain = open_sealed(blob, private, SEAL_MAX)
    with part.open("wb") as f:
        f.write(plain)
    return len(plain)


def _fetch_if_absent(
    api: NodeClient, root: bytes, auth: dict[str, str], quiet: bool
) -> dict[str, Any] | None:
    """When the node lacks the blob's root, have it fetch the blob from the
    nodes that hold it (``POST /v1/blobs/{cid}/fetch``); what it fetched, or
    None when it held the blob already."""
    cid = cid_from_bytes(root)
    try:
        _block(api, root)
        return None
    except RemoteError as exc:
        if exc.status != 404:
            raise
    if not quiet:
        print(f"the node does not hold {cid}: fetching it from the nodes that do", file=sys.stderr)
    result = api.fetch_blob(cid, auth)
    if not quiet:
        print(
            f"fetched {result['new_bytes']:,} new bytes from {len(result['peers'])} nodes",
            file=sys.stderr,
        )
    return result


def _verified_chunks(api: NodeClient, root: bytes) -> Iterator[bytes]:
    """The blob's chunks in order, each checked against its CID before it is
    given out: the DAG's nodes are fetched one by one (a few per 64 MiB), then
    the chunks come in one stream of the whole blob, cut where the nodes say."""
    leaves = _leaves(api, root)
    if leaves is None:  # a one-chunk blob: the root is the chunk
        data = _block(api, root)
        dag.verify_block(root, data)
        yield data
        return
    with api.blob_bytes(cid_from_bytes(root)) as feed:
        pending = bytearray()
        for link in leaves:
            while len(pending) < link.size:
                piece = next(feed, None)
                if piece is None:
                    raise dag.BlobError(f"blob {root.hex()} ended before its chunks did")
                pending += piece
            chunk = bytes(pending[: link.size])
            del pending[: link.size]
            dag.verify_block(link.cid, chunk)
            yield chunk
        if pending or next(feed, None) is not None:
            raise dag.BlobError(f"blob {root.hex()} is longer than its chunks")


def _leaves(api: NodeClient, root: bytes) -> list[dag.Link] | None:
    """The leaf links of the DAG under ``root`` in order, every node fetched and
    checked; None when the root is a chunk itself."""
    if dag.codec_of(root) == dag.RAW:
        return None
    leaves: list[dag.Link] = []
    stack = [root]
    while stack:
        cid = stack.pop()
        node = _block(api, cid)
        dag.verify_block(cid, node)
        links = dag.decode_node(node)
        inner = [link for link in links if dag.codec_of(link.cid) == dag.DAG_CBOR]
        if inner and len(inner) != len(links):
            raise dag.BlobError(f"DAG node {cid.hex()} mixes chunks and nodes")
        if inner:
            stack.extend(link.cid for link in reversed(inner))
        else:
            leaves.extend(links)
    return leaves


def _block(api: NodeClient, cid: bytes) -> bytes:
    """One block from the node, refused past the size a block of its kind has
    (before more of it is read)."""
    limit = dag.CHUNK_MAX if dag.codec_of(cid) == dag.RAW else dag.MAX_NODE_BYTES
    return api.chunk(cid_from_bytes(cid), limit)


@app.command("rm")
def rm(
    cid: Annotated[str, typer.Argument(help="The blob's CID.")],
    home: HomeOpt = None,
    node: NodeOpt = None,
    token: TokenOpt = None,
) -> None:
    """Unpin a blob on the node (blocks no other pin reaches are deleted)."""
    where = resolve_home(home)
    with client(home, node) as api:
        result = api.delete_blob(cid, _auth(token, where))
    print(f"unpinned {cid}; {result['freed_bytes']:,} bytes freed")


def _progress_stream(quiet: bool) -> contextlib.AbstractContextManager[TextIO]:
    """Where the progress bar draws: stderr on a terminal; nowhere with --json or
    when stderr is a pipe, a file or a log (off a terminal the bar would print its
    label as a stray line)."""
    if quiet or not sys.stderr.isatty():
        return open(os.devnull, "w")
    return contextlib.nullcontext(sys.stderr)
