"""Transactions, blocks, the module interface and the block pipeline.

The names below load on first use (PEP 562): a light client or a CLI command
that needs only headers, genesis or transactions (``focusflow.chain.block``,
``.genesis``, ``.tx``) must not pay for importing the focus engine and numba,
which ``focusflow.chain.chain`` pulls in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from focusflow.core.lazy import lazy_names

_WHERE = {
    "Block": "block",
    "BlockRecord": "block",
    "Header": "block",
    "BlockResult": "pending",
    "Chain": "chain",
    "replay": "chain",
    "BlockError": "errors",
    "GenesisError": "errors",
    "TxError": "errors",
    "Receipt": "execute",
    "Genesis": "genesis",
    "GenesisAccount": "genesis",
    "GenesisValidator": "genesis",
    "ChainParams": "params",
    "Msg": "tx",
    "Tx": "tx",
    "decode_tx": "tx",
    "make_tx": "tx",
}

if TYPE_CHECKING:
    from focusflow.chain.block import Block, BlockRecord, Header
    from focusflow.chain.chain import Chain, replay
    from focusflow.chain.errors import BlockError, GenesisError, TxError
    from focusflow.chain.execute import Receipt
    from focusflow.chain.genesis import Genesis, GenesisAccount, GenesisValidator
    from focusflow.chain.params import ChainParams
    from focusflow.chain.tx import Msg, Tx, decode_tx, make_tx


__getattr__ = lazy_names(__name__, _WHERE)


__all__ = [
    "Block",
    "BlockError",
    "BlockRecord",
    "BlockResult",
    "Chain",
    "ChainParams",
    "Genesis",
    "GenesisAccount",
    "GenesisError",
    "GenesisValidator",
    "Header",
    "Msg",
    "Receipt",
    "Tx",
    "TxError",
    "decode_tx",
    "make_tx",
    "replay",
]
