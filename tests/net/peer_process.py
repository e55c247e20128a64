"""A transport node in its own process, driven by JSON lines on stdin.

The multi-process tests start several of these on 127.0.0.1 and talk to each
over its stdin/stdout: commands in (``connect``, ``publish``, ``request``,
``stats``, ``garbage``, ``quit``), events out (``ready``, ``gossip``, results).
``--claim`` makes the node announce a node id whose key it does not hold (an
impostor); ``garbage`` sends bytes that are not frames to a connected peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.net import InvalidMessageError, NetConfig, Node


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main() -> None:  # noqa: C901 - a test peer: one branch per scripted behaviour
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", required=True)
    parser.add_argument("--claim", default=None)
    parser.add_argument("--ban-seconds", type=float, default=60.0)
    args = parser.parse_args()

    config = NetConfig(ban_seconds=args.ban_seconds, redial_max=1.0, auth_timeout=3.0)
    node = Node(KeyPair.from_seed(bytes.fromhex(args.seed)), config=config)
    if args.claim:
        node.id = bytes.fromhex(args.claim)

    async def on_gossip(sender: bytes, payload: bytes) -> bool:
        emit(event="gossip", sender=sender.hex(), payload=payload.hex())
        return not payload.startswith(b"bad")

    async def echo(sender: bytes, payload: bytes) -> bytes:
        if payload.startswith(b"bad"):
            raise InvalidMessageError("bad request")
        return payload

    node.subscribe("tx", on_gossip)
    node.subscribe("vote", on_gossip)
    node.register("echo", echo)
    await node.start()
    emit(event="ready", id=node.key.public_key.hex(), port=node.address[1])

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd["cmd"]
        try:
            if op == "quit":
                break
            if op == "connect":
                peer = await node.connect(cmd["addr"])
                emit(event="connected", id=peer.hex())
            elif op == "publish":
                mid = await node.publish(cmd["topic"], bytes.fromhex(cmd["payload"]))
                emit(event="published", id=mid.hex())
            elif op == "request":
                answer = await node.request(
                    bytes.fromhex(cmd["peer"]), cmd["name"], bytes.fromhex(cmd["payload"]), 5.0
                )
                emit(event="response", payload=answer.hex())
            elif op == "burst":
                for k in range(cmd["count"]):
                    payload = f"{cmd['prefix']}-{k}-".encode() * cmd["repeat"]
                    await node.publish(cmd["topic"], payload)
                emit(event="published", id="")
            elif op == "burst_request":
                peer = bytes.fromhex(cmd["peer"])
                payloads = [b"%d" % k * cmd["size"] for k in range(cmd["count"])]
                answers = await asyncio.gather(
                    *(node.request(peer, "echo", p, 20.0) for p in payloads)
                )
                emit(event="response", payload="", ok=answers == payloads)
            elif op == "garbage":
                session = node._sessions[bytes.fromhex(cmd["peer"])]
                session.protocol.send_raw(session.control, bytes.fromhex(cmd["data"]))
                emit(event="sent")
            elif op == "stats":
                emit(
                    event="stats",
                    peers=[p.hex() for p in node.connected_peers()],
                    banned=[p.hex() for p in node.scores.banned()],
                    delivered=node.stats.delivered,
                    duplicates=node.stats.duplicates,
                    bans=node.stats.bans,
                )
        except FocusflowError as exc:
            emit(event="error", code=exc.code, message=str(exc))
    await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
