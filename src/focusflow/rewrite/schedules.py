"""The CUDA evaluator's schedules by name, apart from the evaluator so that the
command line can name them without importing numba or CuPy."""

from __future__ import annotations

#: How a run's launches are scheduled (``hvm run --schedule``): ``spread``
#: waits a launch for a pair found through another thread's variable,
#: ``chains`` reduces it at once, ``local`` does too with each block's new
#: nodes and variables in its shared memory. ``fork`` is HVM2's own schedule
#: (``cuda_fork``): bitonic sort of 2^19 numbers 5.5x faster than under
#: spread, of 2^14 numbers 190x slower, as under HVM2's runtime. ``auto``
#: starts under ``fork`` and hands the net over to rounds of ``spread`` where
#: ``fork`` runs it slowly (``cuda_fork.RateWatch``); those rounds move to
#: ``local`` where they measure it faster (``cuda._Auto``). On an H200,
#: HVM2's stress test ran 2x (chains) and 10x (local, auto) faster than under
#: spread, the wide programs up to 9x (chains) and 50x (local) slower, and
#: bitonic sort of 2^19 numbers 5.2x faster under auto than in its rounds
#: alone, the small sorts 0.5-0.8x as fast (bench/RESULTS.md, hvm.py and
#: hvm_schedules.py).
SCHEDULES = ("spread", "chains", "local", "auto", "fork")
#: What ``hvm run`` and ``normalize_cuda`` use unless told.
DEFAULT_SCHEDULE = "auto"
