"""Entry point of the ``focusflow`` command.

Every error a user can cause ends the program with one line on stderr
(``error: ...``) and a non-zero exit status: 2 for bad input or usage, 1 for
anything unexpected. Tracebacks are for bugs, shown only with FOCUSFLOW_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from focusflow import __version__
from focusflow.cli.auth_cmd import auth_app
from focusflow.cli.blob_cmd import app as blob_app
from focusflow.cli.ca_cmd import ca_app, ct_app
from focusflow.cli.compile_cmd import compile_cmd
from focusflow.cli.da_cmd import da_app
from focusflow.cli.dex_cmd import dealer_app, pool_app, rewards_app, swap_cmd
from focusflow.cli.focus_cmd import focus_app
from focusflow.cli.hvm_cmd import hvm_app
from focusflow.cli.import_cmd import import_app
from focusflow.cli.infer_cmd import infer_cmd
from focusflow.cli.keys_cmd import keys_app
from focusflow.cli.konomi_cmd import konomi_app
from focusflow.cli.light_cmd import light_app
from focusflow.cli.pin_cmd import pin_app
from focusflow.cli.query_cmd import query_app
from focusflow.cli.tx_cmd import tx_app
from focusflow.core.errors import FocusflowError

app = typer.Typer(
    name="focusflow",
    help="focusflow: publish particles, link them, compute the network's focus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(focus_app, name="focus")
app.add_typer(da_app, name="da")
app.add_typer(konomi_app, name="konomi")
app.add_typer(keys_app, name="keys")
tx_app.add_typer(pin_app, name="pin")
tx_app.command("swap")(swap_cmd)
tx_app.add_typer(pool_app, name="pool")
tx_app.add_typer(dealer_app, name="dealer")
tx_app.add_typer(rewards_app, name="rewards")
app.add_typer(tx_app, name="tx")
app.add_typer(query_app, name="query")
app.add_typer(import_app, name="import")
app.add_typer(light_app, name="light")
app.add_typer(ca_app, name="ca")
app.add_typer(ct_app, name="ct")
app.add_typer(auth_app, name="auth")
app.add_typer(blob_app, name="blob")
app.add_typer(hvm_app, name="hvm")
app.command("infer")(infer_cmd)
app.command("compile")(compile_cmd)


def _version(value: bool) -> None:
    if value:
        print(f"focusflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """focusflow command line."""


def _fail(message: str, status: int) -> None:
    first = " ".join(str(message).split())
    print(f"error: {first}", file=sys.stderr)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turns every user error into one line and an exit status."""
    try:
        # Out of standalone mode, typer answers Ctrl-C (KeyboardInterrupt) and
        # `typer.Exit(n)` by returning the status instead of exiting with it;
        # the commands themselves return None.
        status = app(args=argv, prog_name="focusflow", standalone_mode=False)
        if status == 130:
            _fail("interrupted", 130)
        elif isinstance(status, int) and status:
            sys.exit(status)
    except FocusflowError as exc:
        # A light client's verification failure has its own status (3).
        _fail(f"{exc} [{exc.code}]", getattr(exc, "exit_status", 2))
    except TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            sys.exit(0)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(message or "interrupted", 2 if message else 130)
    except typer.Abort:  # Ctrl-C or end of input at a prompt (passphrase, confirmation)
        _fail("aborted", 130)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("FOCUSFLOW_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set FOCUSFLOW_DEBUG=1 for a traceback)",
            1,
        )
