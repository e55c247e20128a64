"""Interchain messaging on the IBC model: connections, ordered channels, packets.

Chains of one network (a hub and its rollups, ``chain.interchain``) verify each
other's state with light clients (``modules.ibc_client``, ICS-02) and exchange
packets over channels. A relayer carries every message and is trusted for
nothing: each step after the first of a handshake, and every packet,
acknowledgement and timeout, comes with a proof of the counterparty's state
(``store.smt`` membership or non-membership) against the state root of a header
the client verified. The key names and records are ``state_schema.ibc``'s.

Messages (bytes are CBOR byte strings; ``proof`` is a state proof's bytes as
``/v1/light/proofs/key`` serves it, taken at ``proof_height`` of the
counterparty, whose header's state root is the state *after* that block):

* ``ibc.update_client {client, header}``: ``header`` is
  ``[header_cbor, certificate_cbor, [[public_key, power], ...]]``.
* ``ibc.conn_open_init {client, counterparty_client}``;
  ``ibc.conn_open_try {client, counterparty_client, counterparty_connection,
  proof, proof_height}``; ``ibc.conn_open_ack {connection,
  counterparty_connection, proof, proof_height}``; ``ibc.conn_open_confirm
  {connection, proof, proof_height}`` (ICS-03: each step after the first proves
  the counterparty's connection end as the previous step left it).
* ``ibc.chan_open_init {port, connection, counterparty_port, version}``;
  ``ibc.chan_open_try {port, connection, counterparty_port,
  counterparty_channel, version, proof, proof_height}``; ``ibc.chan_open_ack
  {port, channel, counterparty_channel, proof, proof_height}``;
  ``ibc.chan_open_confirm {port, channel, proof, proof_height}`` (ICS-04;
  channels are ordered).
* ``ibc.recv_packet {packet, proof, proof_height}``: ``packet`` is the packet's
  CBOR (``Packet.encode``); proves the sender's commitment, takes sequences in
  order, refuses a packet past its timeout here, and stores the destination
  app's acknowledgement.
* ``ibc.acknowledge {packet, ack, proof, proof_height}``: proves the
  counterparty's acknowledgement commitment, deletes the packet's, in order.
* ``ibc.timeout {packet, next_recv, proof, proof_height}``: proves the
  counterparty's next receive sequence (``next_recv <= sequence``; absent: it
  received nothing) at a height whose header is past the packet's timeout,
  deletes the commitment and, as ICS-04 says of ordered channels, closes the
  channel.

An app binds a port by being passed to :class:`Ibc` and sends with
:func:`send_packet`. Every message is bounded before it is decoded, and a bad
one fails its own transaction with a ``chain.errors.IbcError`` code; a chain
whose genesis has no ``interchain`` section has no clients, and the module
writes nothing on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from focusflow.chain.errors import (
    IbcProofError,
    IbcStateError,
    InternalError,
    MalformedMessageError,
    OverLimitError,
    PacketMismatchError,
    PacketOutOfOrderError,
    PacketReceivedError,
    PacketReplayedError,
    PacketTimedOutError,
    PortUnboundError,
    TimeoutNotReachedError,
    UnknownChannelError,
    UnknownConnectionError,
    UnknownPacketError,
)
from focusflow.chain.execute import UNCAUGHT
from focusflow.chain.genesis import Genesis
from focusflow.chain.header_verify import verify_key
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState, Readable
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.hashing import sha256
from focusflow.modules.accounts import field, only_fields
from focusflow.modules.ibc_client import (
    MAX_HEADER_BYTES,
    MAX_PROOF_BYTES,
    init_clients,
    live_client,
    proof_root,
    update_client,
    verify_membership,
)
from focusflow.state_schema.ibc import (
    CHANNEL_PREFIX,
    CLOSED,
    INIT,
    OPEN,
    ORDERED,
    TRYOPEN,
    ChannelEnd,
    ConnectionEnd,
    Packet,
    ack_data_key,
    ack_key,
    channel_key,
    commitment_key,
    connection_key,
    encode_ack,
    encode_uint,
    get_channel,
    get_connection,
    is_identifier,
    next_id_key,
    packet_key,
    read_uint,
    seq_key,
)

#: Most bytes of a packet's data (a Δ-rank of a rollup's bucket fits).
MAX_PACKET_DATA = 256 << 10
#: Most bytes of an encoded packet in a message (its data and fields).
MAX_PACKET_BYTES = MAX_PACKET_DATA + 1024
#: Most bytes of an acknowledgement; an app's longer one becomes an error ack.
MAX_ACK_BYTES = 16 << 10
#: Most bytes of a channel's version string.
MAX_VERSION = 64
#: Most connections, and most channels, a chain opens (each costs a fee; the
#: bound keeps the key-space an attacker can fill small).
MAX_CONNECTIONS = 256
MAX_CHANNELS = 1024


class PacketApp(Protocol):
    """An application bound to a port: what the chain calls for its packets.

    ``on_recv`` returns the acknowledgement's result bytes; an error it raises
    becomes an error acknowledgement (``[0, code]``), its writes dropped, and
    never fails the block or the relayer's transaction. ``on_ack`` gets the
    acknowledgement as stored (``state_schema.ibc.decode_ack`` reads it);
    ``on_ack`` and ``on_timeout`` raising fail the relayer's transaction.
    """

    port: str

    def on_recv(self, ctx: TxContext, packet: Packet) -> bytes: ...

    def on_ack(self, ctx: TxContext, packet: Packet, ack: bytes) -> None: ...

    def on_timeout(self, ctx: TxContext, packet: Packet) -> None: ...


def send_packet(
    state: PendingState,
    port: str,
    channel: str,
    data: bytes,
    timeout_height: int,
    timeout_ms: int,
) -> int:
    """Commit a packet on the open channel ``port/channel``; its sequence.

    For apps (their handlers or ``end_block``): the packet's commitment and its
    CBOR are stored for a relayer to carry. ``timeout_height`` and
    ``timeout_ms`` are of the *destination* chain (0: none; one is needed).
    Raises ``channel_not_found``, ``ibc_wrong_state`` (not open),
    ``over_limit`` (data over :data:`MAX_PACKET_DATA`) or
    ``malformed_message`` (no timeout).
    """
    end = get_channel(state, port, channel)
    if end is None:
        raise UnknownChannelError(f"no channel {port}/{channel}")
    if end.state != OPEN:
        raise IbcStateError(f"channel {port}/{channel} is not open")
    if not isinstance(data, bytes) or len(data) > MAX_PACKET_DATA:
        raise OverLimitError(f"packet data is bytes of at most {MAX_PACKET_DATA}")
    if not (0 <= timeout_height < 2**63 and 0 <= timeout_ms < 2**63):
        raise MalformedMessageError("timeouts are non-negative integers")
    if timeout_height == 0 and timeout_ms == 0:
        raise MalformedMessageError("a packet needs a timeout height or time")
    seq = read_uint(state, seq_key("send", port, channel), 1)
    packet = Packet(
        seq, port, channel, end.counterparty_port, end.counterparty_channel, data,
        timeout_height, timeout_ms,
    )  # fmt: skip
    state.put(commitment_key(port, channel, seq), packet.commitment())
    state.put(packet_key(port, channel, seq), packet.encode())
    state.put(seq_key("send", port, channel), encode_uint(seq + 1))
    return seq


def open_channels(state: PendingState, port: str) -> list[tuple[str, ChannelEnd]]:
    """The open channels of ``port``, by channel id."""
    out = []
    prefix = CHANNEL_PREFIX + port.encode() + b"/"
    for key, raw in state.scan(prefix):
        end = ChannelEnd.decode(raw)
        if end.state == OPEN:
            out.append((key[len(prefix) :].decode(), end))
    return out


def find_channel(state: PendingState, port: str, chain_id: str) -> str | None:
    """An open channel of ``port`` to the chain ``chain_id`` (its client's), or None."""
    for channel, end in open_channels(state, port):
        conn = get_connection(state, end.connection)
        if conn is not None and conn.client == chain_id:
            return channel
    return None


# --- message fields -------------------------------------------------------------


def _ident(body: MessageBody, name: str) -> str:
    value: str = field(body, name, str)
    if not is_identifier(value):
        raise MalformedMessageError(f"{name} must be 1..64 of a-z 0-9 . _ -")
    return value


def _bytes(body: MessageBody, name: str, limit: int) -> bytes:
    value: bytes = field(body, name, bytes)
    if len(value) > limit:
        raise MalformedMessageError(f"{name} is at most {limit} bytes")
    return value


def _height(body: MessageBody, name: str = "proof_height") -> int:
    value: int = field(body, name, int)
    if not 0 < value < 2**63:
        raise MalformedMessageError(f"{name} must be a positive height")
    return value


def _packet(body: MessageBody) -> Packet:
    raw = _bytes(body, "packet", MAX_PACKET_BYTES)
    try:
        return Packet.decode(raw)
    except DecodeError as exc:
        raise MalformedMessageError(f"packet: {exc.message}") from None


def _next_id(state: PendingState, kind: str, limit: int) -> str:
    n = read_uint(state, next_id_key(kind))
    if n >= limit:
        raise OverLimitError(f"this chain has opened its {limit} {kind}s")
    state.put(next_id_key(kind), encode_uint(n + 1))
    return f"{kind}-{n}"


def _connection(state: Readable, connection: str) -> ConnectionEnd:
    end = get_connection(state, connection)
    if end is None:
        raise UnknownConnectionError(f"no connection {connection}")
    return end


def _channel(state: Readable, port: str, channel: str) -> ChannelEnd:
    end = get_channel(state, port, channel)
    if end is None:
        raise UnknownChannelError(f"no channel {port}/{channel}")
    return end


def _want(actual: int, wanted: int, what: str) -> None:
    if actual != wanted:
        raise IbcStateError(f"{what} is not in the state this step needs")


class Ibc:
    """The ``ibc`` module: light clients, connections, ordered channels, packets."""

    name = "ibc"

    def __init__(self, apps: Sequence[PacketApp] = ()) -> None:
        self.apps: dict[str, PacketApp] = {}
        for app in apps:
            if not is_identifier(app.port) or app.port in self.apps:
                raise ValueError(f"port {app.port!r} is no identifier or bound twice")
            self.apps[app.port] = app

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "ibc.update_client": self.update_client,
            "ibc.conn_open_init": self.conn_open_init,
            "ibc.conn_open_try": self.conn_open_try,
            "ibc.conn_open_ack": self.conn_open_ack,
            "ibc.conn_open_confirm": self.conn_open_confirm,
            "ibc.chan_open_init": self.chan_open_init,
            "ibc.chan_open_try": self.chan_open_try,
            "ibc.chan_open_ack": self.chan_open_ack,
            "ibc.chan_open_confirm": self.chan_open_confirm,
            "ibc.recv_packet": self.recv_packet,
            "ibc.acknowledge": self.acknowledge,
            "ibc.timeout": self.timeout,
        }

    def init_genesis(self, state: PendingState, genesis: Any, deltas: Deltas) -> None:
        if isinstance(genesis, Genesis):
            init_clients(state, genesis)

    def end_block(self, ctx: BlockContext) -> None:
        return None

    def _app(self, port: str) -> PacketApp:
        app = self.apps.get(port)
        if app is None:
            raise PortUnboundError(f"no application is bound to port {port!r}")
        return app

    # --- clients ----------------------------------------------------------------

    def update_client(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "client", "header")
        client = field(body, "client", str)
        header = _bytes(body, "header", MAX_HEADER_BYTES)
        update_client(ctx, client, header)

    def _prove(
        self, ctx: TxContext, client: str, body: MessageBody, key: bytes, value: bytes
    ) -> None:
        proof = _bytes(body, "proof", MAX_PROOF_BYTES)
        verify_membership(ctx.state, client, _height(body), ctx.block.time_ms, key, value, proof)

    # --- connections (ICS-03) ---------------------------------------------------

    def conn_open_init(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "client", "counterparty_client")
        client, cp_client = _ident(body, "client"), _ident(body, "counterparty_client")
        live_client(ctx.state, client, ctx.block.time_ms)
        conn = _next_id(ctx.state, "connection", MAX_CONNECTIONS)
        ctx.state.put(connection_key(conn), ConnectionEnd(INIT, client, cp_client, "").encode())
        ctx.emit("ibc.conn_open_init", connection=conn, client=client)

    def conn_open_try(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(
            body, "client", "counterparty_client", "counterparty_connection", "proof",
            "proof_height",
        )  # fmt: skip
        client, cp_client = _ident(body, "client"), _ident(body, "counterparty_client")
        cp_conn = _ident(body, "counterparty_connection")
        theirs = ConnectionEnd(INIT, cp_client, client, "")
        self._prove(ctx, client, body, connection_key(cp_conn), theirs.encode())
        conn = _next_id(ctx.state, "connection", MAX_CONNECTIONS)
        mine = ConnectionEnd(TRYOPEN, client, cp_client, cp_conn)
        ctx.state.put(connection_key(conn), mine.encode())
        ctx.emit("ibc.conn_open_try", connection=conn, client=client)

    def conn_open_ack(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "connection", "counterparty_connection", "proof", "proof_height")
        conn, cp_conn = _ident(body, "connection"), _ident(body, "counterparty_connection")
        mine = _connection(ctx.state, conn)
        _want(mine.state, INIT, f"connection {conn}")
        theirs = ConnectionEnd(TRYOPEN, mine.counterparty_client, mine.client, conn)
        self._prove(ctx, mine.client, body, connection_key(cp_conn), theirs.encode())
        opened = dataclasses.replace(mine, state=OPEN, counterparty_connection=cp_conn)
        ctx.state.put(connection_key(conn), opened.encode())
        ctx.emit("ibc.conn_open_ack", connection=conn)

    def conn_open_confirm(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "connection", "proof", "proof_height")
        conn = _ident(body, "connection")
        mine = _connection(ctx.state, conn)
        _want(mine.state, TRYOPEN, f"connection {conn}")
        theirs = ConnectionEnd(OPEN, mine.counterparty_client, mine.client, conn)
        key = connection_key(mine.counterparty_connection)
        self._prove(ctx, mine.client, body, key, theirs.encode())
        ctx.state.put(connection_key(conn), dataclasses.replace(mine, state=OPEN).encode())
        ctx.emit("ibc.conn_open_confirm", connection=conn)

    # --- channels (ICS-04) ------------------------------------------------------

    def _open_connection(self, state: Readable, conn: str) -> ConnectionEnd:
        end = _connection(state, conn)
        _want(end.state, OPEN, f"connection {conn}")
        return end

    def _version(self, body: MessageBody) -> str:
        version: str = field(body, "version", str)
        if len(version) > MAX_VERSION:
            raise MalformedMessageError(f"version is at most {MAX_VERSION} characters")
        return version

    def _new_channel(self, ctx: TxContext, port: str, end: ChannelEnd) -> str:
        chan = _next_id(ctx.state, "channel", MAX_CHANNELS)
        ctx.state.put(channel_key(port, chan), end.encode())
        for kind in ("send", "recv", "ack"):
            ctx.state.put(seq_key(kind, port, chan), encode_uint(1))
        return chan

    def chan_open_init(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "port", "connection", "counterparty_port", "version")
        port, conn = _ident(body, "port"), _ident(body, "connection")
        cp_port, version = _ident(body, "counterparty_port"), self._version(body)
        self._app(port)
        self._open_connection(ctx.state, conn)
        end = ChannelEnd(INIT, ORDERED, conn, cp_port, "", version)
        chan = self._new_channel(ctx, port, end)
        ctx.emit("ibc.chan_open_init", port=port, channel=chan)

    def chan_open_try(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(
            body, "port", "connection", "counterparty_port", "counterparty_channel", "version",
            "proof", "proof_height",
        )  # fmt: skip
        port, conn = _ident(body, "port"), _ident(body, "connection")
        cp_port, cp_chan = _ident(body, "counterparty_port"), _ident(body, "counterparty_channel")
        version = self._version(body)
        self._app(port)
        mine = self._open_connection(ctx.state, conn)
        theirs = ChannelEnd(INIT, ORDERED, mine.counterparty_connection, port, "", version)
        self._prove(ctx, mine.client, body, channel_key(cp_port, cp_chan), theirs.encode())
        end = ChannelEnd(TRYOPEN, ORDERED, conn, cp_port, cp_chan, version)
        chan = self._new_channel(ctx, port, end)
        ctx.emit("ibc.chan_open_try", port=port, channel=chan)

    def chan_open_ack(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "port", "channel", "counterparty_channel", "proof", "proof_height")
        port, chan = _ident(body, "port"), _ident(body, "channel")
        cp_chan = _ident(body, "counterparty_channel")
        mine = _channel(ctx.state, port, chan)
        _want(mine.state, INIT, f"channel {port}/{chan}")
        conn = self._open_connection(ctx.state, mine.connection)
        theirs = ChannelEnd(
            TRYOPEN, ORDERED, conn.counterparty_connection, port, chan, mine.version
        )
        key = channel_key(mine.counterparty_port, cp_chan)
        self._prove(ctx, conn.client, body, key, theirs.encode())
        opened = dataclasses.replace(mine, state=OPEN, counterparty_channel=cp_chan)
        ctx.state.put(channel_key(port, chan), opened.encode())
        ctx.emit("ibc.chan_open_ack", port=port, channel=chan)

    def chan_open_confirm(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "port", "channel", "proof", "proof_height")
        port, chan = _ident(body, "port"), _ident(body, "channel")
        mine = _channel(ctx.state, port, chan)
        _want(mine.state, TRYOPEN, f"channel {port}/{chan}")
        conn = self._open_connection(ctx.state, mine.connection)
        theirs = ChannelEnd(OPEN, ORDERED, conn.counterparty_connection, port, chan, mine.version)
        key = channel_key(mine.counterparty_port, mine.counterparty_channel)
        self._prove(ctx, conn.client, body, key, theirs.encode())
        ctx.state.put(channel_key(port, chan), dataclasses.replace(mine, state=OPEN).encode())
        ctx.emit("ibc.chan_open_confirm", port=port, channel=chan)

    # --- packets ----------------------------------------------------------------

    def _packet_channel(
        self, state: Readable, port: str, chan: str, cp_port: str, cp_chan: str
    ) -> tuple[ChannelEnd, ConnectionEnd]:
        """The open channel ``port/chan`` whose counterparty is ``cp_port/cp_chan``."""
        end = _channel(state, port, chan)
        _want(end.state, OPEN, f"channel {port}/{chan}")
        if (end.counterparty_port, end.counterparty_channel) != (cp_port, cp_chan):
            raise PacketMismatchError(
                f"the packet's counterparty is not channel {port}/{chan}'s "
                f"({end.counterparty_port}/{end.counterparty_channel})"
            )
        return end, self._open_connection(state, end.connection)

    def recv_packet(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "packet", "proof", "proof_height")
        packet = _packet(body)
        port, chan = packet.destination_port, packet.destination_channel
        app = self._app(port)
        _, conn = self._packet_channel(
            ctx.state, port, chan, packet.source_port, packet.source_channel
        )
        if (packet.timeout_height and ctx.height >= packet.timeout_height) or (
            packet.timeout_ms and ctx.block.time_ms >= packet.timeout_ms
        ):
            raise PacketTimedOutError(
                f"packet {packet.sequence} timed out here (height {ctx.height}, "
                f"time {ctx.block.time_ms})"
            )
        expected = read_uint(ctx.state, seq_key("recv", port, chan), 1)
        if packet.sequence < expected:
            raise PacketReplayedError(f"packet {packet.sequence} was received already")
        if packet.sequence > expected:
            raise PacketOutOfOrderError(
                f"packet {packet.sequence} before {expected} on an ordered channel"
            )
        key = commitment_key(packet.source_port, packet.source_channel, packet.sequence)
        self._prove(ctx, conn.client, body, key, packet.commitment())
        ack = self._run_recv(ctx, app, packet)
        ctx.state.put(seq_key("recv", port, chan), encode_uint(expected + 1))
        ctx.state.put(ack_key(port, chan, packet.sequence), sha256(ack))
        ctx.state.put(ack_data_key(port, chan, packet.sequence), ack)
        ctx.emit("ibc.recv_packet", port=port, channel=chan, sequence=packet.sequence)

    def _run_recv(self, ctx: TxContext, app: PacketApp, packet: Packet) -> bytes:
        """The app's acknowledgement; its error (writes dropped) an error ack."""
        run = dataclasses.replace(ctx, state=ctx.state.child(), deltas=Deltas(), events=[])
        try:
            result = app.on_recv(run, packet)
            if not isinstance(result, bytes):
                raise InternalError(f"port {app.port} acknowledged with no bytes")
        except UNCAUGHT:
            raise
        except FocusflowError as exc:
            return encode_ack(False, exc.code.encode())
        except Exception:  # noqa: BLE001 - an app's failure is its packet's, not the block's
            return encode_ack(False, InternalError.code.encode())
        ack = encode_ack(True, result)
        if len(ack) > MAX_ACK_BYTES:
            return encode_ack(False, OverLimitError.code.encode())
        ctx.state.merge(run.state)
        ctx.deltas.merge(run.deltas)
        ctx.events.extend(run.events)
        return ack

    def _committed(self, state: Readable, packet: Packet) -> None:
        """This chain committed exactly ``packet`` and has not settled it."""
        key = commitment_key(packet.source_port, packet.source_channel, packet.sequence)
        stored = state.get(key)
        if stored is None:
            raise UnknownPacketError(
                f"no packet {packet.sequence} pending on {packet.source_port}/"
                f"{packet.source_channel}"
            )
        if stored != packet.commitment():
            raise PacketMismatchError(f"packet {packet.sequence} is not the one committed")

    def _settle(self, state: PendingState, packet: Packet) -> None:
        state.delete(commitment_key(packet.source_port, packet.source_channel, packet.sequence))
        state.delete(packet_key(packet.source_port, packet.source_channel, packet.sequence))

    def acknowledge(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "packet", "ack", "proof", "proof_height")
        packet = _packet(body)
        ack = _bytes(body, "ack", MAX_ACK_BYTES)
        port, chan = packet.source_port, packet.source_channel
        app = self._app(port)
        _, conn = self._packet_channel(
            ctx.state, port, chan, packet.destination_port, packet.destination_channel
        )
        self._committed(ctx.state, packet)
        expected = read_uint(ctx.state, seq_key("ack", port, chan), 1)
        if packet.sequence != expected:
            raise PacketOutOfOrderError(
                f"acknowledgement of {packet.sequence} before {expected} on an ordered channel"
            )
        key = ack_key(packet.destination_port, packet.destination_channel, packet.sequence)
        self._prove(ctx, conn.client, body, key, sha256(ack))
        self._settle(ctx.state, packet)
        ctx.state.put(seq_key("ack", port, chan), encode_uint(expected + 1))
        app.on_ack(ctx, packet, ack)
        ctx.emit("ibc.acknowledge", port=port, channel=chan, sequence=packet.sequence)

    def timeout(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "packet", "next_recv", "proof", "proof_height")
        packet = _packet(body)
        next_recv: int = field(body, "next_recv", int)
        if not 0 < next_recv < 2**63:
            raise MalformedMessageError("next_recv must be a positive sequence")
        port, chan = packet.source_port, packet.source_channel
        app = self._app(port)
        end, conn = self._packet_channel(
            ctx.state, port, chan, packet.destination_port, packet.destination_channel
        )
        self._committed(ctx.state, packet)
        height = _height(body)
        cons = proof_root(ctx.state, conn.client, height, ctx.block.time_ms)
        if not (
            (packet.timeout_height and height >= packet.timeout_height)
            or (packet.timeout_ms and cons.time_ms >= packet.timeout_ms)
        ):
            raise TimeoutNotReachedError(
                f"packet {packet.sequence} has not timed out at the counterparty's height {height}"
            )
        if next_recv > packet.sequence:
            raise PacketReceivedError(f"the counterparty received packet {packet.sequence}")
        key = seq_key("recv", packet.destination_port, packet.destination_channel)
        proof = _bytes(body, "proof", MAX_PROOF_BYTES)
        # The counterparty's next receive sequence, or its absence (nothing received).
        proven = verify_key(cons.root, key, encode_uint(next_recv), proof) or (
            next_recv == 1 and verify_key(cons.root, key, None, proof)
        )
        if not proven:
            raise IbcProofError(
                f"the proof does not show the counterparty's next receive sequence {next_recv}"
            )
        self._settle(ctx.state, packet)
        ctx.state.put(channel_key(port, chan), dataclasses.replace(end, state=CLOSED).encode())
        app.on_timeout(ctx, packet)
        ctx.emit("ibc.timeout", port=port, channel=chan, sequence=packet.sequence)


__all__ = [
    "MAX_ACK_BYTES",
    "MAX_PACKET_DATA",
    "Ibc",
    "Packet",
    "PacketApp",
    "find_channel",
    "open_channels",
    "send_packet",
]
