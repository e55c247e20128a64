"""The ``focusflow`` command line (typer + rich)."""
