"""Length-prefixed frames on a QUIC stream.

A QUIC stream is a byte pipe; messages need boundaries. Each frame is a 4-byte
big-endian unsigned length followed by that many bytes of payload (one encoded
message). The decoder refuses a header that announces more than ``max_frame``
bytes before buffering any of it, so a peer cannot make us allocate memory by
lying about a length. Sans-io: ``FrameDecoder.feed`` takes bytes and returns the
complete payloads; there are no sockets here.
"""

from __future__ import annotations

import struct

from focusflow.core.errors import DecodeError
from focusflow.net.errors import FrameTooLargeError

HEADER_SIZE = 4
#: Default largest payload: a 1 MB block part or DA share batch with room to spare.
DEFAULT_MAX_FRAME = 8 * 1024 * 1024

_HEADER = struct.Struct(">I")


def encode_frame(payload: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """The frame carrying ``payload``: 4-byte big-endian length, then the bytes."""
    if len(payload) > max_frame:
        raise FrameTooLargeError(f"frame of {len(payload)} bytes exceeds maximum {max_frame}")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Reassembles frames from the pieces of a stream as they arrive."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._need: int | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return every payload completed by it, in order.

        Raises :class:`FrameTooLargeError` when a header exceeds ``max_frame``; the
        stream is unusable after that (its boundaries are lost), so callers close it.
        """
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buffer) < HEADER_SIZE:
                    return frames
                (length,) = _HEADER.unpack_from(self._buffer)
                if length > self.max_frame:
                    raise FrameTooLargeError(
                        f"frame header announces {length} bytes, maximum is {self.max_frame}"
                    )
                del self._buffer[:HEADER_SIZE]
                self._need = length
            if len(self._buffer) < self._need:
                return frames
            frames.append(bytes(self._buffer[: self._need]))
            del self._buffer[: self._need]
            self._need = None

    def finish(self) -> None:
        """Check that the stream ended on a frame boundary (raises DecodeError if not)."""
        if self._need is not None or self._buffer:
            raise DecodeError("malformed frame: stream ended inside a frame")
