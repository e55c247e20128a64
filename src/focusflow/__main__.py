"""``python -m focusflow`` runs the command-line interface."""

from focusflow.cli.main import main

main()
