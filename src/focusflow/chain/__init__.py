"""Transactions, blocks, the module interface and the block pipeline."""

from focusflow.chain.block import Block, BlockRecord, Header
from focusflow.chain.chain import BlockResult, Chain, replay
from focusflow.chain.errors import BlockError, GenesisError, TxError
from focusflow.chain.execute import Receipt
from focusflow.chain.genesis import Genesis, GenesisAccount, GenesisValidator
from focusflow.chain.params import ChainParams
from focusflow.chain.tx import Msg, Tx, decode_tx, make_tx

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
