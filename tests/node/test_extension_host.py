"""The host a node gives its extensions (``node.extensions.ExtensionHost``), on a real
validator runtime with its QUIC transport on loopback: an extension serves a peer's
request through the handler it registered, hears each committed block on the thread
that committed it, and from there runs work on the node's event loop; a node without a
transport, or not running yet, refuses what it cannot do instead of dropping it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from focusflow.core.keys import KeyPair
from focusflow.net import NetConfig, Node
from focusflow.node.extensions import ExtensionHost
from focusflow.node.runtime import BlockEvent
from focusflow.node.validator import ValidatorRuntime
from focusflow.testing.chains import VALIDATOR, genesis, new_chain


class Probe:
    """An extension that uses the host's request handlers, commits and loop."""

    def __init__(self) -> None:
        self.host: ExtensionHost | None = None
        self.heard: list[int] = []
        self.listener_threads: set[int] = set()
        self.loop_threads: set[int] = set()
        self.loops: set[asyncio.AbstractEventLoop] = set()

    def attach(self, host: ExtensionHost) -> None:
        self.host = host
        host.register("probe", self._serve)
        host.on_commit(self._committed)

    async def stop(self) -> None:
        return None

    async def _serve(self, peer: bytes, payload: bytes) -> bytes:
        return payload[::-1]

    def _committed(self, event: BlockEvent) -> None:
        assert self.host is not None
        self.listener_threads.add(threading.get_ident())
        self.host.call_soon(self._on_loop_thread)
        self.host.run_soon(self._on_loop(event.result.block.height)).result(5)

    def _on_loop_thread(self) -> None:
        self.loop_threads.add(threading.get_ident())

    async def _on_loop(self, height: int) -> None:
        self.loops.add(asyncio.get_running_loop())
        self.heard.append(height)


def test_an_extension_serves_peers_hears_commits_and_runs_work_on_the_node_loop(tmp_path):
    gen = genesis(focus={"mode": "diffusion"})
    runtime = ValidatorRuntime(
        new_chain(tmp_path / "chain", gen),
        VALIDATOR,
        wal_path=tmp_path / "wal",
        listen=("127.0.0.1", 0),
        commit_wait=0.05,
    )
    probe = Probe()
    runtime.extensions.append(probe)

    async def main() -> None:
        await runtime.start_async()
        peer = Node(KeyPair.generate(), config=NetConfig(network_id=gen.hash))
        await peer.start()
        try:
            assert runtime.net is not None
            host, port = runtime.net.address
            await peer.connect(f"{runtime.net.id.hex()}@{host}:{port}")
            assert await peer.request(runtime.net.id, "probe", b"abc", timeout=5) == b"cba"
            deadline = asyncio.get_running_loop().time() + 30
            while len(probe.heard) < 2:
                assert asyncio.get_running_loop().time() < deadline, probe.heard
                await asyncio.sleep(0.05)
            assert probe.loops == {asyncio.get_running_loop()}
            assert probe.loop_threads == {threading.get_ident()}
            assert threading.get_ident() not in probe.listener_threads
        finally:
            await peer.stop()
            await runtime.stop_async()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert probe.heard == sorted(probe.heard) and runtime.failure is None


def test_a_node_without_transport_or_not_running_refuses_what_it_cannot_do(tmp_path):
    runtime = ValidatorRuntime(
        new_chain(tmp_path / "chain", genesis(focus={"mode": "diffusion"})),
        VALIDATOR,
        wal_path=tmp_path / "wal",
        listen=None,
    )

    async def serve(peer: bytes, payload: bytes) -> bytes:
        return payload

    with pytest.raises(RuntimeError, match="no transport"):
        runtime.register("probe", serve)
    with pytest.raises(RuntimeError, match="not running"):
        runtime.call_soon(print)
    runtime.signer.wal.close()
