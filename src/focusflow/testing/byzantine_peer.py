"""A byzantine validator in its own process, for adversarial tests
(``python -m focusflow.testing.byzantine_peer``, started by
:class:`focusflow.testing.byzantine.Byzantine`).

It takes a stopped validator's home (its key, genesis, p2p address and peers),
speaks the real protocol (same network id, same handshake), never votes, and
misbehaves in one way (``--mode``):

* ``junk``: sends consensus junk on the vote topic to one honest validator
  (``--target``, a node id) and to no one else: votes with bad signatures,
  votes signed by keys outside the set, votes of far-future heights signed by
  its own validator key, and megabyte payloads, in bursts (``BURST``). An
  honest relayer that forwarded any of it would be blamed by the others.
* ``liar``: answers ``status`` with a huge height and no certificate, and
  never answers ``block`` requests.

Events go out as JSON lines on stdout: ``ready``, then ``sent`` (running counts
by kind) and ``peers`` (connected node ids) every second, until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from cryptography import x509

from focusflow.consensus import Step, Vote, encode_message
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.net import NetConfig, Node
from focusflow.net.certs import NetworkCA
from focusflow.net.messages import Gossip
from focusflow.net.messages import encode_message as encode_net
from focusflow.node.home import Home
from focusflow.state_schema.ca import certificate_for, load_group
from focusflow.store import Store

JUNK_KINDS = ("far_future", "outsider", "bad_signature", "huge")
#: One burst: every kind, in an order where a node that checks before it
#: forwards meets each kind before it bans the sender (after four offences),
#: while one that forwards first has passed on six provably bad votes.
BURST = (
    "huge",
    "far_future",
    "outsider",
    "bad_signature",
    "bad_signature",
    "bad_signature",
    "outsider",
    "outsider",
)


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def junk_vote(kind: str, key: KeyPair, chain_id: str, height: int, n: int) -> bytes:
    """The ``n``-th junk payload of ``kind`` for a network at ``height`` (each distinct)."""
    if kind == "huge":
        return b"\xa5" * (1 << 20) + n.to_bytes(8, "big")
    if kind == "far_future":
        return encode_message(
            Vote.sign(key, chain_id, height + 1000 + n, 0, Step.PREVOTE, bytes(32))
        )
    if kind == "outsider":
        outsider = KeyPair.from_seed(n.to_bytes(32, "big"))
        return encode_message(Vote.sign(outsider, chain_id, height, n, Step.PREVOTE, None))
    vote = Vote.sign(key, chain_id, height, n, Step.PREVOTE, None)
    forged = Vote(vote.height, vote.round, vote.step, None, vote.validator, bytes(64))
    return encode_message(forged)


async def run(args: argparse.Namespace) -> None:
    home = Home(Path(args.home))
    key = home.load_validator_key()
    genesis = home.load_genesis()
    config = home.load_config()
    host, _, port = config["p2p"].rpartition(":")
    node = Node(
        key,
        listen=(host, int(port)),
        peers=config.get("peers", []),
        config=NetConfig(network_id=genesis.hash, redial_max=1.0),
    )

    async def lie_status(peer: bytes, payload: bytes) -> bytes:
        return encode([10**12, None, 0])

    async def never_answer(peer: bytes, payload: bytes) -> bytes:
        await asyncio.sleep(3600)
        return b""

    # It holds the validator's home, so it shows the node's CA certificate, as
    # the validator it replaces would (node.bootstrap): its peers may require it.
    with Store(home.data) as store, store.reader() as r:
        group, found = load_group(r), certificate_for(r, key.public_key)
    if group is not None and found is not None:
        own = x509.load_der_x509_certificate(found[1])
        node.set_certificates(NetworkCA(own, group.public_key, revoked=lambda _serial: False))
    if args.mode == "liar":
        node.register("status", lie_status)
        node.register("block", never_answer)
    await node.start()
    emit(event="ready", id=key.public_key.hex())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sent = dict.fromkeys(JUNK_KINDS, 0)
    n = 0
    tick = 0
    target = bytes.fromhex(args.target) if args.target else b""
    while not stop.is_set():
        if args.mode == "junk" and await send_junk(node, target, genesis.chain_id, key, n, sent):
            n += len(BURST)
        tick += 1
        if tick % max(1, int(1 / args.interval)) == 0:
            emit(event="sent", **sent)
            emit(event="peers", peers=[p.hex() for p in node.connected_peers()])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.interval)
    await node.stop()


async def send_junk(
    node: Node, target: bytes, chain_id: str, key: KeyPair, n: int, sent: dict[str, int]
) -> bool:
    """A BURST of junk to ``target`` alone (bypassing publish, which floods),
    numbered from ``n``; False if not connected to it."""
    session = node._sessions.get(target)
    if session is None or session.is_closed:
        return False
    try:
        raw = await node.request(target, "status", b"", timeout=1.0)
        height = decode(raw, "status")[0] + 1
    except (FocusflowError, TimeoutError, TypeError, IndexError):
        return False  # the target did not answer, or not with a status
    for i, kind in enumerate(BURST, start=n):
        payload = junk_vote(kind, key, chain_id, height, i)
        session.outbox.put_nowait(encode_net(Gossip("vote", payload)))
        sent[kind] += 1
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--mode", choices=("junk", "liar"), required=True)
    parser.add_argument("--target", default="")
    parser.add_argument("--interval", type=float, default=0.3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
