"""The interchain module's state: light clients, connections, channels, packets.

Every key lives under ``/kv/ibc/`` (the store keeps documented prefixes only)
and every record is canonical CBOR, so another chain's light client of this
one proves them with the ordinary state proof (``/v1/light/proofs/key``):

=====================================================  =====================================
key                                                    value
=====================================================  =====================================
``/kv/ibc/client/<client>``                            :class:`ClientState`
``/kv/ibc/cons/<client>/<height: 8 bytes BE>``         :class:`ConsensusState`
``/kv/ibc/vals/<client>/<validators hash>``            ``[[public_key, power], ...]``
``/kv/ibc/conn/<connection>``                          :class:`ConnectionEnd`
``/kv/ibc/chan/<port>/<channel>``                      :class:`ChannelEnd`
``/kv/ibc/seq/<send|recv|ack>/<port>/<channel>``       the next sequence (uint)
``/kv/ibc/commit/<port>/<channel>/<seq: 8 bytes BE>``  SHA-256 of the packet's CBOR
``/kv/ibc/packet/<port>/<channel>/<seq: 8 bytes BE>``  the packet's CBOR (for relayers)
``/kv/ibc/ack/<port>/<channel>/<seq: 8 bytes BE>``     SHA-256 of the acknowledgement
``/kv/ibc/ackdata/<port>/<channel>/<seq: 8 bytes BE>`` the acknowledgement (for relayers)
``/kv/ibc/next/<connection|channel>``                  the next identifier's number
=====================================================  =====================================

A client is named by the chain id it follows (one per counterparty of the
genesis's ``interchain`` section); connections are ``connection-<n>``,
channels ``channel-<n>``. Identifiers and ports are 1..64 of ``a-z 0-9 . _ -``
(no ``/``: a key's parts cannot run into each other).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

PREFIX = b"/kv/ibc/"
CLIENT_PREFIX = PREFIX + b"client/"
CONSENSUS_PREFIX = PREFIX + b"cons/"
VALSET_PREFIX = PREFIX + b"vals/"
CONNECTION_PREFIX = PREFIX + b"conn/"
CHANNEL_PREFIX = PREFIX + b"chan/"
SEQ_PREFIX = PREFIX + b"seq/"
COMMITMENT_PREFIX = PREFIX + b"commit/"
PACKET_PREFIX = PREFIX + b"packet/"
ACK_PREFIX = PREFIX + b"ack/"
ACK_DATA_PREFIX = PREFIX + b"ackdata/"
NEXT_PREFIX = PREFIX + b"next/"

#: An identifier or port: what may stand between two ``/`` of a key.
IDENTIFIER = re.compile(r"[a-z0-9._-]{1,64}")

#: Connection and channel states (ICS-03/04), as stored.
INIT, TRYOPEN, OPEN, CLOSED = 1, 2, 3, 4
STATE_NAMES = {INIT: "INIT", TRYOPEN: "TRYOPEN", OPEN: "OPEN", CLOSED: "CLOSED"}
#: The one channel ordering this chain speaks.
ORDERED = "ordered"


def is_identifier(text: object) -> bool:
    return isinstance(text, str) and IDENTIFIER.fullmatch(text) is not None


def _seq(sequence: int) -> bytes:
    return sequence.to_bytes(8, "big")


def client_key(client: str) -> bytes:
    return CLIENT_PREFIX + client.encode()


def consensus_key(client: str, height: int) -> bytes:
    return CONSENSUS_PREFIX + client.encode() + b"/" + _seq(height)


def consensus_prefix(client: str) -> bytes:
    return CONSENSUS_PREFIX + client.encode() + b"/"


def valset_key(client: str, validators_hash: bytes) -> bytes:
    return VALSET_PREFIX + client.encode() + b"/" + validators_hash


def connection_key(connection: str) -> bytes:
    return CONNECTION_PREFIX + connection.encode()


def channel_key(port: str, channel: str) -> bytes:
    return CHANNEL_PREFIX + f"{port}/{channel}".encode()


def seq_key(kind: str, port: str, channel: str) -> bytes:
    """``kind``: ``send``, ``recv`` or ``ack``."""
    return SEQ_PREFIX + f"{kind}/{port}/{channel}".encode()


def commitment_key(port: str, channel: str, sequence: int) -> bytes:
    return COMMITMENT_PREFIX + f"{port}/{channel}/".encode() + _seq(sequence)


def packet_key(port: str, channel: str, sequence: int) -> bytes:
    return PACKET_PREFIX + f"{port}/{channel}/".encode() + _seq(sequence)


def packet_prefix(port: str, channel: str) -> bytes:
    return PACKET_PREFIX + f"{port}/{channel}/".encode()


def ack_key(port: str, channel: str, sequence: int) -> bytes:
    return ACK_PREFIX + f"{port}/{channel}/".encode() + _seq(sequence)


def ack_data_key(port: str, channel: str, sequence: int) -> bytes:
    return ACK_DATA_PREFIX + f"{port}/{channel}/".encode() + _seq(sequence)


def ack_data_prefix(port: str, channel: str) -> bytes:
    return ACK_DATA_PREFIX + f"{port}/{channel}/".encode()


def next_id_key(kind: str) -> bytes:
    return NEXT_PREFIX + kind.encode()


def sequence_of(key: bytes) -> int:
    """The sequence a packet, commitment or acknowledgement key ends with."""
    return int.from_bytes(key[-8:], "big")


@dataclass(frozen=True)
class ClientState:
    """A light client of another chain: ``[chain_id, trusting_period_ms,
    latest_height, frozen_height]`` (``frozen_height`` 0: not frozen; else the
    height at which two valid headers conflicted)."""

    chain_id: str
    trusting_period_ms: int
    latest_height: int
    frozen_height: int = 0

    def encode(self) -> bytes:
        return encode(
            [self.chain_id, self.trusting_period_ms, self.latest_height, self.frozen_height]
        )

    @classmethod
    def decode(cls, raw: bytes) -> ClientState:
        chain_id, period, latest, frozen = decode(raw, "client state")
        return cls(chain_id, period, latest, frozen)


@dataclass(frozen=True)
class ConsensusState:
    """What a client keeps of one verified header: ``[state_root, time_ms,
    header_hash, validators_hash]``. The header of height ``h`` commits the
    state *after* block ``h`` (``chain.block``), so a proof "at ``h``" is of
    the state block ``h`` left. The trust root at height 0 has no root or hash
    (empty bytes): nothing is proven against it, headers are verified from its
    set."""

    root: bytes
    time_ms: int
    header_hash: bytes
    validators_hash: bytes

    def encode(self) -> bytes:
        return encode([self.root, self.time_ms, self.header_hash, self.validators_hash])

    @classmethod
    def decode(cls, raw: bytes) -> ConsensusState:
        root, time_ms, header_hash, validators_hash = decode(raw, "consensus state")
        return cls(root, time_ms, header_hash, validators_hash)


@dataclass(frozen=True)
class ConnectionEnd:
    """One end of a connection: ``[state, client, counterparty_client,
    counterparty_connection]`` (the counterparty's connection is "" until known)."""

    state: int
    client: str
    counterparty_client: str
    counterparty_connection: str

    def encode(self) -> bytes:
        return encode(
            [self.state, self.client, self.counterparty_client, self.counterparty_connection]
        )

    @classmethod
    def decode(cls, raw: bytes) -> ConnectionEnd:
        state, client, cp_client, cp_connection = decode(raw, "connection end")
        return cls(state, client, cp_client, cp_connection)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": STATE_NAMES.get(self.state, str(self.state)),
            "client": self.client,
            "counterparty_client": self.counterparty_client,
            "counterparty_connection": self.counterparty_connection,
        }


@dataclass(frozen=True)
class ChannelEnd:
    """One end of a channel: ``[state, ordering, connection, counterparty_port,
    counterparty_channel, version]`` (the counterparty's channel is "" until known)."""

    state: int
    ordering: str
    connection: str
    counterparty_port: str
    counterparty_channel: str
    version: str

    def encode(self) -> bytes:
        return encode(
            [
                self.state,
                self.ordering,
                self.connection,
                self.counterparty_port,
                self.counterparty_channel,
                self.version,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> ChannelEnd:
        state, ordering, connection, cp_port, cp_channel, version = decode(raw, "channel end")
        return cls(state, ordering, connection, cp_port, cp_channel, version)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": STATE_NAMES.get(self.state, str(self.state)),
            "ordering": self.ordering,
            "connection": self.connection,
            "counterparty_port": self.counterparty_port,
            "counterparty_channel": self.counterparty_channel,
            "version": self.version,
        }


@dataclass(frozen=True)
class Packet:
    """ICS-04's packet: ``[sequence, source_port, source_channel,
    destination_port, destination_channel, data, timeout_height, timeout_ms]``.
    A timeout of 0 is none; at least one is set. The sending chain commits
    SHA-256 of this CBOR (:meth:`commitment`)."""

    sequence: int
    source_port: str
    source_channel: str
    destination_port: str
    destination_channel: str
    data: bytes
    timeout_height: int
    timeout_ms: int

    def to_cbor(self) -> list[Any]:
        return [
            self.sequence,
            self.source_port,
            self.source_channel,
            self.destination_port,
            self.destination_channel,
            self.data,
            self.timeout_height,
            self.timeout_ms,
        ]

    def encode(self) -> bytes:
        return encode(self.to_cbor())

    def commitment(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def from_cbor(cls, value: object) -> Packet:
        """The packet of a decoded CBOR array, every field checked (DecodeError)."""
        if not isinstance(value, list) or len(value) != 8:
            raise DecodeError("a packet is an array of 8 fields")
        seq, sport, schan, dport, dchan, data, theight, tms = value
        uints = (seq, theight, tms)
        if not all(type(v) is int and 0 <= v < 2**63 for v in uints) or seq == 0:
            raise DecodeError("a packet's sequence (from 1) and timeouts are integers")
        if not all(is_identifier(v) for v in (sport, schan, dport, dchan)):
            raise DecodeError("a packet's ports and channels are identifiers")
        if not isinstance(data, bytes):
            raise DecodeError("a packet's data is bytes")
        return cls(seq, sport, schan, dport, dchan, data, theight, tms)

    @classmethod
    def decode(cls, raw: bytes) -> Packet:
        return cls.from_cbor(decode(raw, "packet"))

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "source_port": self.source_port,
            "source_channel": self.source_channel,
            "destination_port": self.destination_port,
            "destination_channel": self.destination_channel,
            "data": self.data.hex(),
            "timeout_height": self.timeout_height,
            "timeout_ms": self.timeout_ms,
        }


def encode_ack(ok: bool, result: bytes) -> bytes:
    """An acknowledgement: ``[1, result]`` from an app that took the packet,
    ``[0, error code]`` (UTF-8) from one that refused it."""
    return encode([1 if ok else 0, result])


def decode_ack(ack: bytes) -> tuple[bool, bytes]:
    """``(ok, result or error code)`` of an acknowledgement (DecodeError)."""
    value = decode(ack, "acknowledgement")
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] not in (0, 1)
        or not isinstance(value[1], bytes)
    ):
        raise DecodeError("an acknowledgement is [ok, bytes]")
    return value[0] == 1, value[1]


def encode_uint(n: int) -> bytes:
    return encode(n)


def read_uint(state: Readable, key: bytes, default: int = 0) -> int:
    raw = state.get(key)
    if raw is None:
        return default
    value = decode(raw, "sequence")
    if type(value) is not int:
        raise DecodeError("a sequence is an integer")
    return value


def get_client(state: Readable, client: str) -> ClientState | None:
    raw = state.get(client_key(client))
    return None if raw is None else ClientState.decode(raw)


def get_consensus(state: Readable, client: str, height: int) -> ConsensusState | None:
    raw = state.get(consensus_key(client, height))
    return None if raw is None else ConsensusState.decode(raw)


def get_connection(state: Readable, connection: str) -> ConnectionEnd | None:
    raw = state.get(connection_key(connection))
    return None if raw is None else ConnectionEnd.decode(raw)


def get_channel(state: Readable, port: str, channel: str) -> ChannelEnd | None:
    raw = state.get(channel_key(port, channel))
    return None if raw is None else ChannelEnd.decode(raw)


def next_sequences(state: Readable, port: str, channel: str) -> dict[str, int]:
    """The channel's next ``send``, ``recv`` and ``ack`` sequences (each from 1)."""
    return {
        kind: read_uint(state, seq_key(kind, port, channel), 1) for kind in ("send", "recv", "ack")
    }


__all__ = [
    "ACK_DATA_PREFIX",
    "ACK_PREFIX",
    "CHANNEL_PREFIX",
    "CLIENT_PREFIX",
    "CLOSED",
    "COMMITMENT_PREFIX",
    "CONNECTION_PREFIX",
    "CONSENSUS_PREFIX",
    "INIT",
    "OPEN",
    "ORDERED",
    "PACKET_PREFIX",
    "PREFIX",
    "TRYOPEN",
    "ChannelEnd",
    "ClientState",
    "ConnectionEnd",
    "ConsensusState",
    "Packet",
    "ack_data_key",
    "ack_data_prefix",
    "ack_key",
    "channel_key",
    "client_key",
    "commitment_key",
    "connection_key",
    "consensus_key",
    "consensus_prefix",
    "decode_ack",
    "encode_ack",
    "encode_uint",
    "get_channel",
    "get_client",
    "get_connection",
    "get_consensus",
    "is_identifier",
    "next_id_key",
    "next_sequences",
    "packet_key",
    "packet_prefix",
    "read_uint",
    "seq_key",
    "sequence_of",
    "valset_key",
]
