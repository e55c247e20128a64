"""The options every ``focusflow tx`` command takes, declared once.

``--from``, ``--fee``, ``--nonce``, ``--wait``, ``--timeout``, ``--home``,
``--node``, ``--json``, ``--chain-id`` and ``--max-fee`` mean the same in each
of the transaction commands (docs/cli.md, *focusflow tx*). A command declares
only its own arguments and takes the common ones as one :class:`TxOptions`
(``opts``); :func:`tx_options` adds them to what typer sees, after the
command's own, so every command's flags, defaults and help read as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from focusflow.cli.common import (
    PASSPHRASE_NOTE,
    ChainIdOpt,
    HomeOpt,
    JsonOpt,
    MaxFeeOpt,
    NodeOpt,
)

#: The devnet's funded key, the signer unless ``--from`` names another.
DEFAULT_SIGNER = "dev"

FromOpt = Annotated[
    str,
    typer.Option(
        "--from", metavar="NAME", help=f"Wallet key that signs and pays. {PASSPHRASE_NOTE}"
    ),
]
FeeOpt = Annotated[
    int | None,
    typer.Option("--fee", min=0, help="Fee to pay (default: the minimum for the size)."),
]
NonceOpt = Annotated[
    int | None, typer.Option("--nonce", min=0, help="Nonce (default: the account's next).")
]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until the transaction is in a block.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds --wait waits.")]


@dataclass(frozen=True)
class TxOptions:
    """The common options of one ``tx`` command, as given.

    ``signer`` is None only where the command signs with a key of its own
    (a validator's, from its home) unless ``--from`` names a wallet key."""

    signer: str | None
    fee: int | None
    nonce: int | None
    wait: bool
    timeout: float
    home: str | None
    node: str | None
    as_json: bool
    chain_id: str | None = None
    max_fee: int | None = None


#: Each common option: its annotation (flag and help) and default, in help order.
COMMON: dict[str, tuple[Any, Any]] = {
    "signer": (FromOpt, DEFAULT_SIGNER),
    "fee": (FeeOpt, None),
    "nonce": (NonceOpt, None),
    "wait": (WaitOpt, False),
    "timeout": (TimeoutOpt, 30.0),
    "home": (HomeOpt, None),
    "node": (NodeOpt, None),
    "as_json": (JsonOpt, False),
    "chain_id": (ChainIdOpt, None),
    "max_fee": (MaxFeeOpt, None),
}

Command = Callable[..., None]


def tx_options(
    *, signer: tuple[Any, Any] | None = None, fixed: Mapping[str, Any] | None = None
) -> Callable[[Command], Command]:
    """Give a command ``def cmd(<its own parameters>, *, opts: TxOptions)`` the
    common options as typer parameters after its own.

    ``signer`` replaces ``--from``'s annotation and default (a validator's
    command signs with the home's validator key unless ``--from`` names one);
    ``fixed`` takes options off the command line with the values they hold for
    it (``tx pin prove`` always waits and picks its own nonces).
    """
    held = dict(fixed or {})
    options = dict(COMMON, **({"signer": signer} if signer is not None else {}))

    def wrap(command: Command) -> Command:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "opts"
        ]
        common = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, (a, d) in options.items()
            if name not in held
        ]

        def run(**given: Any) -> None:
            values = {name: given.pop(name) for name in options if name in given}
            command(**given, opts=TxOptions(**values, **held))

        run.__signature__ = inspect.Signature([*own, *common])  # type: ignore[attr-defined]
        run.__name__, run.__qualname__ = command.__name__, command.__qualname__
        run.__doc__, run.__module__ = command.__doc__, command.__module__
        return run

    return wrap


__all__ = [
    "DEFAULT_SIGNER",
    "FeeOpt",
    "FromOpt",
    "NonceOpt",
    "TimeoutOpt",
    "TxOptions",
    "WaitOpt",
    "tx_options",
]
