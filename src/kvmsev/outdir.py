"""Directories and files the tool writes: checked before any work, written whole or not at all.

A recorded host (``boot --export-root``, ``probe --capture``) is one tree: it is written into a
hidden sibling directory and renamed into place at the end, so a failure leaves nothing behind.
Counterexamples (``check --out``) are single files, each written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kvmsev.errors import InputError


def _writable_ancestor(path: Path, field: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory we may create entries in, and
    no component on the way may be a symbolic link to nothing (``mkdir`` would meet EEXIST there
    only after the work is done)."""
    full = path.absolute()
    link = next((p for p in (full, *full.parents) if p.is_symlink() and not p.exists()), None)
    if link is not None:
        raise InputError(field, f"cannot create {path}: {link} is a symbolic link to nothing")
    ancestor = next((p for p in full.parents if p.exists()), Path("/"))
    if not ancestor.is_dir():
        raise InputError(field, f"{ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(field, f"cannot create {path}: {ancestor} is not writable")
    # access() says yes to root everywhere, and some file systems (/proc, /sys) refuse new entries
    # whatever the mode bits: make and remove a trial directory to know before any work is done
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kvmsev-probe.", dir=ancestor))
    except OSError as exc:
        raise InputError(field, f"cannot create {path}: {exc.strerror or exc}") from None


def _overlaps(a: Path, b: Path) -> bool:
    ra, rb = a.resolve(), b.resolve()
    return ra == rb or rb in ra.parents or ra in rb.parents


def _refusing(field: str, text: str, check: Callable[[], Path]) -> Path:
    """Run a check on the file system; an OSError (a name too long, a loop of links) is the
    user's path that cannot be used, said in one line."""
    try:
        return check()
    except OSError as exc:
        raise InputError(field, f"{text[:200]}: {exc.strerror or exc}") from None
    except RuntimeError:  # pathlib's resolve() on a loop of symbolic links
        raise InputError(field, f"{text[:200]}: a loop of symbolic links") from None


def check_new_tree(text: str, field: str, inputs: Sequence[str] = ()) -> Path:
    """A directory the command will create: it must not exist yet or be empty, must be creatable,
    and must not overlap a directory the same command reads (``inputs``)."""
    return _refusing(field, text, lambda: _check_new_tree(text, field, inputs))


def _check_new_tree(text: str, field: str, inputs: Sequence[str]) -> Path:
    if not text:
        raise InputError(field, "an empty path names no directory")
    path = Path(text)
    for source in inputs:
        if _overlaps(path, Path(source)):
            raise InputError(field, f"{text} overlaps the directory read ({source})")
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InputError(field, f"{text} exists and is not a directory")
        if any(path.iterdir()):
            raise InputError(
                field, f"{text} is not empty (the tool writes a whole tree into a new directory)"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(field, f"{text} is not writable")
        return path
    _writable_ancestor(path, field)
    return path


def check_out_dir(text: str, field: str) -> Path:
    """A directory files are added to: an existing writable directory, or one that can be made."""
    return _refusing(field, text, lambda: _check_out_dir(text, field))


def _check_out_dir(text: str, field: str) -> Path:
    if not text:
        raise InputError(field, "an empty path names no directory")
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise InputError(field, f"{text} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(field, f"{text} is not writable")
        return path
    _writable_ancestor(path, field)
    return path


@contextmanager
def staged_tree(target: Path, field: str) -> Iterator[Path]:
    """Yield a hidden sibling directory to write into; on success it becomes ``target`` (which
    :func:`check_new_tree` found absent or empty), on any failure it is removed. Where the
    staging directory cannot be made (a file system that refuses new entries), ``field`` is
    named in the error."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise InputError(field, f"cannot create {target}: {exc.strerror or exc}") from None
    try:
        yield staging
        if target.is_dir():
            target.rmdir()  # empty: checked before the work began
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(path: Path, text: str, field: str) -> None:
    """Write ``path`` through a temporary name in the same directory, so a reader never sees it
    half-written; a file system that refuses (full, read-only) is reported against ``field``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InputError(field, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(field, f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
