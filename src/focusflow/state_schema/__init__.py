"""The state schema: where each module keeps its records in the key-space, and
how a record's bytes read back.

One small module per part of the state (accounts, names, links, tokens, stake
and validators, blobs, the exchange's pools, rewards, proofs and pins, the
validators' votes, the certificate authority): its
key prefixes, the functions that build its keys, and the readers that decode
its records. The modules write through these names, and everything that only
reads the state (the API, the light client, Datalog's sources) reads through
them, so a key or a record's layout is spelled in one place and no reader
imports a module's handlers to learn it.

This layer stands above the chain kernel and below everything that reads the
state (pyproject.toml's layers): the kernel never imports it, and it imports
nothing of the modules. It holds names and codecs only, no rule of any module:
what a record means for a transaction stays in its module.
"""
