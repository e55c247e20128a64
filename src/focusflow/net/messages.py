"""The typed messages peers exchange, and their one byte form.

Every frame payload is the canonical CBOR encoding (``focusflow.core.encoding``)
of an array whose first element is the message kind and whose remaining
elements are that kind's fields, in the order of the dataclass. Arrays rather
than maps keep small votes small; canonical CBOR makes the bytes (and so the
gossip message id) the same on every node. ``decode_message`` accepts exactly
these shapes and raises :class:`DecodeError` for anything else, so a handler
never sees a half-checked value.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import ClassVar

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError

#: 2: Hello and Welcome carry the network id. 3: Auth carries the dialer's
#: certificate (``certs``).
PROTOCOL_VERSION = 3
NODE_ID_SIZE = 32
#: A network id names one chain: the hash of its genesis (``NetConfig.network_id``).
NETWORK_ID_SIZE = 32
NONCE_SIZE = 32
SIGNATURE_SIZE = 64
MESSAGE_ID_SIZE = 32
#: Longest topic or request name, in UTF-8 bytes.
MAX_NAME = 64
#: Largest certificate a dialer may send in ``Auth`` (DER bytes): the whole
#: message stays within what a peer may buffer before it has authenticated
#: (``transport.HANDSHAKE_BUFFER``, 4096 bytes); an issued leaf is ~0.5 KB.
MAX_CERTIFICATE = 2048


@dataclass(frozen=True)
class Hello:
    """Client to server, first message on a new connection: who the client claims
    to be, and which network (genesis) it is on; a server on another network
    refuses it."""

    KIND: ClassVar[int] = 0
    version: int
    node_id: bytes
    network: bytes


@dataclass(frozen=True)
class Challenge:
    """Server to client: a fresh nonce the client must sign to prove its key."""

    KIND: ClassVar[int] = 1
    nonce: bytes


@dataclass(frozen=True)
class Auth:
    """Client to server: signature over the auth transcript (see ``identity``),
    and the DER of the certificate the client presents (empty for none: TLS
    does not carry a client's certificate here; ``certs``)."""

    KIND: ClassVar[int] = 2
    signature: bytes
    certificate: bytes = b""


@dataclass(frozen=True)
class Welcome:
    """Server to client: authentication accepted; the connection is open for traffic.
    ``network`` is the server's network id (the client checks it too)."""

    KIND: ClassVar[int] = 3
    network: bytes


@dataclass(frozen=True)
class Gossip:
    """A message published on a topic; forwarded by every node that first sees it."""

    KIND: ClassVar[int] = 4
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Request:
    """Ask a peer's handler ``name``; travels alone on a new stream."""

    KIND: ClassVar[int] = 5
    name: str
    payload: bytes


@dataclass(frozen=True)
class Response:
    """The handler's answer, on the request's stream."""

    KIND: ClassVar[int] = 6
    payload: bytes


@dataclass(frozen=True)
class Error:
    """A request failed at the peer: a stable error code and a human message."""

    KIND: ClassVar[int] = 7
    code: str
    message: str


@dataclass(frozen=True)
class IHave:
    """A gossip message announced instead of forwarded (lazy push): the peer
    fetches it with a request only if it has not seen it yet."""

    KIND: ClassVar[int] = 8
    topic: str
    message_id: bytes


Message = Hello | Challenge | Auth | Welcome | Gossip | Request | Response | Error | IHave

_KINDS: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (Hello, Challenge, Auth, Welcome, Gossip, Request, Response, Error, IHave)
}
_FIELDS: dict[type[Message], tuple[type, ...]] = {
    Hello: (int, bytes, bytes),
    Challenge: (bytes,),
    Auth: (bytes, bytes),
    Welcome: (bytes,),
    Gossip: (str, bytes),
    Request: (str, bytes),
    Response: (bytes,),
    Error: (str, str),
    IHave: (str, bytes),
}


def encode_message(message: Message) -> bytes:
    """The canonical CBOR bytes of ``message`` (``[kind, *fields]``)."""
    return encode([message.KIND, *astuple(message)])


def decode_message(data: bytes) -> Message:
    """The message whose encoding is exactly ``data``; DecodeError for anything else."""
    value = decode(data, "net message")
    if not isinstance(value, list) or not value:
        raise DecodeError("malformed net message: not a non-empty array")
    kind, fields = value[0], value[1:]
    cls = _KINDS.get(kind) if type(kind) is int else None
    if cls is None:
        raise DecodeError(f"malformed net message: unknown kind {kind!r}")
    types = _FIELDS[cls]
    if len(fields) != len(types) or not all(
        type(f) is t for f, t in zip(fields, types, strict=True)
    ):
        raise DecodeError(f"malformed net message: bad fields for {cls.__name__}")
    message = cls(*fields)
    _check_sizes(message)
    return message


def _check_sizes(message: Message) -> None:
    if isinstance(message, Hello) and len(message.node_id) != NODE_ID_SIZE:
        raise DecodeError("malformed net message: node id is not 32 bytes")
    if isinstance(message, Hello | Welcome) and len(message.network) != NETWORK_ID_SIZE:
        raise DecodeError("malformed net message: network id is not 32 bytes")
    if isinstance(message, Challenge) and len(message.nonce) != NONCE_SIZE:
        raise DecodeError("malformed net message: nonce is not 32 bytes")
    if isinstance(message, Auth) and len(message.signature) != SIGNATURE_SIZE:
        raise DecodeError("malformed net message: signature is not 64 bytes")
    if isinstance(message, Auth) and len(message.certificate) > MAX_CERTIFICATE:
        raise DecodeError(f"malformed net message: certificate over {MAX_CERTIFICATE} bytes")
    if isinstance(message, IHave) and len(message.message_id) != MESSAGE_ID_SIZE:
        raise DecodeError("malformed net message: message id is not 32 bytes")
    if isinstance(message, Gossip | Request | IHave):
        name = message.name if isinstance(message, Request) else message.topic
        if not name or len(name.encode()) > MAX_NAME:
            raise DecodeError(f"malformed net message: name must be 1..{MAX_NAME} bytes")
