"""A child process that holds the Ray driver of the sharded-solve tests.

Ray's driver leaves threads in its process after ``ray.shutdown()``; in a
long-lived pytest worker one of them brought the worker down a minute and a
half later (SIGILL, while other tests ran). The tests therefore never start
Ray in their own process: they run each Ray-touching step here, in a spawned
child that exits when the module is done.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: The local Ray of a test module: small, quiet, no dashboard.
LOCAL_RAY: dict[str, Any] = {
    "num_cpus": 4,
    "object_store_memory": 200 * 2**20,
    "include_dashboard": False,
    "log_to_driver": False,
    "logging_level": "ERROR",
}


def _init(init: dict[str, Any] | None) -> None:
    if init is not None:
        import ray

        ray.init(**init)


def _shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


class RayDriver:
    """``driver(fn, *args)`` runs ``fn`` (a module-level function) in the child."""

    def __init__(self, init: dict[str, Any] | None = None) -> None:
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(init,),
        )

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._pool.submit(fn, *args, **kwargs).result(timeout=600)

    def close(self) -> None:
        try:
            self._pool.submit(_shutdown).result(timeout=120)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
