"""Serving a validator: consensus, its transport and the REST/WebSocket API on one loop.

``focusflow devnet`` (one validator, no transport) and ``focusflow node start``
(one validator of a network) run the same :class:`ValidatorRuntime` the same way:
one event loop holds uvicorn, the consensus task and, for a network, the QUIC
node; SIGINT or SIGTERM stops uvicorn, then consensus. The loop is uvloop where
it is installed, as uvicorn picks for itself: it is the faster loop for the API.

Shutdown order matters for the store: a consensus step that is committing a
block runs in a worker thread, which cancelling the consensus task does not
stop; closing the loop waits for the worker threads, so the block in progress
is finished before :func:`serve` returns and the caller closes the store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import signal
import socket
from collections.abc import Callable, Sequence

import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from focusflow.api.app import create_app
from focusflow.api.limits import SERVER_LIMIT_CONCURRENCY, WS_MAX_FRAME_BYTES, LimitSettings
from focusflow.api.routes_texts import keep_block_texts, keep_last_block_texts
from focusflow.chain.errors import InvalidNameError
from focusflow.core.cid import cid_from_bytes
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import encode_address
from focusflow.modules.ca import valid_certificate_of_name
from focusflow.modules.names import check_name
from focusflow.node.api_tls import ApiTls
from focusflow.node.blob_net import BlobNet
from focusflow.node.home import Home
from focusflow.node.validator import ValidatorRuntime
from focusflow.services.auth.credentials import Authorizer
from focusflow.services.dns import DnsSettings, Lookup, NameRecord, serve_dns
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.state_schema.names import address_of, resolve
from focusflow.store.particle_texts import ParticleTexts
from focusflow.vm import wasm

log = logging.getLogger("focusflow.node")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def api_url(sock: socket.socket, *, tls: bool = False) -> str:
    """``http://host:port`` (``https`` with ``tls``) of a bound socket (IPv6
    hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"{'https' if tls else 'http'}://{url_host(host)}:{port}"


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(
    runtime: ValidatorRuntime,
    home: Home,
    sock: socket.socket,
    *,
    ready: str,
    fields: Callable[[str], dict[str, object]],
    stop_on_failure: bool = False,
    notes: Sequence[str] = (),
    dns: DnsSettings | None = None,
) -> None:
    """Run ``runtime`` and its API on ``sock`` until SIGINT/SIGTERM.

    Once consensus runs, ``home/node.json`` names the API and ``ready`` is
    logged with ``fields(api_url)``, then each of ``notes`` (what the user
    should know next, the last lines they see). With ``stop_on_failure`` a failed
    consensus step stops the server too (the devnet: nothing else would make
    its blocks); the caller finds why in ``runtime.failure``.
    """
    # uvicorn re-raises the signal it caught once it has shut down; no-op
    # handlers make that harmless so the caller still closes the store.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    texts = ParticleTexts(home.texts)
    try:
        keep_last_block_texts(texts, runtime.chain)
    except FocusflowError as exc:  # texts are content: the chain does not wait on them
        log.warning("the last block's texts not kept: %s [%s]", exc.message, exc.code)
    runtime.keepers.append(keep_block_texts(texts))
    blobs = ChunkStore(home.blobs)
    wasm.keep_artifacts(home.wasm)
    for extension in runtime.extensions:
        if isinstance(extension, BlobNet):
            extension.use_store(blobs)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            stores = (texts, blobs)
            runner.run(
                _serve(runtime, home, sock, ready, fields, stop_on_failure, stores, notes, dns)
            )
    finally:
        texts.close()
        blobs.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


async def _serve(
    runtime: ValidatorRuntime,
    home: Home,
    sock: socket.socket,
    ready: str,
    fields: Callable[[str], dict[str, object]],
    stop_on_failure: bool,
    stores: tuple[ParticleTexts, ChunkStore],
    notes: Sequence[str],
    dns: DnsSettings | None,
) -> None:
    config = home.load_config() if home.config.exists() else {}
    dns = dns if dns is not None else DnsSettings.from_json(config.get("dns"))
    tls = ApiTls.from_json(config.get("api_tls"), home.path)
    admin_token = home.read_admin_token()
    app = create_app(
        runtime,
        admin_token,
        LimitSettings.from_json(config.get("api_limits")),
        particle_texts=stores[0],
        blobs=stores[1],
        blob_fetcher=next((e for e in runtime.extensions if isinstance(e, BlobNet)), None),
        authorizer=Authorizer.for_home(
            admin_token,
            home.tokens,
            config.get("acl"),
            passwords_file=home.passwords,
            certificates=tls.certificates() if tls is not None else None,
        ),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            limit_concurrency=SERVER_LIMIT_CONCURRENCY,
            ws_max_size=WS_MAX_FRAME_BYTES,
            **(tls.uvicorn_options() if tls is not None else {}),
        )
    )
    if stop_on_failure:
        runtime.on_failure = lambda: setattr(server, "should_exit", True)
    api = api_url(sock, tls=tls is not None)
    # The DNS socket is bound before consensus starts: a taken port stops the
    # node with a clear error, with nothing running yet to stop.
    names = None
    if dns is not None:
        names = await serve_dns(dns, name_lookup(runtime))
        host, port = names.get_extra_info("sockname")[:2]
        log.info("dns ready", extra={"fields": {"dns": f"{host}:{port}", "zone": dns.zone}})
    try:
        await runtime.start_async()
    except BaseException:
        if names is not None:
            names.close()
        raise
    home.write_node_info(api)
    log.info(ready, extra={"fields": fields(api)})
    for note in notes:
        log.info(note)
    try:
        await server.serve(sockets=[sock])
    finally:
        if names is not None:
            names.close()
        await runtime.stop_async()


def name_lookup(runtime: ValidatorRuntime) -> Lookup:
    """The DNS server's view of the names module: a registered name's particle
    CID and owner in the newest committed state, where its node listens, and
    the public key of its valid CA certificate."""

    def lookup(label: str) -> NameRecord | None:
        try:
            check_name(label)
        except InvalidNameError:
            return None
        with runtime.chain.reader() as r:
            record = resolve(r, label)
            if record is None:
                return None
            where = address_of(r, label)
            cert = valid_certificate_of_name(r, label, dt.datetime.now(dt.UTC))
        cid, owner = record
        spki = None
        if cert is not None:
            der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            spki = hashlib.sha256(der).digest()
        return NameRecord(cid_from_bytes(cid), encode_address(owner), where, spki)

    return lookup
