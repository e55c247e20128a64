"""What the wallet, transaction, query and import commands share.

The same options (``--home``, ``--node``, ``--json``) mean the same thing in
every command, passphrases are asked for in one way, and a particle argument is
read in one way (a CID, or text that becomes one), so a user learns it once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from focusflow.cli.node_address import UNREACHABLE_HINT, node_url, tls_verify
from focusflow.client import TIMEOUT_S, NodeClient
from focusflow.core.cid import cid_to_bytes, particle_cid
from focusflow.core.errors import (
    InputFileError,
    InvalidAddressError,
    InvalidParameterError,
    WrongPassphraseError,
)
from focusflow.core.home import keys_dir, resolve_home
from focusflow.core.keys import KeyPair, encode_address, parse_account
from focusflow.core.keystore import Keystore

ENV_PASSPHRASE = "FOCUSFLOW_PASSPHRASE"
#: Said in the help of every option that names a wallet key to unlock.
PASSPHRASE_NOTE = (
    f"An encrypted key's passphrase is asked for on a terminal, else read from ${ENV_PASSPHRASE}."
)

HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home",
        help="Node home (keys in <home>/keys). Default: $FOCUSFLOW_HOME, "
        "else ~/.local/share/focusflow/devnet.",
        show_default=False,
    ),
]
NodeOpt = Annotated[
    str | None,
    typer.Option(
        "--node",
        help="API URL of the node. Default: the api of <home>/node.json, "
        "else http://127.0.0.1:26657.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Drop bostrom links whose particles are not CIDs (the summary counts them). "
        "Real dumps hold a few such rows; without it the first one stops the command.",
    ),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Neither read nor write the graph file's cache (FILE.ffgraph, used while "
        "FILE's bytes stay the same); also $FOCUSFLOW_GRAPH_CACHE=0.",
    ),
]
ChainIdOpt = Annotated[
    str | None,
    typer.Option(
        "--chain-id",
        help="Chain to sign for; the node must report the same. Default: the chain_id "
        "of <home>/genesis.json.",
        show_default=False,
    ),
]
MaxFeeOpt = Annotated[
    int | None,
    typer.Option(
        "--max-fee",
        min=0,
        help="Refuse to sign a transaction paying more. Default: the fee of the largest "
        "transaction under the genesis parameters (1,048,676 with the defaults).",
        show_default=False,
    ),
]


def _console() -> Console:
    """Rich output that never cuts a hash or CID short: piped output is not wrapped at
    all (tables size to their content), a terminal gets tables at its own width."""
    probe = Console()
    if probe.is_terminal:
        return Console(highlight=False)
    return Console(highlight=False, width=100_000, soft_wrap=True)


console = _console()


def print_json(value: Any) -> None:
    """One JSON document on stdout (sorted keys, so scripts and diffs are stable)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def keystore(home: str | None) -> Keystore:
    return Keystore(keys_dir(resolve_home(home)))


def client(home: str | None, node: str | None, timeout: float = TIMEOUT_S) -> NodeClient:
    """The client of the node the command asks (``--node``, else the home's
    node.json, else the default), over TLS as the environment says; ``timeout``
    for each network operation."""
    url, source = node_url(node, resolve_home(home))
    return NodeClient(
        url, timeout=timeout, verify=tls_verify(), source=source, hint=UNREACHABLE_HINT
    )


def skipped_invalid(graph: object) -> int:
    """How many links ``--skip-invalid`` dropped while ``graph`` was read."""
    return int(getattr(graph, "skipped_invalid", 0) or 0)


def skipped_note(skipped: int) -> str | None:
    """The summary line of ``skipped`` links ``--skip-invalid`` dropped, None if none.

    Every command that reads a bostrom file says it in these words, so a user
    who drops rows always sees how many.
    """
    if not skipped:
        return None
    return f"skipped {skipped} links whose particles are not CIDs"


def loading(what: str, show: bool = True) -> contextlib.AbstractContextManager[Any]:
    """A spinner on stderr saying ``what`` while a long read runs; nothing when
    stderr is not a terminal (scripts, pipes, logs) or ``show`` is false."""
    err = Console(stderr=True)
    if not (show and err.is_terminal):
        return contextlib.nullcontext()
    return err.status(what, spinner="dots")


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class PhaseProgress:
    """A long command's progress on stderr, phase by phase, with counts and the
    time left where a phase knows its count.

    On a terminal it is one live line; anywhere else (a pipe, a log file, CI)
    it writes a line when a phase starts, and then one every ``interval``
    seconds while the phase lasts, so a log of a 20-minute run shows how far it
    is (``compile: evaluate 16/64 contexts, 1 min 12 s, about 3 min 36 s
    left``; ``compile: svd, 2 min 10 s`` for a phase that cannot count) where a
    spinner would show nothing at all. ``interval`` 0 says every count, and
    nothing between them.
    """

    def __init__(self, command: str, *, interval: float = 10.0) -> None:
        self.command = command
        self.interval = interval
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self._live: Any = None
        self._task: Any = None
        self._name = ""
        self._unit = ""
        self._total: int | None = None
        self._done = 0
        self._started = 0.0
        self._said = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> PhaseProgress:
        if self.err.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
            self._live = Progress(*columns, console=self.err, transient=True)
            self._live.__enter__()
            self._task = self._live.add_task("", total=None)
        elif self.interval > 0:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        """A new phase; ``total`` (of ``unit``) when the phase counts its work."""
        with self._lock:
            self._name, self._total, self._unit, self._done = name, total, unit, 0
            self._started = time.monotonic()
            self._show(force=True)

    @property
    def name(self) -> str:
        """The phase under way."""
        return self._name

    def advance(self, done: int, total: int | None = None, unit: str | None = None) -> None:
        """``done`` of the phase's ``total`` (said once, or with the phase) are finished."""
        with self._lock:
            self._done = done
            if total is not None:
                self._total = total
            if unit is not None:
                self._unit = unit
            self._show(force=False)

    def line(self, done: int, *, lasted: bool = False) -> str:
        """What is said of the phase with ``done`` finished; ``lasted`` adds the
        time it has run where it cannot count."""
        text = self._name
        elapsed = time.monotonic() - self._started
        if self._total is not None:
            text += f" {done}/{self._total}{' ' + self._unit if self._unit else ''}"
            if 0 < done < self._total and elapsed > 0:
                left = elapsed / done * (self._total - done)
                text += f", {_duration(elapsed)}, about {_duration(left)} left"
        elif lasted:
            text += f", {_duration(elapsed)}"
        return text

    def _show(self, *, force: bool, lasted: bool = False) -> None:
        """Say the phase (the lock held): always on a terminal, in a log when
        ``force`` or once ``interval`` has passed since the last line."""
        if self._live is not None:
            self._live.update(self._task, description=self.line(self._done))
            return
        now = time.monotonic()
        if force or now - self._said >= self.interval:
            self._said = now
            self.err.print(f"{self.command}: {self.line(self._done, lasted=lasted)}")

    def _heartbeat(self) -> None:
        """In a log, a phase that runs long without counting is said again."""
        while not self._stop.wait(self.interval / 4):
            with self._lock:
                if self._name:
                    self._show(force=False, lasted=True)


# ------------------------------------------------------------------ passphrases


def _interactive() -> bool:
    return sys.stdin.isatty()


def new_passphrase(name: str) -> str:
    """A passphrase for a new key: $FOCUSFLOW_PASSPHRASE, else asked twice (hidden)."""
    env = os.environ.get(ENV_PASSPHRASE)
    if env is not None:
        if env == "":
            raise InvalidParameterError(
                f"${ENV_PASSPHRASE} is empty; set a passphrase or pass --unencrypted"
            )
        return env
    if not _interactive():
        raise InvalidParameterError(
            f"no passphrase for key {name!r}: not a terminal, so set ${ENV_PASSPHRASE} "
            "or pass --unencrypted"
        )
    while True:
        first: str = typer.prompt(f"Passphrase for {name}", hide_input=True)
        if not first:
            typer.echo("An empty passphrase encrypts nothing; use --unencrypted for that.")
            continue
        if typer.prompt("Repeat it", hide_input=True) == first:
            return first
        typer.echo("The two passphrases differ; again.")


def load_key(home: str | None, name: str) -> KeyPair:
    """The wallet key ``name``, asking for its passphrase only if it is encrypted."""
    store = keystore(home)
    info = store.info(name)
    if not info.encrypted:
        return store.load(name)
    env = os.environ.get(ENV_PASSPHRASE)
    if env is None:
        if not _interactive():
            raise WrongPassphraseError(
                f"key {name!r} is encrypted: set ${ENV_PASSPHRASE} (not a terminal to ask in)"
            )
        env = typer.prompt(f"Passphrase for {name}", hide_input=True)
    return store.load(name, env)


# ------------------------------------------------------------------ arguments


def particle(arg: str, *, as_text: bool = False) -> tuple[str, bytes]:
    """``(CID string, binary CID)`` of a particle argument: a CID, or text hashed to one
    (``core.cid.particle_cid`` says which)."""
    cid = particle_cid(arg, as_text=as_text)
    return cid, cid_to_bytes(cid)


def address(arg: str, home: str | None) -> str:
    """The bech32 address of an account spelled ``focus1...`` or ``0x...``, or of
    the wallet key of that name."""
    try:
        return encode_address(parse_account(arg))
    except InvalidAddressError as exc:
        error = exc
    store = keystore(home)
    try:
        if store.exists(arg):
            return store.info(arg).address
    except InvalidParameterError:
        pass
    raise InvalidAddressError(f"{error.message}; and no key named {arg!r} in {store.path}")


def read_input(path: str) -> bytes:
    """The bytes of a file argument, ``-`` for stdin."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None
