"""Compiled kernels kept by numba's cache, dropped when the code they were built from changes.

numba caches a compiled kernel beside its source and checks only that one
file when it loads it again. A kernel calls kernels and reads constants of
other modules, and what those were is compiled into it: after an update that
changes a callee (a `git pull` in a node's checkout, a branch switch), the
caller's cached machine code still runs the old callee. A node would then
compute a block's focus with code its peers no longer run, and its roots
would differ from theirs.

So the package keeps a stamp beside the caches: the digest of every source
file a kernel can depend on (each module that imports numba, and every
package module those import, transitively). When the digest changes, every
cached kernel of the package is deleted and compiles again on first use.
Checking costs one ``stat`` per file in that set (about 70 files) at import;
the digest is computed only when a file's size or modification time moved.

Left open: a process still running the old code that compiles a kernel after
the update writes it with the old callee; restart nodes after updating them
(they must load the new code anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

#: The stamp's file name, in the package's top cache directory.
STAMP_NAME = "kernel-sources.json"
#: What numba names its cache files: the index and the compiled code.
CACHE_SUFFIXES = (".nbi", ".nbc")
_FORMAT = 1

_USES_NUMBA = re.compile(rb"^\s*(?:import numba|from numba[\s.]|@lazy_njit\b)", re.MULTILINE)


def _imports(source: bytes, package: str) -> Iterator[str]:
    """Dotted names this source imports from ``package`` (absolute imports)."""
    pattern = re.compile(
        rb"^\s*(?:from\s+(" + package.encode() + rb"(?:\.\w+)*)\s+import\s+([\w\s,()]+)"
        rb"|import\s+(" + package.encode() + rb"(?:\.\w+)*))",
        re.MULTILINE,
    )
    for match in pattern.finditer(source):
        if match.group(3):
            yield match.group(3).decode()
            continue
        module = match.group(1).decode()
        yield module
        for name in re.split(rb"[\s,()]+", match.group(2)):
            if name and name != b"as":
                yield f"{module}.{name.decode()}"


def _module_file(root: Path, dotted: str) -> Path | None:
    """The source file of module ``dotted`` under ``root`` (the package's
    directory), or None when the name is not a module (a function, a constant)."""
    base = root.joinpath(*dotted.split(".")[1:])
    for candidate in (base.with_suffix(".py") if base != root else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def kernel_sources(root: Path) -> list[Path]:
    """The source files compiled kernels of the package at ``root`` can depend on.

    Modules that import numba or define kernels compiled on first use
    (``core.lazy.lazy_njit``), and the package modules they import, followed
    transitively (imports inside functions included: a kernel module's lazy
    imports can reach a kernel too)."""
    package = root.name
    todo = [
        path
        for path in sorted(root.rglob("*.py"))
        if "__pycache__" not in path.parts and _USES_NUMBA.search(path.read_bytes())
    ]
    seen = set(todo)
    while todo:
        path = todo.pop()
        for dotted in _imports(path.read_bytes(), package):
            found = _module_file(root, dotted)
            if found is not None and found not in seen:
                seen.add(found)
                todo.append(found)
    return sorted(seen)


def _digest(root: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(root)).encode() + b"\0")
        data = path.read_bytes()
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _stats(root: Path, files: Iterable[Path]) -> dict[str, list[int]] | None:
    """Each file's size and modification time, or None when one is gone."""
    out: dict[str, list[int]] = {}
    for path in files:
        try:
            st = path.stat()
        except OSError:
            return None
        out[str(path.relative_to(root))] = [st.st_size, st.st_mtime_ns]
    return out


def _user_cache_root() -> Path:
    """numba's user-wide cache directory (what its ``AppDirs`` gives on this platform)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "numba"


def _mirror(cache_root: Path, directory: Path) -> Path:
    """Where numba puts a source directory's caches under a cache root."""
    subpath = os.path.dirname(os.path.abspath(directory / "x.py"))
    hashed = hashlib.sha1(subpath.encode()).hexdigest()
    return cache_root / f"{os.path.split(subpath)[-1]}_{hashed}"


def cache_dirs(root: Path) -> list[Path]:
    """Every directory where numba may keep caches of the package's kernels in
    this environment: under ``NUMBA_CACHE_DIR`` alone when it is set (numba
    then uses nothing else), else each source directory's ``__pycache__`` and
    its mirror in the user-wide cache (where numba goes when the tree is
    read-only)."""
    directories = sorted({p.parent for p in root.rglob("*.py") if "__pycache__" not in p.parts})
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return [_mirror(Path(chosen), d) for d in directories]
    user = _user_cache_root()
    return [c for d in directories for c in (d / "__pycache__", _mirror(user, d))]


def drop_cached_kernels(root: Path) -> int:
    """Delete every cached kernel of the package at ``root``; returns how many files."""
    dropped = 0
    for directory in cache_dirs(root):
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if entry.suffix in CACHE_SUFFIXES:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    dropped += 1
    return dropped


def _stamp_path(root: Path) -> Path | None:
    """The stamp beside the caches numba would write (in-tree when writable, else user-wide)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        chosen = _mirror(Path(os.environ["NUMBA_CACHE_DIR"]), root)
        with contextlib.suppress(OSError):
            chosen.mkdir(parents=True, exist_ok=True)
        return chosen / STAMP_NAME if os.access(chosen, os.W_OK) else None
    tree = root / "__pycache__"
    with contextlib.suppress(OSError):
        tree.mkdir(exist_ok=True)
    if os.access(tree, os.W_OK):
        return tree / STAMP_NAME
    user = _mirror(_user_cache_root(), root)
    with contextlib.suppress(OSError):
        user.mkdir(parents=True, exist_ok=True)
    return user / STAMP_NAME if os.access(user, os.W_OK) else None


def _read_stamp(path: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("format") == _FORMAT else None


def check_kernel_cache(root: Path) -> bool:
    """Drop the package's cached kernels when their sources changed since the stamp.

    Returns True when caches were dropped. Without a stamp (a first run, or
    caches older than this check) any cache present is dropped: nothing says
    which sources built it. Errors of the file system leave numba's caches as
    they are: the check must never stop the package from importing."""
    try:
        stamp_path = _stamp_path(root)
        if stamp_path is None:
            return False
        stamp = _read_stamp(stamp_path)
        if stamp is not None:
            recorded = stamp.get("files")
            if isinstance(recorded, dict) and recorded:
                now = _stats(root, (root / name for name in recorded))
                if now == recorded:
                    return False
        files = kernel_sources(root)
        digest = _digest(root, files)
        dropped = False
        if stamp is None or stamp.get("digest") != digest:
            dropped = drop_cached_kernels(root) > 0
        stats = _stats(root, files)
        if stats is None:
            return dropped
        record = {"format": _FORMAT, "digest": digest, "files": stats}
        tmp = stamp_path.with_name(f"{STAMP_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, stamp_path)
        return dropped
    except OSError:
        return False
