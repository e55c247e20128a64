"""``python -m focusflow`` runs the command-line interface."""

from focusflow.node.main import main

main()
