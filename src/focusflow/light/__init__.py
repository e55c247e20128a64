"""A light client that trusts no node: headers by commit certificates, answers by proofs.

docs/light.md is the contract. :class:`LightClient` verifies headers from a
root of trust (the genesis set, or a trusted height and hash) by CometBFT's
skipping verification with bisection, keeps them in a small store in its home
(:class:`LightStore`), and checks every balance, name, focus value and link a
node returns against a verified header's roots (focusflow.light.answers).
"""

from importlib import import_module
from typing import Any

#: Where each public name lives; imported on first use, so that the CLI, which
#: registers ``focusflow light`` in every run, does not load the chain layer.
_HOMES = {
    "BelowTrustRootError": "client",
    "LightClient": "client",
    "Node": "client",
    "genesis_trust": "client",
    "LightStore": "store",
    "LightBlock": "verify",
    "parse_light_block": "verify",
    "verify_adjacent": "verify",
    "verify_skipping": "verify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name, "errors" if name in _ERRORS else None)
    if home is None:
        raise AttributeError(f"module 'focusflow.light' has no attribute {name!r}")
    return getattr(import_module(f"focusflow.light.{home}"), name)


_ERRORS = {
    "EXIT_VERIFICATION",
    "BadCertificateError",
    "BadEncodingError",
    "BadProofError",
    "ChainIdMismatchError",
    "ForkError",
    "HeaderMismatchError",
    "MalformedAnswerError",
    "NodeRequestError",
    "NotSyncedError",
    "TrustExpiredError",
    "ValidatorSetMismatchError",
    "VerificationError",
    "WrongValueError",
}

__all__ = [
    "EXIT_VERIFICATION",
    "BadCertificateError",
    "BadEncodingError",
    "BadProofError",
    "BelowTrustRootError",
    "ChainIdMismatchError",
    "ForkError",
    "HeaderMismatchError",
    "LightBlock",
    "LightClient",
    "LightStore",
    "MalformedAnswerError",
    "Node",
    "NodeRequestError",
    "NotSyncedError",
    "TrustExpiredError",
    "ValidatorSetMismatchError",
    "VerificationError",
    "WrongValueError",
    "genesis_trust",
    "parse_light_block",
    "verify_adjacent",
    "verify_skipping",
]
