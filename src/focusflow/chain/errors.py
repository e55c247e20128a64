"""Why a transaction or block was refused: one class per reason, one stable code each.

The codes are part of the API (receipts, REST errors, CLI output) and never
change once published; docs/chain.md lists them.
"""

from __future__ import annotations

from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.core import errors as core_errors
from focusflow.core.errors import FocusflowError


class TxError(FocusflowError):
    """A transaction was refused or failed."""

    code = "tx_error"


class BadSignatureError(TxError):
    code = "bad_signature"


class WrongChainIdError(TxError):
    code = "wrong_chain_id"


class BadNonceError(TxError):
    code = "bad_nonce"


class InsufficientFundsError(TxError):
    code = "insufficient_funds"


class InsufficientFeeError(TxError):
    code = "insufficient_fee"


class MalformedMessageError(core_errors.MalformedMessageError, TxError):
    """A transaction's message body that is not of its documented shape: a
    TxError (the transaction pays its fee), coded as every malformed message."""


class OverLimitError(TxError):
    code = "over_limit"


class BlockFullError(OverLimitError):
    """The transaction would fit an emptier block (the block's EVM gas is used up):
    a producer leaves it in the pool for a later block instead of refusing it."""


class EvmInvalidError(TxError):
    """An Ethereum transaction the EVM cannot run at all (gas below its intrinsic
    cost, a malformed access list): it cannot be in a block."""

    code = "evm_invalid"


class InternalError(TxError):
    """A message handler raised an exception no handler means to raise (a bug, or
    input a library chokes on). The transaction's receipt carries this code and
    the exception's class name only (never its text, which may differ between
    library versions), its writes are dropped and the block goes on. For an
    Ethereum transaction, which charges its own gas inside the handler, it is a
    refusal instead: the transaction is left out of the block."""

    code = "internal_error"


class EvmRevertedError(TxError):
    """An Ethereum transaction whose execution reverted or ran out of gas: it
    stays in its block, its gas paid and its nonce used (the receipt's code)."""

    code = "evm_reverted"


class UnknownParticleFormatError(TxError):
    code = "unknown_particle_format"


class OverLinkBudgetError(TxError):
    code = "over_link_budget"


class NameTakenError(TxError):
    code = "name_taken"


class UnknownNameError(TxError):
    code = "unknown_name"


class NotOwnerError(TxError):
    code = "not_owner"


class InvalidNameError(TxError):
    code = "invalid_name"


class ValidatorRegisteredError(TxError):
    """``validator.register`` from a key that is registered already."""

    code = "validator_registered"


class NotValidatorError(TxError):
    """``validator.unregister`` from a key that is not registered."""

    code = "not_validator"


class InsufficientStakeError(TxError):
    """Registering as a validator with less bonded stake than one unit of power."""

    code = "insufficient_stake"


class UpgradeTooSoonError(TxError):
    """``focus.upgrade`` for a height less than ``focus_upgrade_delay`` blocks
    after the block that carries it."""

    code = "upgrade_too_soon"


class AlreadyVotedError(TxError):
    """``focus.upgrade`` from a validator whose vote for the same upgrade is
    counted already."""

    code = "already_voted"


class TooManyVotesError(TxError):
    """``focus.upgrade`` from a validator that already holds the most undecided
    votes one validator may hold (``modules.upgrades.MAX_OPEN_VOTES``)."""

    code = "too_many_votes"


class UnknownPoolError(TxError):
    """A swap or deposit names a pair that has no pool."""

    code = "unknown_pool"


class PoolExistsError(TxError):
    """``dex.create`` for a pair whose pool is open (one pool per pair)."""

    code = "pool_exists"


class SlippageError(TxError):
    """A swap pays less than its ``min_out`` (or needs more than its ``max_in``),
    or a deposit or withdrawal misses its minimums."""

    code = "slippage"


class InsufficientLiquidityError(TxError):
    """The pool cannot serve the amount (a first deposit too small, an output
    the reserve cannot pay, a withdrawal that would empty it)."""

    code = "insufficient_liquidity"


class CircuitBreakerError(TxError):
    """A swap would move its pool's price further from the TWAP than
    ``dex_breaker_bps``; the pool halts for the rest of the block."""

    code = "circuit_breaker"


class PoolHaltedError(TxError):
    """The pool's circuit breaker tripped in this block or its halt lasts."""

    code = "pool_halted"


class NotDealerError(TxError):
    """``dex.mint`` or ``dex.redeem`` from an account that is no primary dealer."""

    code = "not_dealer"


class QuotaExceededError(TxError):
    """A primary dealer's mints and redemptions would pass its quota for the period."""

    code = "quota_exceeded"


class NothingToClaimError(TxError):
    """``rewards.claim`` from an account that has earned nothing since its last claim."""

    code = "nothing_to_claim"


class DuplicateTxError(TxError):
    code = "duplicate_tx"


class MempoolFullError(TxError):
    code = "mempool_full"


class SendersFullError(MempoolFullError):
    """The mempool holds transactions of its maximum number of senders, and the
    newcomer does not outbid the lowest sender with a single one pending."""

    code = "mempool_senders_full"


class SenderFullError(TxError):
    """The sender has the most transactions one sender may have pending."""

    code = "sender_full"


class AdmissionBusyError(TxError):
    """The node's admission workers have the most transactions waiting they take;
    nothing of the submission was looked at. ``retry_after``: seconds to wait."""

    code = "admission_busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IbcError(TxError):
    """An interchain message (``modules.ibc``) the chain refuses: the base of
    the codes below, each a lie or a mistake a relayer can make."""

    code = "ibc_error"


class UnknownClientError(IbcError):
    """No light client of that name (this chain keeps one per counterparty its
    genesis names)."""

    code = "client_not_found"


class ClientFrozenError(IbcError):
    """The light client saw two valid headers at one height (its counterparty's
    validators signed a fork): it accepts no header and no proof any more."""

    code = "client_frozen"


class ClientExpiredError(IbcError):
    """The light client's newest header is older than its trusting period at
    this block's time: its signers may have unbonded, so nothing is trusted."""

    code = "client_expired"


class HeaderUntrustedError(IbcError):
    """A header whose signers hold 1/3 or less of the trusted set's power: not
    provably the counterparty's (a relayer may submit one in between)."""

    code = "header_untrusted"


class MissingConsensusStateError(IbcError):
    """A proof at a height the light client holds no verified header of
    (never updated to it, or pruned): update the client first."""

    code = "consensus_state_not_found"


class IbcProofError(core_errors.BadProofError, IbcError):
    """A membership or non-membership proof that does not verify against the
    counterparty's state root at the proof's height (forged data, a garbage
    proof, another key): the code of every proof that does not verify."""


class UnknownConnectionError(IbcError):
    code = "connection_not_found"


class UnknownChannelError(IbcError):
    code = "channel_not_found"


class IbcStateError(IbcError):
    """A handshake step or packet on a connection or channel in the wrong
    state (a step repeated, skipped, or on a closed channel)."""

    code = "ibc_wrong_state"


class PortUnboundError(IbcError):
    """No application of this chain is bound to the port."""

    code = "port_unbound"


class PacketReplayedError(IbcError):
    """A packet whose sequence the channel received already (ordered channels
    take each sequence once)."""

    code = "packet_replayed"


class PacketOutOfOrderError(IbcError):
    """A packet (or acknowledgement) ahead of the channel's next sequence: an
    ordered channel takes them in order, none skipped."""

    code = "packet_out_of_order"


class PacketTimedOutError(IbcError):
    """A packet received at or past its timeout height or time: it is the
    sender's to time out, not ours to take."""

    code = "packet_timed_out"


class TimeoutNotReachedError(IbcError):
    """A timeout proven at a counterparty height whose header is before the
    packet's timeout height and time: the packet may still arrive."""

    code = "timeout_not_reached"


class PacketReceivedError(IbcError):
    """A timeout for a packet the counterparty proves it received."""

    code = "packet_received"


class UnknownPacketError(IbcError):
    """An acknowledgement or timeout for a packet this chain has no commitment
    of: never sent, or acknowledged or timed out already."""

    code = "unknown_packet"


class PacketMismatchError(IbcError):
    """A packet that differs from the one this chain committed under its sequence."""

    code = "packet_mismatch"


class BlockError(FocusflowError):
    """A block does not follow from its parent (wrong height, parent, roots ...)."""

    code = "invalid_block"


class BlockTimeError(BlockError):
    """A block's time is not after its parent's, above ``MAX_TIME_MS``, or (for a
    proposal judged for a vote) further ahead of the local clock than
    ``MAX_CLOCK_DRIFT_MS``."""

    code = "invalid_block_time"


class WrongProposerError(BlockError):
    """A block's proposer is not a validator, or not the proposer of the round
    that proposed it."""

    code = "wrong_proposer"


class UpgradeNeededError(BlockError):
    """The block's height is where the chain's schedule switches to a focus
    algorithm this node's code does not implement: it cannot compute that
    block's focus, so it stops there instead of forking (chain/focus_upgrade.py)."""

    code = "upgrade_needed"

    def __init__(self, message: str, height: int) -> None:
        super().__init__(message)
        self.height = height


class EvidenceError(InvalidEvidenceError):
    """Evidence of misbehaviour that does not prove an offence the chain can punish
    (``invalid_evidence``, the consensus layer's code; the subclasses say why
    more precisely)."""


class EvidenceOutOfRangeError(EvidenceError):
    """Evidence older than ``evidence_max_age`` blocks, or of a height not reached yet.

    A batch equivocation is of an epoch: out of range when the epoch's first
    height is not reached yet (the chain does not know its set), or when its
    last height is more than ``evidence_max_age`` blocks back.

    Not proof of malice by whoever relays it: a peer a block behind or ahead sees
    the window shifted.
    """

    code = "evidence_out_of_range"


class AlreadyPunishedError(EvidenceError):
    """The offence (validator, height; or validator, batch slot) was slashed
    already, or is held/included once."""

    code = "already_punished"


class EvidencePoolFullError(FocusflowError):
    """The evidence pool holds its maximum; the evidence was not added."""

    code = "evidence_pool_full"


class UnknownBlockError(FocusflowError):
    """No block at that height (or with that hash) in this node's store."""

    code = "unknown_block"


class BlockNotKeptError(FocusflowError):
    """A block at or below the height this store was installed at from a state
    snapshot: the store never held it, and says so rather than "unknown"."""

    code = "block_not_kept"


class GenesisError(FocusflowError):
    """The genesis file is missing, malformed, or inconsistent."""

    code = "bad_genesis"
