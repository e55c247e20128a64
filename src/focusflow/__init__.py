"""focusflow: publish particles, link them with cyberlinks, get back the network's focus.

The package is layered (docs/architecture.md §2): ``core`` at the bottom, the
kernel packages (``graph``, ``focus``, ...) above it, interfaces (``cli``) on top.
"""

__version__ = "0.1.0"
