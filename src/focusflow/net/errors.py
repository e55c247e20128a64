"""Errors of the transport layer, each with a stable code.

Malformed bytes from a peer are :class:`focusflow.core.errors.DecodeError`
(code ``malformed``) like everywhere else; the errors here are about peers and
connections: who may talk to us, and what happened to a request.
"""

from __future__ import annotations

from focusflow.core.errors import DecodeError, FocusflowError


class NetError(FocusflowError):
    """Base of the transport's own errors."""

    code = "net_error"


class FrameTooLargeError(DecodeError):
    """A frame header announces more bytes than the configured maximum frame size."""

    code = "frame_too_large"


class PeerAuthError(NetError):
    """A peer did not prove that it holds the key of the node id it claims or we expect."""

    code = "peer_auth_failed"


class NetworkMismatchError(PeerAuthError):
    """The peer is on another network: its handshake names a different network id
    (genesis hash). Refused at the handshake, before any gossip."""

    code = "network_mismatch"


class RateLimitedError(NetError):
    """A peer asked for something more often than this node serves it."""

    code = "rate_limited"


class PeerBannedError(NetError):
    """The peer is banned for misbehaviour; no connection is made or kept until it expires."""

    code = "peer_banned"


class PeerUnavailableError(NetError):
    """There is no authenticated connection to the peer and none could be made."""

    code = "peer_unavailable"


class RequestTimeoutError(NetError, TimeoutError):
    """A request got no response within its timeout."""

    code = "request_timeout"


class RemoteError(NetError):
    """The peer answered a request with an error (its ``remote_code`` says which)."""

    code = "remote_error"

    def __init__(self, message: str, remote_code: str = "remote_error") -> None:
        super().__init__(message)
        self.remote_code = remote_code


class InvalidMessageError(NetError):
    """Raised by an application handler: the message is well-formed but invalid.

    The transport does not forward it and lowers the sender's score.
    """

    code = "invalid_message"


class GossipGoneError(NetError):
    """A fetched gossip message is not (or no longer) kept by the announcer."""

    code = "gossip_gone"
