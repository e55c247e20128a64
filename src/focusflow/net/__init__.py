"""Transport between node processes: QUIC, authenticated by node keys.

The transport layer of docs/architecture.md §2: it depends only on
``focusflow.core``. A :class:`Node` listens and dials over QUIC (aioquic),
proves and checks Ed25519 node ids at connect, and offers topic gossip with
de-duplication and bounded fan-out, named request/response, bounded queues, and
peer scoring with bans. The sans-io pieces (framing, messages, dedupe, scoring,
gossip routing) are plain classes usable without sockets. See docs/net.md.
"""

from focusflow.net.dedupe import SeenCache, message_id
from focusflow.net.errors import (
    FrameTooLargeError,
    InvalidMessageError,
    NetError,
    PeerAuthError,
    PeerBannedError,
    PeerUnavailableError,
    RemoteError,
    RequestTimeoutError,
)
from focusflow.net.framing import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from focusflow.net.gossip import (
    BLOCK_PARTS,
    EVIDENCE,
    POLLS,
    STANDARD_TOPICS,
    TRANSACTIONS,
    VOTES,
    GossipRouter,
    Verdict,
)
from focusflow.net.messages import decode_message, encode_message
from focusflow.net.node import NetConfig, NetStats, Node, PeerAddress
from focusflow.net.scoring import Offence, PeerScores

__all__ = [
    "BLOCK_PARTS",
    "DEFAULT_MAX_FRAME",
    "EVIDENCE",
    "POLLS",
    "STANDARD_TOPICS",
    "TRANSACTIONS",
    "VOTES",
    "FrameDecoder",
    "FrameTooLargeError",
    "GossipRouter",
    "InvalidMessageError",
    "NetConfig",
    "NetError",
    "NetStats",
    "Node",
    "Offence",
    "PeerAddress",
    "PeerAuthError",
    "PeerBannedError",
    "PeerScores",
    "PeerUnavailableError",
    "RemoteError",
    "RequestTimeoutError",
    "SeenCache",
    "Verdict",
    "decode_message",
    "encode_frame",
    "encode_message",
    "message_id",
]
