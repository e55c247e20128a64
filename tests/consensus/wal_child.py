"""A one-validator chain that runs until killed (the SIGKILL test's child process).

Each proposal asks ``get_value`` for fresh random bytes, so if a restart ever
signed anew instead of repeating what its WAL holds, the parent would see two
different messages for one (height, round, step). Every broadcast message is
printed as one hex line.
"""

from __future__ import annotations

import os
import sys

from focusflow.consensus import (
    Broadcast,
    Decide,
    Signer,
    Tendermint,
    ValidatorSet,
    WriteAheadLog,
    encode_message,
)
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair

CHAIN = "wal-kill-test"
KEY = KeyPair.from_seed(sha256(b"solo validator"))


def main(path: str) -> None:
    signer = Signer(KEY, CHAIN, WriteAheadLog(path))
    vs = ValidatorSet.create({KEY.public_key: 1})
    machine = Tendermint(
        CHAIN, signer=signer, get_value=lambda h: os.urandom(16), is_valid=lambda h, v: True
    )
    # A chain would start at its committed height + 1. This one keeps no blocks, so it
    # starts where the WAL says it got: that height may or may not have been decided,
    # and deciding it again must give the same value.
    actions = machine.start_height(max(signer.resume_height(), 1), vs)
    while True:
        pending = []
        for action in actions:
            if isinstance(action, Broadcast):
                sys.stdout.write(encode_message(action.message).hex() + "\n")
                sys.stdout.flush()
            elif isinstance(action, Decide):
                pending += machine.start_height(action.height + 1, vs)
        actions = pending


if __name__ == "__main__":
    main(sys.argv[1])
