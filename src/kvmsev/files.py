"""Reading a file the user names (a firmware image, a kernel, an initrd), never more of it than
the caller can use.

Whatever the path turns out to be -- a regular file, ``/dev/zero``, a FIFO nobody writes to, a
directory, a symlink loop -- the answer is its bytes (or their SHA-256) or a ``ValueError``
whose message says why not, in words a one-line error can carry. The file is opened
non-blocking, so a FIFO without a writer reads as empty instead of hanging, and reading stops
one byte past the limit, so an endless device is refused rather than read to its end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator

CHUNK = 1 << 20


def _describe(exc: OSError) -> str:
    return f"cannot read: {exc.strerror or exc}"


@contextlib.contextmanager
def _opened(path: str) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(_describe(exc)) from None
    except ValueError:  # a NUL in the path
        raise ValueError("cannot read: the path holds a NUL byte") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _chunks(path: str, limit: int) -> Iterator[bytes]:
    """The file's bytes in pieces; ValueError once more than ``limit`` bytes have come."""
    seen = 0
    with _opened(path) as fd:
        while True:
            try:
                piece = os.read(fd, min(CHUNK, limit + 1 - seen))
            except OSError as exc:
                raise ValueError(_describe(exc)) from None
            if not piece:
                return
            seen += len(piece)
            if seen > limit:
                raise ValueError(f"larger than {_size(limit)}")
            yield piece


def _size(limit: int) -> str:
    return f"{limit >> 30} GiB" if limit >= 1 << 30 and not limit % (1 << 30) else f"{limit >> 20} MiB"


def read_bounded(path: str, limit: int) -> bytes:
    """The whole file, at most ``limit`` bytes of it (ValueError past that)."""
    return b"".join(_chunks(path, limit))


def sha256_bounded(path: str, limit: int) -> bytes:
    """SHA-256 of the file, read in pieces (for files too large to hold: an initrd), at most
    ``limit`` bytes (ValueError past that)."""
    running = hashlib.sha256()
    for piece in _chunks(path, limit):
        running.update(piece)
    return running.digest()
