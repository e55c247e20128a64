"""HVM2's IO driver: a program's ``IO/Call`` values performed, as ``hvm run-c`` does.

An IO program's ``@main`` reduces to a lambda-encoded constructor
``λt ((((t TAG) a0) a1) ...)``: ``IO/Done MAGIC value`` when it has finished,
or ``IO/Call MAGIC name argument continuation`` when it asks for an effect
(``MAGIC`` is the pair ``(13683217 16719857)``, ``0xD0CA11`` and ``0xFF1FF1``).
The driver loops as HVM2's C runtime does: normalise the net; read the
constructor at the root; for a call, read the function's name (a
lambda-encoded string), perform it, build its ``Result`` in the heap and boot
``(result ROOT) ~ continuation``, so the continuation's answer becomes the new
root; stop at anything else. The result is then printed as usual.

The functions are HVM2's, with its argument shapes and its encodings
(``Result/Ok = 0``, ``Result/Err = 1``; ``IOError/Type = 0``, ``/Name = 1``,
``/Inner = 2``; lists and strings are ``List/Nil = 0`` and ``List/Cons = 1``
constructors of u24 numbers):

* ``OPEN (name, mode)`` opens a file with C's ``fopen`` modes and answers its
  descriptor, 3 to 255 (0, 1 and 2 are stdin, stdout, stderr);
* ``READ (fd, n)`` answers up to ``n`` bytes, ``WRITE (fd, bytes)`` writes
  (each list element's low 8 bits), ``FLUSH fd``, ``SEEK (fd, (offset,
  whence))`` (whence 0 start, 1 current, 2 end), ``CLOSE fd``;
* ``GET_TIME *`` answers the monotonic clock's nanoseconds (its low 48 bits)
  as ``(high low)``, two u24 halves; ``SLEEP (high, low)`` sleeps that many.

An error answers ``Result/Err``: ``IOError/Inner`` with the errno (an i24) for
a failed system call, ``IOError/Type`` for an argument of the wrong shape,
``IOError/Name`` for a function this driver does not offer. HVM2's
``DL_OPEN``/``DL_CALL``/``DL_CLOSE`` (loading native code into the runtime) are
not offered: a program asking for them gets ``IOError/Name``. Closing 0, 1 or
2 flushes the stream and leaves it open (the process keeps its own streams).

Reading back a constructor expands the references it meets (``@IO/Call/tag``
and the like) the way HVM2 does, by booting ``ref ~ ROOT`` and normalising:
those expansions count as interactions. Only the CPU evaluator drives IO.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import numpy as np

from focusflow.rewrite import numbers
from focusflow.rewrite.cpu import CpuNet
from focusflow.rewrite.errors import HvmReadbackError
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import CON, ERA, FID_MASK, NONE, NUM, REF, VAR, pair, port
from focusflow.rewrite.show import follow

IO_MAGIC = (0xD0CA11, 0xFF1FF1)
IO_DONE, IO_CALL = 0, 1
RESULT_OK, RESULT_ERR = 0, 1
IO_ERR_TYPE, IO_ERR_NAME, IO_ERR_INNER = 0, 1, 2
LIST_NIL, LIST_CONS = 0, 1

#: Descriptors a program may hold open at once (3 to 255), as HVM2's table.
MAX_FILES = 256
#: The most arguments of one constructor read back (HVM2 reads 16).
MAX_ARGS = 16
#: The longest string or byte list read back from the net (a name, a write).
MAX_BYTES = 1 << 24
#: Expansions of one reference read back before giving up: ``@a = @b`` and
#: ``@b = @a`` expand to each other forever (HVM2's driver loops).
MAX_EXPANSIONS = 1 << 12

_ERA = port(ERA, 0)


def _u24(value: int) -> int:
    return port(NUM, int(numbers.new_u24(value)))


def _i24(value: int) -> int:
    return port(NUM, int(numbers.new_i24(value)))


#: The u24 number port of each byte value.
_BYTE_PORTS = np.array([_u24(b) for b in range(256)], dtype=np.uint64)


class _IoError(Exception):
    """An IO function's failure, answered to the program as ``Result/Err``."""

    def __init__(self, tag: int, errno_: int = 0) -> None:
        super().__init__(tag, errno_)
        self.tag = tag
        self.errno = errno_


@dataclass
class IoDriver:
    """Performs a program's IO calls on ``stdin``/``stdout``/``stderr`` and on
    the files it opens (relative paths from the working directory)."""

    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    stderr: BinaryIO = field(default_factory=lambda: sys.stderr.buffer)
    calls: int = 0
    _files: dict[int, BinaryIO] = field(default_factory=dict)

    # --- the loop ---------------------------------------------------------------
    def run(self, net: CpuNet) -> None:
        """Drive ``net`` (``@main`` booted) until its root is not an IO call."""
        try:
            while True:
                net.run()
                ctr = self._ctr(net, net.root)
                if ctr is None or ctr[0] != IO_CALL or len(ctr[1]) != 4:
                    return
                magic = ctr[1][0]
                if magic & 7 != CON:
                    return
                first, second = self._children(net, magic)
                if (first, second) != (_u24(IO_MAGIC[0]), _u24(IO_MAGIC[1])):
                    return
                _, name, argm, cont = ctr[1]
                self.calls += 1
                answer = self._call(net, self._text(net, name), argm)
                locs, _ = net.alloc(1, 0)
                net.node[locs[0]] = pair(answer, net.root)
                net.boot(port(CON, int(locs[0])), cont)
                net.subst[net.root_slot] = NONE
        finally:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def _call(self, net: CpuNet, name: str, argm: int) -> int:
        fn = _FUNCTIONS.get(name)
        try:
            if fn is None:
                raise _IoError(IO_ERR_NAME)
            return self._ok(net, fn(self, net, argm))
        except _IoError as exc:
            return self._err(net, exc)

    # --- reading the net ----------------------------------------------------------
    def _expand(self, net: CpuNet, p: int) -> int:
        """``p`` followed, a reference in it expanded (booted against the root
        and normalised, the root's link put back after)."""
        got = first = follow(net.subst, p)
        old = int(net.subst[net.root_slot])
        for _ in range(MAX_EXPANSIONS):
            if got & 7 != REF:
                net.subst[net.root_slot] = old
                return got
            net.boot(got, net.root)
            net.run()
            got = follow(net.subst, net.root)
        name = net.book.names[(first >> 3) & FID_MASK]
        raise HvmReadbackError(f"@{name} expands to a reference {MAX_EXPANSIONS} times over")

    @staticmethod
    def _children(net: CpuNet, p: int) -> tuple[int, int]:
        word = int(net.node[p >> 3])
        return word & 0xFFFFFFFF, word >> 32

    def _ctr(self, net: CpuNet, p: int) -> tuple[int, list[int]] | None:
        """``(tag, args)`` of the constructor ``λt ((((t TAG) a0) a1) ...)`` at
        ``p`` (each argument expanded), or None if ``p`` is not one."""
        lam = self._expand(net, p)
        if lam & 7 != CON:
            return None
        app = self._expand(net, self._children(net, lam)[0])
        if app & 7 != CON:
            return None
        first, rest = self._children(net, app)
        tag = self._expand(net, first)
        if tag & 7 != NUM:
            return None
        args: list[int] = []
        while True:
            app = self._expand(net, rest)
            if app & 7 != CON or len(args) == MAX_ARGS:
                break
            first, rest = self._children(net, app)
            args.append(self._expand(net, first))
        return int(numbers.get_u24(tag >> 3)), args

    def _tuple(self, net: CpuNet, p: int, size: int) -> list[int]:
        """The elements of the right-nested pair ``(e0 (e1 ... e_last))`` at
        ``p``; IOError/Type unless it has exactly ``size``."""
        items: list[int] = []
        while p & 7 == CON and len(items) + 1 < size:
            first, second = self._children(net, p)
            items.append(self._expand(net, first))
            p = self._expand(net, second)
        items.append(p)
        if len(items) != size:
            raise _IoError(IO_ERR_TYPE)
        return items

    def _bytes(self, net: CpuNet, p: int) -> bytes:
        """A lambda-encoded list of numbers, each element's low 8 bits, read
        until its first cell that is not a ``List/Cons`` of a number."""
        out = bytearray()
        while len(out) < MAX_BYTES:
            ctr = self._ctr(net, p)
            if ctr is None or ctr[0] != LIST_CONS or len(ctr[1]) != 2 or ctr[1][0] & 7 != NUM:
                break
            out.append(int(numbers.get_u24(ctr[1][0] >> 3)) & 0xFF)
            p = ctr[1][1]
        return bytes(out)

    def _text(self, net: CpuNet, p: int) -> str:
        return self._bytes(net, p).decode("latin-1")

    @staticmethod
    def _number(p: int, kind: str = "u24") -> int:
        if p & 7 != NUM:
            raise _IoError(IO_ERR_TYPE)
        word = p >> 3
        return int(numbers.get_i24(word) if kind == "i24" else numbers.get_u24(word))

    # --- building answers -----------------------------------------------------------
    @staticmethod
    def _lam(net: CpuNet, tag: int, args: list[int]) -> int:
        """The constructor ``λt ((((t tag) a0) ...)``: nodes ``(chain x) ... ``."""
        locs, var = net.alloc(2 + len(args), 1)
        v = port(VAR, int(var[0]))
        tail = v
        for i in range(len(args) - 1, -1, -1):
            net.node[locs[2 + i]] = pair(args[i], tail)
            tail = port(CON, int(locs[2 + i]))
        net.node[locs[0]] = pair(_u24(tag), tail)
        net.node[locs[1]] = pair(port(CON, int(locs[0])), v)
        return port(CON, int(locs[1]))

    def _ok(self, net: CpuNet, value: int) -> int:
        return self._lam(net, RESULT_OK, [value])

    def _err(self, net: CpuNet, exc: _IoError) -> int:
        args = [_i24(exc.errno)] if exc.tag == IO_ERR_INNER else []
        return self._lam(net, RESULT_ERR, [self._lam(net, exc.tag, args)])

    @staticmethod
    def inject_bytes(net: CpuNet, data: bytes) -> int:
        """A lambda-encoded list of ``data``'s bytes as u24 numbers, built in
        one pass: Nil is 2 nodes and a variable, each Cons 4 and one."""
        n = len(data)
        locs, var = net.alloc(2 + 4 * n, 1 + n)
        nv = port(VAR, int(var[0]))
        net.node[locs[0]] = pair(_u24(LIST_NIL), nv)
        net.node[locs[1]] = pair(port(CON, int(locs[0])), nv)
        if n == 0:
            return port(CON, int(locs[1]))
        cells = locs[2:].reshape(n, 4).astype(np.uint64)
        v = (var[1:].astype(np.uint64) << np.uint64(3)) | np.uint64(VAR)
        con = np.uint64(CON)
        three = np.uint64(3)
        heads = _BYTE_PORTS[np.frombuffer(data, dtype=np.uint8)]
        tails = np.empty(n, dtype=np.uint64)
        tails[:-1] = (cells[1:, 3] << three) | con
        tails[-1] = port(CON, int(locs[1]))
        shift = np.uint64(32)
        net.node[cells[:, 0].astype(np.int64)] = tails | (v << shift)
        net.node[cells[:, 1].astype(np.int64)] = heads | (((cells[:, 0] << three) | con) << shift)
        net.node[cells[:, 2].astype(np.int64)] = np.uint64(_u24(LIST_CONS)) | (
            ((cells[:, 1] << three) | con) << shift
        )
        net.node[cells[:, 3].astype(np.int64)] = ((cells[:, 2] << three) | con) | (v << shift)
        return port(CON, int(cells[0, 3]))

    # --- the functions ------------------------------------------------------------------
    def _file(self, p: int) -> BinaryIO:
        fd = self._number(p) if p & 7 == NUM else -1
        std = {0: self.stdin, 1: self.stdout, 2: self.stderr}
        f = std[fd] if fd in std else self._files.get(fd)
        if f is None:
            raise _IoError(IO_ERR_INNER, errno.EBADF)
        return f

    def _open(self, net: CpuNet, argm: int) -> int:
        name_p, mode_p = self._tuple(net, argm, 2)
        name, mode = self._bytes(net, name_p), self._text(net, mode_p)
        fd = next((fd for fd in range(3, MAX_FILES) if fd not in self._files), None)
        if fd is None:
            raise _IoError(IO_ERR_INNER, errno.EMFILE)
        flags = _MODES.get(mode.replace("b", ""))
        if flags is None or not name or b"\0" in name:
            raise _IoError(IO_ERR_INNER, errno.EINVAL if flags is None else errno.ENOENT)
        try:
            f = cast(BinaryIO, os.fdopen(os.open(name, flags[0], 0o666), flags[1] + "b"))
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        self._files[fd] = f
        return _u24(fd)

    def _read(self, net: CpuNet, argm: int) -> int:
        fd_p, n_p = self._tuple(net, argm, 2)
        f, n = self._file(fd_p), self._number(n_p)
        try:
            data = f.read(n) or b""
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        return self.inject_bytes(net, data)

    def _write(self, net: CpuNet, argm: int) -> int:
        fd_p, bytes_p = self._tuple(net, argm, 2)
        data = self._bytes(net, bytes_p)
        f = self._file(fd_p)
        try:
            f.write(data)
            if f in (self.stdout, self.stderr) and b"\n" in data:
                f.flush()  # line-buffered, as HVM2 sets its streams
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        return _ERA

    def _flush(self, net: CpuNet, argm: int) -> int:
        try:
            self._file(argm).flush()
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        return _ERA

    def _close(self, net: CpuNet, argm: int) -> int:
        f = self._file(argm)
        fd = self._number(argm)
        try:
            if fd < 3:
                f.flush()
            else:
                del self._files[fd]
                f.close()
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        return _ERA

    def _seek(self, net: CpuNet, argm: int) -> int:
        fd_p, offset_p, whence_p = self._tuple(net, argm, 3)
        f = self._file(fd_p)
        offset, whence = self._number(offset_p, "i24"), self._number(whence_p, "i24")
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise _IoError(IO_ERR_TYPE)
        try:
            f.seek(offset, whence)
        except OSError as exc:
            raise _IoError(IO_ERR_INNER, exc.errno or errno.EIO) from None
        return _ERA

    def _get_time(self, net: CpuNet, argm: int) -> int:
        ns = time.monotonic_ns()
        locs, _ = net.alloc(1, 0)
        net.node[locs[0]] = pair(_u24((ns >> 24) & 0xFFFFFF), _u24(ns & 0xFFFFFF))
        return port(CON, int(locs[0]))

    def _sleep(self, net: CpuNet, argm: int) -> int:
        high_p, low_p = self._tuple(net, argm, 2)
        ns = (self._number(high_p) << 24) | self._number(low_p)
        time.sleep(ns / 1e9)
        return _ERA


#: ``fopen`` modes as ``os.open`` flags and the ``open`` mode of the stream.
_MODES = {
    "r": (os.O_RDONLY, "r"),
    "w": (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "w"),
    "a": (os.O_WRONLY | os.O_CREAT | os.O_APPEND, "a"),
    "r+": (os.O_RDWR, "r+"),
    "w+": (os.O_RDWR | os.O_CREAT | os.O_TRUNC, "w+"),
    "a+": (os.O_RDWR | os.O_CREAT | os.O_APPEND, "a+"),
}

_FUNCTIONS = {
    "READ": IoDriver._read,
    "OPEN": IoDriver._open,
    "CLOSE": IoDriver._close,
    "FLUSH": IoDriver._flush,
    "WRITE": IoDriver._write,
    "SEEK": IoDriver._seek,
    "GET_TIME": IoDriver._get_time,
    "SLEEP": IoDriver._sleep,
}


def run_io(book: Book, nodes: int, vars_: int, threads: int = 1,
           driver: IoDriver | None = None,
           limits: Limits = UNLIMITED) -> tuple[CpuNet, IoDriver]:  # fmt: skip
    """Run ``@main`` of ``book`` with its IO calls performed by ``driver``,
    within ``limits`` over all its normalisations."""
    driver = driver or IoDriver()
    net = CpuNet(book, nodes, vars_, threads, limits)
    net.boot(REF, net.root)
    driver.run(net)
    return net, driver
