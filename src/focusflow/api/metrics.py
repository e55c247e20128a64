"""Prometheus metrics of a node (``GET /metrics``).

Each app gets its own registry, so several nodes in one process (tests) do not
share counters. Block metrics are set by :meth:`NodeMetrics.on_block` on the
producer thread; the mempool is read when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from focusflow.api.service import BlockEvent, NodeService

if TYPE_CHECKING:
    from focusflow.chain.chain import Chain
    from focusflow.chain.checkpoint_writer import CheckpointWriter

BLOCK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    def __init__(self, node: NodeService) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("focusflow_height", "Height of the last committed block", registry=r)
        self.block_seconds = Histogram(
            "focusflow_block_seconds",
            "Time to make and commit a block",
            buckets=BLOCK_BUCKETS,
            registry=r,
        )
        self.block_interval = Gauge(
            "focusflow_block_interval_seconds", "Time between the last two blocks", registry=r
        )
        self.block_txs = Gauge("focusflow_block_txs", "Transactions in the last block", registry=r)
        self.focus_iterations = Gauge(
            "focusflow_focus_iterations", "Solver iterations of the last focus update", registry=r
        )
        self.focus_seconds = Gauge(
            "focusflow_focus_seconds", "Seconds of the last focus update", registry=r
        )
        mempool_txs = Gauge("focusflow_mempool_txs", "Transactions in the mempool", registry=r)
        mempool_txs.set_function(lambda: len(node.mempool))
        mempool_bytes = Gauge("focusflow_mempool_bytes", "Bytes in the mempool", registry=r)
        mempool_bytes.set_function(lambda: node.mempool.size_bytes)
        self.submitted = Counter(
            "focusflow_txs_submitted", "Transactions admitted to the mempool", registry=r
        )
        self.rejected = Counter(
            "focusflow_txs_rejected", "Transactions refused at submission", ["code"], registry=r
        )
        self._checkpoint_gauges(node.chain.checkpoints)
        self._scheduler_gauges(node.chain)
        self.height.set(node.chain.height)

    def _checkpoint_gauges(self, writer: CheckpointWriter) -> None:
        """The focus checkpoint writer's counts and last write, read at scrape
        time (its reaper thread finishes writes between blocks)."""
        r = self.registry
        gauges = {
            "focusflow_focus_checkpoints_written": (
                "Focus checkpoints written since the node started",
                lambda: writer.written,
            ),
            "focusflow_focus_checkpoint_failures": (
                "Focus checkpoint writes that failed since the node started "
                "(the previous checkpoint stays)",
                lambda: writer.failed,
            ),
            "focusflow_focus_checkpoint_height": (
                "Height of the last focus checkpoint written (-1: none yet)",
                lambda: -1 if writer.durable_height is None else writer.durable_height,
            ),
            "focusflow_focus_checkpoint_bytes": (
                "Size of the last focus checkpoint written",
                lambda: writer.last.bytes if writer.last is not None else 0,
            ),
            "focusflow_focus_checkpoint_seconds": (
                "Duration of the last focus checkpoint write",
                lambda: writer.last.seconds if writer.last is not None else 0.0,
            ),
            "focusflow_focus_checkpoint_pause_seconds": (
                "What the last focus checkpoint held its commit (the fork)",
                lambda: writer.last.pause_s if writer.last is not None else 0.0,
            ),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=r).set_function(read)

    def _scheduler_gauges(self, chain: Chain) -> None:
        """The block scheduler's counts since the node started (chain/scheduler.py),
        read at scrape time: how many transactions ran ahead, were merged as they
        ran, and ran again for a conflict."""
        r = self.registry
        gauges = {
            "focusflow_scheduler_speculated": "Transactions run ahead by the block scheduler",
            "focusflow_scheduler_merged": "Transactions whose run ahead was merged as it ran",
            "focusflow_scheduler_rerun": "Transactions run ahead and then run again (a conflict)",
        }

        def reader(field: str) -> Callable[[], float]:
            return lambda: float(getattr(chain.scheduler.stats, field))

        for name, doc in gauges.items():
            Gauge(name, doc, registry=r).set_function(
                reader(name.removeprefix("focusflow_scheduler_"))
            )

    def on_block(self, event: BlockEvent) -> None:
        result = event.result
        self.height.set(result.block.height)
        self.block_seconds.observe(result.timings["total"])
        self.block_interval.set(event.interval)
        self.block_txs.set(len(result.block.txs))
        self.focus_iterations.set(event.view.iterations)
        self.focus_seconds.set(event.view.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
