"""focusflow: publish particles, link them with cyberlinks, get back the network's focus.

The package is layered (docs/architecture.md §2): ``core`` at the bottom, the
kernel packages (``graph``, ``focus``, ...) above it, interfaces (``cli``) on top.
"""

__version__ = "0.1.0"

from pathlib import Path as _Path

from focusflow.core.kernel_cache import check_kernel_cache as _check_kernel_cache

# Before any kernel module loads its compiled code: cached kernels built from
# sources that have changed since are dropped (core/kernel_cache.py says why).
_check_kernel_cache(_Path(__file__).resolve().parent)
