"""The shapes of the API's answers, for the OpenAPI schema and its tests.

Handlers build plain dicts (the hot paths skip pydantic's per-response
validation); these models document them, and schemathesis checks in the test
suite that every answer matches them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from focusflow.api.errors import ErrorDetail
from focusflow.api.params import ACCOUNT_PATTERN, INT64_MAX

#: Bytes in hex, two digits a byte.
HEX_BYTES = r"^([0-9a-fA-F]{2})*$"

#: A particle's text where the node keeps one (``POST /v1/particles/texts``), else null.
KeptText = Annotated[str | None, Field(description="the text this node keeps, or null")]


class FocusStats(BaseModel):
    iterations: int
    seconds: float
    particles: int
    links: int
    neurons: int


class MempoolStats(BaseModel):
    txs: int
    bytes: int


class DagStats(BaseModel):
    epoch: int = Field(description="the epoch the DAG runs; -1 if this validator is not in the set")
    pool: int = Field(description="transactions waiting to be sealed into a batch")
    uncertified: int = Field(description="own batches sealed and not yet certified")
    unordered: int = Field(description="certificates held that no committed block ordered yet")
    sealed: int = Field(description="batches this validator sealed since it started")
    certified: int = Field(description="own batches certified since it started")
    evidence: int = Field(description="equivocations found and handed to the evidence pool")


class Status(BaseModel):
    chain_id: str
    height: int
    latest_block_hash: str
    latest_block_time_ms: int
    state_root: str
    focus_root: str
    data_root: str
    validator: str | None
    role: str = Field(description="validator, or full (a full node: never signs)")
    base: int = Field(
        description="the snapshot height the node's store began at (0: genesis); "
        "a node with a base above 0 serves no block below it"
    )
    halted: str | None = Field(
        description=(
            "why the node stopped following its chain (a verified fraud proof, or "
            "'UPGRADE NEEDED at height N': a focus algorithm its code lacks), or null"
        )
    )
    focus: FocusStats
    mempool: MempoolStats
    dag: DagStats | None = Field(
        default=None,
        description="the DAG mempool's counters on a validator of a chain whose "
        "consensus.mempool is dag; null elsewhere",
    )
    version: str


class Params(BaseModel):
    chain_id: str
    params: dict[str, object]
    fee_per_byte: int


class TxSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tx: str = Field(
        description="hex of the signed transaction's canonical CBOR",
        pattern=HEX_BYTES,
        min_length=2,
        max_length=2 << 20,
    )


class TxAccepted(BaseModel):
    hash: str


class BlobPut(BaseModel):
    """What ``POST /v1/blobs`` stored: the root CID, the blob's bytes and chunks,
    and how many chunks and bytes (chunks and DAG nodes) were new to the node."""

    cid: str
    size: int
    chunks: int
    new_chunks: int
    new_bytes: int


class BlobFetched(BlobPut):
    """What ``POST /v1/blobs/{cid}/fetch`` stored, and from whom: blocks given
    by each peer (node id in hex) and the peers left out, with why."""

    peers: dict[str, int]
    dropped: dict[str, str]


class BlobProof(BaseModel):
    cid: str
    size: int
    offset: int
    path: list[str] = Field(description="the blocks from the root to the chunk, hex")


class PinRequestOut(BaseModel):
    request: str
    cid: str
    size: int
    owner: str
    reward: int
    escrow: int
    expires: int = Field(description="the last height at which it pays")


class BlobUnpinned(BaseModel):
    cid: str
    freed_bytes: int


class TxBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    txs: list[Annotated[str, Field(pattern=HEX_BYTES)]] = Field(
        description="hex of each signed transaction", max_length=1000
    )


class TxOutcome(BaseModel):
    hash: str | None = None
    error: ErrorDetail | None = None


class TxBatchResult(BaseModel):
    results: list[TxOutcome]


class TxStatus(BaseModel):
    hash: str
    status: str = Field(description="pending or committed")
    height: int | None
    index: int | None
    code: str | None
    log: str | None
    events: list[dict[str, object]]


class CommitSig(BaseModel):
    public_key: str
    signature: str


class BlockOut(BaseModel):
    height: int
    hash: str
    time_ms: int
    parent: str
    txs_root: str
    state_root: str
    focus_root: str
    data_root: str
    #: RFC 6962 root of the block's encoded duplicate-vote evidence.
    evidence_root: str
    validators_hash: str
    proposer: str | None
    txs: list[str]
    n_txs: int
    #: SHA-256 of each piece of evidence (the hash the chain identifies it by).
    evidence: list[str]
    #: Block-level events: ``{"type": "slash", validator, public_key, height,
    #: evidence, amount, bonded}`` per offence punished.
    events: list[dict[str, object]]
    commit: list[CommitSig]


class BlockList(BaseModel):
    blocks: list[BlockOut]
    #: ``before`` for the next page (older blocks), null once block 0 is listed.
    next_before: int | None


# GET /v1/accounts/{address}'s answer. Named Account (not AccountOut like its
# neighbours) because the class name is the OpenAPI component's, which clients
# generated from /openapi.json know; the record it renders is chain.account.Account
# and the CLI's reading of it focusflow.client.ReportedAccount.
class Account(BaseModel):
    address: str
    balance: int
    nonce: int
    #: The nonce for the next transaction: ``nonce`` plus the run of this
    #: account's transactions waiting in this node's mempool.
    pending_nonce: int
    bonded: int
    neudeg: int


class RankedParticle(BaseModel):
    rank: int
    cid: str
    focus: float
    focus_q: int
    text: KeptText = None


class TopParticles(BaseModel):
    height: int
    total: int = Field(description="particles in the graph at this height")
    particles: list[RankedParticle]


class ParticleFocus(BaseModel):
    cid: str
    height: int
    focus: float
    focus_q: int
    rank: int
    index: int
    links_in: int
    links_out: int
    text: KeptText = None


class NeuronFocus(BaseModel):
    address: str
    height: int
    karma: float
    stake: float
    neudeg: int


class SyntropyPoint(BaseModel):
    height: int
    syntropy: float
    entropy: float
    particles: int


class SyntropyHistory(BaseModel):
    history: list[SyntropyPoint]


class Neighbour(BaseModel):
    cid: str
    weight: float
    focus: float
    text: KeptText = None


class ParticleLinks(BaseModel):
    cid: str
    direction: str
    total: int
    offset: int
    links: list[Neighbour]


class CidOut(BaseModel):
    cid: str


class TextsKept(BaseModel):
    cids: list[str] = Field(description="the CID of each text, in order")
    stored: int = Field(description="distinct texts of the request this node now keeps")
    unknown: list[str] = Field(description="CIDs not kept: no committed or pending link names them")


class ParticleText(BaseModel):
    cid: str
    text: str


class NameOut(BaseModel):
    name: str
    cid: str
    owner: str
    #: ``host:port`` its owner's node listens at (``name.address``), or null.
    address: str | None = None


class CaMember(BaseModel):
    address: str
    identifier: int


class CtHead(BaseModel):
    tree_size: int
    root_hash: str


class CaOut(BaseModel):
    height: int
    threshold: int
    public_key: str
    root_pem: str
    members: list[CaMember]
    log: CtHead


class CrossCert(BaseModel):
    root_hash: str = Field(description="SHA-256 of the other network's root DER, hex")
    serial: str
    pem: str = Field(description="the cross-certificate this network's group signed")


class FederationOut(BaseModel):
    height: int
    roots: list[CrossCert]


class BootstrapLink(BaseModel):
    peer: str = Field(description="the peer's node id, hex")
    own: str = Field(description="who vouched for this node's key on the link: self or ca")
    peer_certificate: str = Field(description="who vouched for the peer's key: self or ca")


class BootstrapPeer(BaseModel):
    node_id: str = Field(description="a validator's node id, hex")
    address: str = Field(description="host:port it is dialed at")
    # "from" is a Python keyword: the field keeps the JSON name
    source: str = Field(
        alias="from",
        description="names: its CA-certified name said so (node.bootstrap); config: as configured",
    )


class BootstrapOut(BaseModel):
    enabled: bool = Field(
        description="whether this node runs the phases (a validator on a network; "
        "a devnet or a full node does not)"
    )
    phase: int = Field(description="0 self-signed, 1 ca-issued, 2 ca-required, 3 self-sufficient")
    name: str
    certificate: str | None = Field(description="serial of the CA certificate presented, hex")
    reached: dict[str, float] = Field(description="phase -> when it was first reached (Unix s)")
    links: list[BootstrapLink]
    peers: list[BootstrapPeer] = Field(default_factory=list)


class CaCertOut(BaseModel):
    serial: str
    height: int
    pem: str
    leaf_index: int
    tree_size: int
    root_hash: str
    audit_path: list[str]


class CaKeyOut(BaseModel):
    key: str
    serial: str
    height: int
    pem: str
    revoked: bool


class CaCrlOut(BaseModel):
    height: int
    number: int
    pem: str


class CtConsistencyOut(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class ProofOut(BaseModel):
    key: str
    height: int
    root: str
    value: str | None
    proof: str


class LastVote(BaseModel):
    height: int
    round: int
    type: Literal["prevote", "precommit"]
    value_id: str | None = Field(description="hex id of the value (block hash); null is nil")
    time_ms: int = Field(description="when this node received or signed it (ms since the epoch)")


class ValidatorOut(BaseModel):
    address: str
    public_key: str
    power: int
    proposer_priority: int
    proposer: bool = Field(description="proposes the current round of the current height")
    last_vote: LastVote | None


class Validators(BaseModel):
    height: int = Field(
        description="the height consensus is at; during the commit wait, the one just decided"
    )
    round: int
    step: Literal["propose", "prevote", "precommit", "commit"]
    total_power: int
    validators: list[ValidatorOut]


class Faucet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=ACCOUNT_PATTERN)
    amount: int = Field(gt=0, le=INT64_MAX)


class PoolOut(BaseModel):
    """One pool of the exchange (``modules.dex``), its pair in byte order."""

    a: str
    b: str
    reserve_a: int
    reserve_b: int
    shares: int = Field(description="every share outstanding, the 1,000 locked at creation too")
    share_denom: str = Field(description="the denom of its shares, lp/<a>/<b>")
    price_q64: int = Field(description="the price of one a in b now, Q64 (times 2^64)")
    price: float = Field(description="reserve_b / reserve_a")
    twap_q64: int = Field(description="the time-weighted average price of a in b, Q64")
    twap: float = Field(description="twap_q64 / 2^64")
    halted_until: int = Field(description="the last height its circuit breaker halts it; -1: never")


class PoolAnswer(PoolOut):
    height: int
    time_ms: int = Field(description="the block time the TWAP is taken at (the head's)")


class PoolList(BaseModel):
    height: int
    time_ms: int = Field(description="the block time the TWAPs are taken at (the head's)")
    pools: list[PoolOut]


class Balances(BaseModel):
    address: str
    height: int
    balances: dict[str, int] = Field(
        description="every non-zero liquid balance by denom, cyb first"
    )


class RewardTotals(BaseModel):
    index: int = Field(description="the H one unit of bonded stake earned since genesis, x 10^27")
    total_bonded: int
    held: int = Field(description="the H the reward pool holds for every staker's share")


class EconomyOut(BaseModel):
    height: int
    time_ms: int
    economics: int = Field(description="1: fees are paid in h and split; 0: one token, cyb")
    fee_per_byte: int = Field(description="the fee per byte the next block charges at least")
    premium_bps: int | None = Field(
        description="H's premium over par from the cyb/h TWAP, in basis points; "
        "null without a cyb/h pool"
    )
    buyback_bps: int = Field(description="the share of the base fees sold for CYB and burned")
    rewards: RewardTotals | None = Field(
        description="the reward pool; null on a chain that never opened one (economics 0)"
    )
    h_supply: int
    dealer_reserve: int = Field(description="the CYB the primary dealers' mints locked")
