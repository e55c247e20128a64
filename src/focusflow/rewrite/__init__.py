"""An interaction-net virtual machine that runs HVM2 IR programs.

Programs are read in HVM2's text format (``parse``), their definitions laid
out as flat arrays of 32-bit ports and 64-bit pairs (``ports``), reduced by a
numba evaluator (``cpu``) with HVM2's rules and interaction counts, and the
result read back as HVM2 prints it (``show``). ``run`` ties the steps
together. docs/hvm.md.
"""
