"""Where a block's link messages are recorded in the state.

The links of message ``msg_index`` of transaction ``tx_index`` in block
``height`` live at ``/graph/links/<height, 8 bytes><tx, 4 bytes><msg, 2
bytes>``; the records a router packet made add :data:`PACKET_MARK` and the
packet's index in the message (2 bytes). A light client proves a link by this
key.
"""

from __future__ import annotations

LINKS_PREFIX = b"/graph/links/"
#: After a message's key, what marks the record of links a router packet made
#: (then the packet's index in the message, 2 bytes).
PACKET_MARK = b"p"
#: Bytes of a message's key: the prefix, then height, transaction and message.
LINKS_KEY_BYTES = len(LINKS_PREFIX) + 8 + 4 + 2


def links_key(height: int, tx_index: int, msg_index: int) -> bytes:
    return (
        LINKS_PREFIX
        + height.to_bytes(8, "big")
        + tx_index.to_bytes(4, "big")
        + msg_index.to_bytes(2, "big")
    )
