"""The relayer: carries headers, handshakes, packets, acknowledgements and
timeouts between two chains, and is trusted for nothing.

Every message it submits is checked on the receiving chain against a light
client of the sending chain (``modules.ibc``): a relayer that lies is refused
there with a code, and one that stops only delays. It reads each chain through
a :class:`ChainEndpoint` (:class:`HttpEndpoint` over a node's API,
``/v1/ibc`` and ``/v1/light``; :class:`LocalEndpoint` over a ``Chain`` object
in the same process, for tests) and submits signed transactions through it.

One :meth:`Relayer.step`: open a connection and an ordered channel between the
two ports if none is open (the four-step handshakes, each step with a proof
at a header the destination's client is updated to in the same transaction),
then in both directions receive every pending packet in order, acknowledge
every received one, and time out those past their timeout at the destination.
Every loop is bounded in count (:data:`MAX_PER_TX` messages a transaction,
:data:`MAX_PACKETS` packets a step) and a step in time by the endpoints'
request timeouts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from focusflow.chain.tx import Msg, make_tx
from focusflow.core.encoding import encode
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.state_schema.ibc import (
    INIT,
    OPEN,
    TRYOPEN,
    ChannelEnd,
    ClientState,
    ConnectionEnd,
    Packet,
    channel_key,
    commitment_key,
    connection_key,
    seq_key,
)
from focusflow.state_schema.ibc import ack_key as ack_commitment_key

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain

log = logging.getLogger("focusflow.relay")

#: Most messages in one relayed transaction (after its client update).
MAX_PER_TX = 32
#: Most packets (and as many acknowledgements and timeouts) one step carries
#: in each direction; the rest wait for the next step.
MAX_PACKETS = 256
#: The channel version the relayer proposes.
VERSION = "focusflow-1"


class RelayError(FocusflowError):
    """A chain refused what the relayer submitted, or could not be read."""

    code = "relay_failed"


class ChainEndpoint(Protocol):
    """What the relayer needs of one chain: reads (each as of the newest block,
    or at ``height`` with its state proof) and a way to submit a transaction."""

    @property
    def chain_id(self) -> str: ...

    def height(self) -> int:
        """The newest block height."""
        ...

    def time_ms(self) -> int:
        """The newest block's time."""
        ...

    def light_block(self, height: int) -> bytes:
        """The header of ``height`` with its certificate and set, as
        ``ibc.update_client`` carries it."""
        ...

    def prove(self, key: bytes, height: int) -> tuple[bytes | None, bytes]:
        """``(value, proof)`` of a state key after block ``height``."""
        ...

    def client(self, client: str) -> ClientState | None: ...

    def connections(self) -> list[tuple[str, ConnectionEnd]]: ...

    def channels(self) -> list[tuple[str, str, ChannelEnd]]:
        """``(port, channel, end)`` of every channel."""
        ...

    def next_sequences(self, port: str, channel: str) -> dict[str, int]: ...

    def packets(self, port: str, channel: str, limit: int) -> list[Packet]:
        """Packets sent on the channel and not yet acknowledged or timed out, in order."""
        ...

    def acks(self, port: str, channel: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        """``(sequence, acknowledgement)`` of packets received from ``start`` on."""
        ...

    def submit(self, msgs: Sequence[Msg]) -> str:
        """Sign and submit one transaction of ``msgs``; its receipt's code
        (``ok`` when every message succeeded) once it is in a block."""
        ...


@dataclass
class Path:
    """Two ports to connect: ``port_a`` on chain A, ``port_b`` on chain B."""

    port_a: str
    port_b: str


@dataclass
class Link:
    """An open channel pair the relayer serves."""

    channel_a: str
    channel_b: str


#: Packet bytes one transaction carries at most: a transaction is at most
#: ``max_tx_bytes`` (1 MiB by default) with its header update and proofs.
MAX_PACKET_BYTES_PER_TX = 640 << 10


def _batches(packets: Sequence[Packet]) -> list[list[Packet]]:
    """``packets`` in order, cut into transactions of at most MAX_PER_TX packets
    and MAX_PACKET_BYTES_PER_TX of packet data (a larger packet goes alone)."""
    out: list[list[Packet]] = []
    size = 0
    for packet in packets:
        if (
            not out
            or len(out[-1]) == MAX_PER_TX
            or size + len(packet.data) > MAX_PACKET_BYTES_PER_TX
        ):
            out.append([])
            size = 0
        out[-1].append(packet)
        size += len(packet.data)
    return out


def _update(dst: ChainEndpoint, src: ChainEndpoint) -> tuple[Msg, int]:
    """The message that updates ``dst``'s client of ``src`` to ``src``'s head."""
    h = src.height()
    return Msg("ibc.update_client", {"client": src.chain_id, "header": src.light_block(h)}), h


def _submit(dst: ChainEndpoint, msgs: Sequence[Msg], what: str) -> None:
    code = dst.submit(msgs)
    if code != "ok":
        raise RelayError(f"{dst.chain_id} refused {what}: {code}")
    log.info("%s: %s", dst.chain_id, what)


class Relayer:
    """Relays between ``a`` and ``b`` for one port pair (module docstring)."""

    def __init__(self, a: ChainEndpoint, b: ChainEndpoint, path: Path) -> None:
        self.a, self.b, self.path = a, b, path

    # --- handshakes -------------------------------------------------------------

    def _connection(self) -> tuple[str, str]:
        """``(connection on A, connection on B)``, both open, opened if needed."""
        a, b = self.a, self.b
        b_conns = dict(b.connections())
        for cid, end in a.connections():
            other = b_conns.get(end.counterparty_connection)
            if end.state == OPEN and end.client == b.chain_id and other and other.state == OPEN:
                return cid, end.counterparty_connection
        # A connection this path began before and did not finish (a step
        # refused, the relayer stopped) is taken up again, not left behind.
        begun = [
            cid for cid, end in a.connections() if end.state == INIT and end.client == b.chain_id
        ]
        if begun:
            conn_a = begun[0]
        else:
            before = {cid for cid, _ in a.connections()}
            init = {"client": b.chain_id, "counterparty_client": a.chain_id}
            _submit(a, [Msg("ibc.conn_open_init", init)], "conn_open_init")
            conn_a = self._new(a.connections(), before, INIT, lambda e: e.client == b.chain_id)
        upd, h = _update(b, a)
        _, proof = a.prove(connection_key(conn_a), h)
        before_b = {cid for cid, _ in b.connections()}
        body = {
            "client": a.chain_id, "counterparty_client": b.chain_id,
            "counterparty_connection": conn_a, "proof": proof, "proof_height": h,
        }  # fmt: skip
        _submit(b, [upd, Msg("ibc.conn_open_try", body)], f"conn_open_try ({conn_a})")
        conn_b = self._new(b.connections(), before_b, TRYOPEN, lambda e: e.client == a.chain_id)
        upd, h = _update(a, b)
        _, proof = b.prove(connection_key(conn_b), h)
        body = {
            "connection": conn_a, "counterparty_connection": conn_b, "proof": proof,
            "proof_height": h,
        }  # fmt: skip
        _submit(a, [upd, Msg("ibc.conn_open_ack", body)], f"conn_open_ack ({conn_a})")
        upd, h = _update(b, a)
        _, proof = a.prove(connection_key(conn_a), h)
        body = {"connection": conn_b, "proof": proof, "proof_height": h}
        _submit(b, [upd, Msg("ibc.conn_open_confirm", body)], f"conn_open_confirm ({conn_b})")
        return conn_a, conn_b

    @staticmethod
    def _new(
        rows: Sequence[tuple[str, Any]],
        before: set[str],
        state: int,
        ours: Callable[[Any], bool],
    ) -> str:
        """The connection or channel this step just made: new since ``before``,
        in ``state``, and ``ours`` (its ends name this path's chains or
        connection: another relayer may open one of its own meanwhile)."""
        fresh = [i for i, end in rows if i not in before and end.state == state and ours(end)]
        if len(fresh) != 1:
            raise RelayError("could not tell which connection or channel the handshake made")
        return fresh[0]

    def channel(self) -> Link:
        """The open channel pair of the path, opened (connection first) if none is."""
        a, b, p = self.a, self.b, self.path
        # Channel ids are each chain's own: a channel pair is this path's only
        # when each end's connection is to the other chain and the ends name
        # each other (a hub has a "channel-0" to every rollup's "channel-0").
        a_to_b = {cid for cid, end in a.connections() if end.client == b.chain_id}
        b_to_a = {cid for cid, end in b.connections() if end.client == a.chain_id}
        b_chans = {(port, ch): end for port, ch, end in b.channels()}
        for port, ch, end in a.channels():
            other = b_chans.get((end.counterparty_port, end.counterparty_channel))
            if (
                port == p.port_a
                and end.state == OPEN
                and end.connection in a_to_b
                and end.counterparty_port == p.port_b
                and other is not None
                and other.state == OPEN
                and other.connection in b_to_a
                and other.counterparty_channel == ch
            ):
                return Link(ch, end.counterparty_channel)
        conn_a, conn_b = self._connection()
        before = {ch for port, ch, _ in a.channels() if port == p.port_a}
        body: dict[str, Any] = {
            "port": p.port_a, "connection": conn_a, "counterparty_port": p.port_b,
            "version": VERSION,
        }  # fmt: skip
        _submit(a, [Msg("ibc.chan_open_init", body)], "chan_open_init")
        chan_a = self._new(
            [(c, e) for pt, c, e in a.channels() if pt == p.port_a],
            before,
            INIT,
            lambda e: e.connection == conn_a,
        )
        upd, h = _update(b, a)
        _, proof = a.prove(channel_key(p.port_a, chan_a), h)
        before = {ch for port, ch, _ in b.channels() if port == p.port_b}
        body = {
            "port": p.port_b, "connection": conn_b, "counterparty_port": p.port_a,
            "counterparty_channel": chan_a, "version": VERSION, "proof": proof, "proof_height": h,
        }  # fmt: skip
        _submit(b, [upd, Msg("ibc.chan_open_try", body)], f"chan_open_try ({chan_a})")
        chan_b = self._new(
            [(c, e) for pt, c, e in b.channels() if pt == p.port_b],
            before,
            TRYOPEN,
            lambda e: e.connection == conn_b,
        )
        upd, h = _update(a, b)
        _, proof = b.prove(channel_key(p.port_b, chan_b), h)
        body = {
            "port": p.port_a, "channel": chan_a, "counterparty_channel": chan_b,
            "proof": proof, "proof_height": h,
        }  # fmt: skip
        _submit(a, [upd, Msg("ibc.chan_open_ack", body)], f"chan_open_ack ({chan_a})")
        upd, h = _update(b, a)
        _, proof = a.prove(channel_key(p.port_a, chan_a), h)
        body = {"port": p.port_b, "channel": chan_b, "proof": proof, "proof_height": h}
        _submit(b, [upd, Msg("ibc.chan_open_confirm", body)], f"chan_open_confirm ({chan_b})")
        return Link(chan_a, chan_b)

    # --- packets ----------------------------------------------------------------

    def _one_way(
        self, src: ChainEndpoint, dst: ChainEndpoint, sport: str, schan: str, dport: str, dchan: str
    ) -> int:
        """Receive, acknowledge and time out ``src``'s pending packets; how many moved."""
        pending = src.packets(sport, schan, MAX_PACKETS)
        if not pending:
            return 0
        moved = 0
        next_recv = dst.next_sequences(dport, dchan)["recv"]
        dst_height, dst_time = dst.height(), dst.time_ms()
        to_recv: list[Packet] = []
        to_time_out: list[Packet] = []
        for packet in pending:
            if packet.sequence < next_recv:
                continue  # received: acknowledged below
            expired = (packet.timeout_height and dst_height + 1 >= packet.timeout_height) or (
                packet.timeout_ms and dst_time >= packet.timeout_ms
            )
            (to_time_out if expired else to_recv).append(packet)
            if expired:
                break  # an ordered channel: nothing after it can arrive
        for batch in _batches(to_recv):
            upd, h = _update(dst, src)
            msgs = [upd]
            for packet in batch:
                key = commitment_key(sport, schan, packet.sequence)
                _, proof = src.prove(key, h)
                body = {"packet": packet.encode(), "proof": proof, "proof_height": h}
                msgs.append(Msg("ibc.recv_packet", body))
            seqs = f"{batch[0].sequence}..{batch[-1].sequence}"
            _submit(dst, msgs, f"recv_packet {sport}/{schan} {seqs}")
            moved += len(batch)
        moved += self._acks(src, dst, sport, schan, dport, dchan)
        for packet in to_time_out:
            if not (packet.timeout_height and dst.height() >= packet.timeout_height) and not (
                packet.timeout_ms and dst.time_ms() >= packet.timeout_ms
            ):
                continue  # the destination's next block is past it: a later step proves it
            upd, h = _update(src, dst)
            key = seq_key("recv", dport, dchan)
            value, proof = dst.prove(key, h)
            nxt = 1 if value is None else _decode_uint(value)
            body = {"packet": packet.encode(), "next_recv": nxt, "proof": proof, "proof_height": h}
            _submit(
                src, [upd, Msg("ibc.timeout", body)], f"timeout {sport}/{schan} {packet.sequence}"
            )
            moved += 1
        return moved

    def _acks(
        self, src: ChainEndpoint, dst: ChainEndpoint, sport: str, schan: str, dport: str, dchan: str
    ) -> int:
        """Acknowledge on ``src`` the packets ``dst`` received."""
        start = src.next_sequences(sport, schan)["ack"]
        acks = dst.acks(dport, dchan, start, MAX_PACKETS)
        moved = 0
        by_seq = {p.sequence: p for p in src.packets(sport, schan, MAX_PACKETS)}
        ready = [(s, ack) for s, ack in acks if s in by_seq]
        for begin in range(0, len(ready), MAX_PER_TX):
            batch = ready[begin : begin + MAX_PER_TX]
            upd, h = _update(src, dst)
            msgs = [upd]
            for seq, ack in batch:
                _, proof = dst.prove(ack_commitment_key(dport, dchan, seq), h)
                body = {
                    "packet": by_seq[seq].encode(),
                    "ack": ack,
                    "proof": proof,
                    "proof_height": h,
                }
                msgs.append(Msg("ibc.acknowledge", body))
            _submit(src, msgs, f"acknowledge {sport}/{schan} {batch[0][0]}..{batch[-1][0]}")
            moved += len(batch)
        return moved

    def step(self) -> int:
        """One pass (module docstring); how many packets, acks and timeouts moved."""
        link = self.channel()
        p = self.path
        moved = self._one_way(self.a, self.b, p.port_a, link.channel_a, p.port_b, link.channel_b)
        moved += self._one_way(self.b, self.a, p.port_b, link.channel_b, p.port_a, link.channel_a)
        return moved

    def run(
        self,
        interval_s: float,
        steps: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Step every ``interval_s`` seconds (``steps`` times, or until stopped);
        a refused step is logged and retried on the next."""
        done = 0
        while steps is None or done < steps:
            try:
                moved = self.step()
                if moved:
                    log.info("relayed %d", moved)
            except FocusflowError as exc:
                log.warning("relay step failed: %s [%s]", exc.message, exc.code)
            done += 1
            if steps is None or done < steps:
                sleep(interval_s)


def _decode_uint(raw: bytes) -> int:
    from focusflow.core.encoding import decode

    value = decode(raw, "sequence")
    if type(value) is not int:
        raise RelayError("a sequence is not an integer")
    return value


class LocalEndpoint:
    """A chain in this process: reads its store, and makes a block of each
    submitted transaction at once (``Chain.produce_block``, for tests)."""

    def __init__(
        self,
        chain: Chain,
        key: KeyPair,
        clock: Callable[[], int] | None = None,
        fee: int = 1_000_000,
    ) -> None:
        self.chain, self.key, self.clock, self.fee = chain, key, clock, fee
        self.receipts: list[str] = []

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    def height(self) -> int:
        return self.chain.height

    def time_ms(self) -> int:
        return self.chain.head.time_ms

    def light_block(self, height: int) -> bytes:
        from focusflow.chain.header_verify import LightBlock

        record = self.chain.block_record(height)
        if record is None:
            raise RelayError(f"no block {height}")
        header = record.block.header
        block = LightBlock(
            header, header.hash, encode(header.to_cbor()), record.commit,
            self.chain.validators_at(max(height, 1)),
        )  # fmt: skip
        return encode(block.to_cbor())

    def prove(self, key: bytes, height: int) -> tuple[bytes | None, bytes]:
        from focusflow.chain.block import BlockRecord
        from focusflow.store import smt

        with self.chain.reader() as r:
            raw = r.block(height)
            if raw is None:
                raise RelayError(f"no block {height}")
            root = BlockRecord.decode(raw).block.header.state_root
            value = r.get(key)
            return value, smt.prove(r.node, root, key).encode()

    def _scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        with self.chain.reader() as r:
            return list(r.items(prefix))

    def client(self, client: str) -> ClientState | None:
        from focusflow.state_schema.ibc import get_client

        with self.chain.reader() as r:
            return get_client(r, client)

    def connections(self) -> list[tuple[str, ConnectionEnd]]:
        from focusflow.state_schema.ibc import CONNECTION_PREFIX

        return [
            (k[len(CONNECTION_PREFIX) :].decode(), ConnectionEnd.decode(v))
            for k, v in self._scan(CONNECTION_PREFIX)
        ]

    def channels(self) -> list[tuple[str, str, ChannelEnd]]:
        from focusflow.state_schema.ibc import CHANNEL_PREFIX

        out = []
        for k, v in self._scan(CHANNEL_PREFIX):
            port, _, ch = k[len(CHANNEL_PREFIX) :].decode().partition("/")
            out.append((port, ch, ChannelEnd.decode(v)))
        return out

    def next_sequences(self, port: str, channel: str) -> dict[str, int]:
        from focusflow.state_schema.ibc import next_sequences

        with self.chain.reader() as r:
            return next_sequences(r, port, channel)

    def packets(self, port: str, channel: str, limit: int) -> list[Packet]:
        from focusflow.state_schema.ibc import packet_prefix

        return [Packet.decode(v) for _, v in self._scan(packet_prefix(port, channel))[:limit]]

    def acks(self, port: str, channel: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        from focusflow.state_schema.ibc import ack_data_prefix, sequence_of

        rows = [(sequence_of(k), v) for k, v in self._scan(ack_data_prefix(port, channel))]
        return [(s, v) for s, v in rows if s >= start][:limit]

    def submit(self, msgs: Sequence[Msg]) -> str:
        from focusflow.modules.accounts import get_account

        with self.chain.reader() as r:
            nonce = get_account(r, self.key.address_raw).nonce
        tx = make_tx(self.key, self.chain_id, nonce, self.fee, tuple(msgs))
        when = None if self.clock is None else self.clock()
        result = self.chain.produce_block([tx.encoded], time_ms=when)
        codes = [rc.code for rc in result.receipts]
        if not codes:
            rejected = result.rejected[0] if result.rejected else None
            return f"rejected: {rejected}"
        self.receipts.append(codes[0])
        return codes[0]


class HttpEndpoint:
    """A chain through a node's API (``/v1/ibc``, ``/v1/light``, ``/v1/txs``),
    every request bounded in time by the node client; a submitted transaction
    is waited for until it is in a block (``cli.txbuild.wait_tx``)."""

    def __init__(self, url: str, key: KeyPair, timeout: float = 10.0) -> None:
        from focusflow.client.node_client import NodeClient

        self.node = NodeClient(url, timeout=timeout)
        self.key = key
        self._chain_id: str | None = None

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.node.status()["chain_id"])
        return self._chain_id

    def _head(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.node.get("/v1/light/header/latest")
        return doc

    def height(self) -> int:
        return int(self._head()["height"])

    def time_ms(self) -> int:
        return int(self._head()["header"]["time_ms"])

    def light_block(self, height: int) -> bytes:
        return bytes.fromhex(self.node.get(f"/v1/ibc/light_block/{height}")["light_block"])

    def prove(self, key: bytes, height: int) -> tuple[bytes | None, bytes]:
        doc = self.node.get("/v1/light/proofs/key", {"key": "hex:" + key.hex(), "height": height})
        if int(doc["height"]) != height:
            raise RelayError(f"{self.chain_id} proved at {doc['height']}, not {height}")
        value = doc.get("value")
        return (None if value is None else bytes.fromhex(value)), bytes.fromhex(doc["proof"])

    def client(self, client: str) -> ClientState | None:
        for row in self.node.get("/v1/ibc/clients")["clients"]:
            if row["client"] == client:
                return ClientState(
                    row["chain_id"], row["trusting_period_ms"], row["latest_height"],
                    row["frozen_height"],
                )  # fmt: skip
        return None

    def connections(self) -> list[tuple[str, ConnectionEnd]]:
        return [
            (row["id"], _connection_end(row))
            for row in self.node.get("/v1/ibc/connections")["connections"]
        ]

    def channels(self) -> list[tuple[str, str, ChannelEnd]]:
        return [
            (row["port"], row["channel"], _channel_end(row))
            for row in self.node.get("/v1/ibc/channels")["channels"]
        ]

    def next_sequences(self, port: str, channel: str) -> dict[str, int]:
        doc = self.node.get(f"/v1/ibc/channels/{port}/{channel}/sequences")
        return {k: int(doc[k]) for k in ("send", "recv", "ack")}

    def packets(self, port: str, channel: str, limit: int) -> list[Packet]:
        doc = self.node.get(
            f"/v1/ibc/channels/{port}/{channel}/packets", {"limit": min(limit, MAX_PACKETS)}
        )
        return [Packet.decode(bytes.fromhex(row["packet_cbor"])) for row in doc["packets"]]

    def acks(self, port: str, channel: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        doc = self.node.get(
            f"/v1/ibc/channels/{port}/{channel}/acks",
            {"start": start, "limit": min(limit, MAX_PACKETS)},
        )
        return [(int(row["sequence"]), bytes.fromhex(row["ack"])) for row in doc["acks"]]

    def submit(self, msgs: Sequence[Msg]) -> str:
        from focusflow.cli.txbuild import build_tx, node_params, wait_tx

        params = node_params(self.node)
        nonce = self.node.account(self.key.address).next_nonce
        tx = build_tx(self.key, self.chain_id, nonce, msgs, params)
        tx_hash = self.node.submit(tx.encoded)
        record = wait_tx(self.node, tx_hash)
        return str(record.get("code"))

    def close(self) -> None:
        self.node.close()


_STATES = {"INIT": INIT, "TRYOPEN": TRYOPEN, "OPEN": OPEN, "CLOSED": 4}


def _connection_end(row: dict[str, Any]) -> ConnectionEnd:
    return ConnectionEnd(
        _STATES.get(row["state"], 0), row["client"], row["counterparty_client"],
        row["counterparty_connection"],
    )  # fmt: skip


def _channel_end(row: dict[str, Any]) -> ChannelEnd:
    return ChannelEnd(
        _STATES.get(row["state"], 0), row["ordering"], row["connection"],
        row["counterparty_port"], row["counterparty_channel"], row["version"],
    )  # fmt: skip


__all__ = [
    "MAX_PACKETS",
    "MAX_PER_TX",
    "ChainEndpoint",
    "HttpEndpoint",
    "Link",
    "LocalEndpoint",
    "Path",
    "RelayError",
    "Relayer",
]
