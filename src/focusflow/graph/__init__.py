"""The cybergraph: particles (CIDs), neurons (staked accounts), cyberlinks.

Public surface: :class:`Cybergraph` (tables, delta log, patched CSR snapshot),
:class:`Snapshot`, the importers (bostrom dumps, edge lists, WordNet) and the
synthetic generators used by tests and benchmarks.
"""

from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import random_graph, rmat_edges
from focusflow.graph.importers import (
    detect_format,
    read_bostrom,
    read_edge_list,
    read_graph,
    read_stakes,
)
from focusflow.graph.links import ANONYMOUS, Cyberlink, FactorBatch, LinkBatch, StakeBatch
from focusflow.graph.log import DeltaLog
from focusflow.graph.snapshot import PatchInfo, Snapshot
from focusflow.graph.tables import KeyTable
from focusflow.graph.wordnet import WordNet, read_wordnet, write_wordnet

__all__ = [
    "ANONYMOUS",
    "Cybergraph",
    "Cyberlink",
    "DeltaLog",
    "FactorBatch",
    "KeyTable",
    "LinkBatch",
    "PatchInfo",
    "Snapshot",
    "StakeBatch",
    "WordNet",
    "detect_format",
    "random_graph",
    "read_bostrom",
    "read_edge_list",
    "read_graph",
    "read_stakes",
    "read_wordnet",
    "rmat_edges",
    "write_wordnet",
]
