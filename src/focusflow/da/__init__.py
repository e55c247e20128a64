"""Sovereign data availability: shares, 2D Reed–Solomon, namespaced Merkle roots,
sampling and bad-encoding fraud proofs, byte-compatible with Celestia's data
square (see docs/da.md).

The chain fills a block header's data root with
``extend(square_from_block(txs)).data_root()``.
"""

from focusflow.da.errors import (
    DAError,
    InvalidFraudProofError,
    InvalidShareError,
    RepairError,
    RootMismatchError,
    ShareUnavailableError,
)
from focusflow.da.fraud import (
    BadEncodingProof,
    find_bad_encoding,
    find_bad_encoding_committed,
    prove_bad_axis,
    verify_bad_encoding_proof,
)
from focusflow.da.layout import square_from_block
from focusflow.da.merkle import MerkleProof
from focusflow.da.namespace import (
    FOCUSFLOW_NAMESPACE,
    PARITY_SHARE_NAMESPACE,
    TAIL_PADDING_NAMESPACE,
    TX_NAMESPACE,
    namespace_v0,
)
from focusflow.da.proofs import (
    ShareProof,
    axis_root_of,
    proof_from_json,
    proof_to_json,
    prove_namespace_in_row,
    verify_namespace_in_row,
    verify_share_proof,
)
from focusflow.da.sampling import (
    DEFAULT_SAMPLES,
    Sampler,
    SampleRequest,
    SamplingResult,
    detection_probability,
    sample,
    samples_for_confidence,
    share_id,
)
from focusflow.da.shares import SHARE_SIZE
from focusflow.da.square import ExtendedSquare, extend, repair
from focusflow.da.wire import (
    befp_from_cbor,
    befp_from_json,
    befp_to_cbor,
    befp_to_json,
    share_proof_from_cbor,
    share_proof_to_cbor,
)

__all__ = [
    "DEFAULT_SAMPLES",
    "FOCUSFLOW_NAMESPACE",
    "PARITY_SHARE_NAMESPACE",
    "SHARE_SIZE",
    "TAIL_PADDING_NAMESPACE",
    "TX_NAMESPACE",
    "BadEncodingProof",
    "DAError",
    "ExtendedSquare",
    "InvalidFraudProofError",
    "InvalidShareError",
    "MerkleProof",
    "RepairError",
    "RootMismatchError",
    "SampleRequest",
    "Sampler",
    "SamplingResult",
    "ShareProof",
    "ShareUnavailableError",
    "axis_root_of",
    "befp_from_cbor",
    "befp_from_json",
    "befp_to_cbor",
    "befp_to_json",
    "detection_probability",
    "extend",
    "find_bad_encoding",
    "find_bad_encoding_committed",
    "namespace_v0",
    "proof_from_json",
    "proof_to_json",
    "prove_bad_axis",
    "prove_namespace_in_row",
    "repair",
    "sample",
    "samples_for_confidence",
    "share_id",
    "share_proof_from_cbor",
    "share_proof_to_cbor",
    "square_from_block",
    "verify_bad_encoding_proof",
    "verify_namespace_in_row",
    "verify_share_proof",
]
