"""Run ``kvmsev`` in-process on one input and judge the answer against the command line's contract.

The contract (README, "Commands"): every input gets an answer -- exit 0, or 1 where a command
reports a failed check -- or, for input the tool cannot act on, exactly one ``kvmsev: error:``
line on stderr, nothing on stdout and exit 2. Never a traceback, never a hang, never memory
exhausted on the way. :func:`run_cli` runs ``main(argv)`` the way a shell would see it -- stdout
strict UTF-8 and stderr with backslash escapes, as Python sets them up in a UTF-8 locale such as
en_US.UTF-8 -- under a time limit and a memory limit, and :func:`problems` lists every way the
outcome breaks the contract.

Running in-process instead of spawning ``kvmsev`` is what makes thousands of inputs a minute
possible; the limits are what keep one bad input from taking the fuzzer down with it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import kvmsev
from kvmsev.cli.main import main
from tests.fuzzing.strategies import Case, materialize

#: seconds one input may take before it counts as a hang
DEFAULT_TIMEOUT = 20.0
#: bytes of address space one input may add to the process before allocations fail (MemoryError)
DEFAULT_MEMORY = 2 << 30
#: exit codes ``main`` may return or raise through SystemExit (130: interrupted)
EXIT_CODES = (0, 1, 2, 130)
#: the exit codes the contract allows for an input that was not interrupted
ANSWERS = (0, 1, 2)
ERROR_PREFIX = "kvmsev: error:"
_SRC = Path(kvmsev.__file__).resolve().parent


class Hang(BaseException):
    """Raised into the running command when its time is up.

    A BaseException, so that the code under test cannot swallow it with ``except Exception``.
    """


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run produced: an exit code, or the exception that escaped (``code`` None)."""

    code: int | None
    stdout: str
    stderr: str
    exception: BaseException | None
    #: the escaped exception's traceback, formatted
    traceback: str = ""
    seconds: float = 0.0


class _Alarm:
    """The per-input timer: SIGALRM raises :class:`Hang` while a command runs, and again every
    second after that in case the code under test swallowed the first one."""

    def __init__(self) -> None:
        self.running = False
        self.timeout = DEFAULT_TIMEOUT

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.running:
            raise Hang(f"no answer within {self.timeout:g} s")


_ALARM = _Alarm()


def _address_space() -> int | None:
    """Bytes of address space this process maps now (Linux), None where that cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _limits(timeout: float, memory: int | None, watchdog: TextIO | None) -> Iterator[None]:
    """Arm the timer, cap the address space at what is mapped now plus ``memory``, and -- for a
    hang the interpreter cannot interrupt (a long C call) -- end the whole process after three
    times the timeout with every thread's stack on ``watchdog``; undo all of it on the way out."""
    old_handler = signal.signal(signal.SIGALRM, _ALARM)
    _ALARM.timeout = timeout
    if watchdog is not None:
        faulthandler.dump_traceback_later(timeout * 3 + 10, exit=True, file=watchdog)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _address_space() if memory is not None else None
    if mapped is not None and memory is not None:
        cap = mapped + memory
        for limit in old_limit:  # never looser than a limit the process already had
            if limit != resource.RLIM_INFINITY:
                cap = min(cap, limit)
        resource.setrlimit(resource.RLIMIT_AS, (cap, old_limit[1]))
    signal.setitimer(signal.ITIMER_REAL, timeout, 1.0)
    try:
        yield
    finally:
        _ALARM.running = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        if watchdog is not None:
            faulthandler.cancel_dump_traceback_later()
        if mapped is not None:
            resource.setrlimit(resource.RLIMIT_AS, old_limit)
        signal.signal(signal.SIGALRM, old_handler)


@contextlib.contextmanager
def _directory(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _streams() -> tuple[io.BytesIO, io.TextIOWrapper, io.BytesIO, io.TextIOWrapper]:
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace", write_through=True)
    return out_bytes, out, err_bytes, err


def run_cli(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory: int | None = DEFAULT_MEMORY,
    watchdog: TextIO | None = sys.__stderr__,
) -> Outcome:
    """``kvmsev ARGV`` in this process, in ``cwd``, with stdout and stderr captured.

    Any exception that escapes ``main`` is a crash and is returned, not raised: MemoryError (the
    address space is capped ``memory`` bytes above its size at the start), :class:`Hang` (after
    ``timeout`` seconds) and SystemExit with anything but 0, 1, 2 or 130 included.
    """
    out_bytes, out, err_bytes, err = _streams()
    code: int | None = None
    exception: BaseException | None = None
    start = time.perf_counter()
    try:
        with (
            _limits(timeout, memory, watchdog),
            _directory(cwd),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            _ALARM.running = True
            try:
                code = main(list(argv))
            finally:
                _ALARM.running = False
    except SystemExit as exc:
        if isinstance(exc.code, int) and not isinstance(exc.code, bool) and exc.code in EXIT_CODES:
            code = exc.code
        else:
            exception = exc
    except BaseException as exc:  # everything that escapes is the finding, whatever it is
        exception = exc
    seconds = time.perf_counter() - start
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        exception = TypeError(f"main returned {code!r}, not an exit code")
        code = None
    text = ""
    if exception is not None:
        text = "".join(traceback.format_exception(exception))
        with contextlib.suppress(RuntimeError):  # let go of what the failed run's frames held
            traceback.clear_frames(exception.__traceback__)
    for stream in (out, err):
        with contextlib.suppress(ValueError, UnicodeError):
            stream.flush()
    stdout = out_bytes.getvalue().decode("utf-8", "backslashreplace")
    stderr = err_bytes.getvalue().decode("utf-8", "backslashreplace")
    return Outcome(code, stdout, stderr, exception, text, seconds)


def run_case(
    case: Case,
    workdir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory: int | None = DEFAULT_MEMORY,
    watchdog: TextIO | None = sys.__stderr__,
) -> Outcome:
    """Write ``case`` into ``workdir`` and run its command there (limits as :func:`run_cli`)."""
    materialize(case, workdir)
    return run_cli(case.argv, cwd=workdir, timeout=timeout, memory=memory, watchdog=watchdog)


def problems(outcome: Outcome) -> list[str]:
    """Every way ``outcome`` breaks the contract (empty: it kept it)."""
    found: list[str] = []
    exc = outcome.exception
    if isinstance(exc, Hang):
        found.append(f"hang: {exc} (in {innermost_src_frame(exc)})")
    elif exc is not None:
        found.append(f"crash: {type(exc).__name__}: {str(exc)[:300]} (in {innermost_src_frame(exc)})")
    if outcome.code is not None and outcome.code not in ANSWERS:
        found.append(f"exit code {outcome.code}, expected 0, 1 or 2")
    if outcome.code == 2:
        lines = outcome.stderr.removesuffix("\n").split("\n")
        if len(lines) != 1 or not lines[0].startswith(ERROR_PREFIX):
            found.append(
                f"exit code 2 with {len(lines)} line(s) on stderr, "
                f"expected one starting {ERROR_PREFIX!r}: {outcome.stderr[:300]!r}"
            )
        if outcome.stdout:
            found.append(f"exit code 2 with output on stdout: {outcome.stdout[:200]!r}")
    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        if "Traceback" in text:
            found.append(f"a traceback on {name}")
    return found


def innermost_src_frame(exc: BaseException) -> str:
    """``kvmsev/probe/observe.py:25 in cpu_mask``: the deepest frame of the package's own code in
    ``exc``'s traceback -- where a fix belongs even when the exception came from a library."""
    innermost = None
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(frame.filename).resolve().relative_to(_SRC)
        except ValueError:
            continue
        innermost = f"kvmsev/{rel.as_posix()}:{frame.lineno} in {frame.name}"
    return innermost or "no kvmsev frame"


def failure_key(outcome: Outcome, found: Sequence[str]) -> str:
    """What tells failures apart: the exception type and the innermost frame of the package (for
    a hang, only the function: where a loop happens to be interrupted varies), else the kind of
    contract breach and the field the message names."""
    exc = outcome.exception
    if isinstance(exc, Hang):
        where = innermost_src_frame(exc)
        return f"Hang in {where.split(':')[0]} {where.rsplit(' in ', 1)[-1]}"
    if exc is not None:
        return f"{type(exc).__name__} at {innermost_src_frame(exc)}"
    first = outcome.stderr.removeprefix(ERROR_PREFIX).strip().split("\n")[0].split(":")[0][:40]
    first = first.encode("ascii", "backslashreplace").decode("ascii")
    kind = found[0].split(":")[0].split(" with ")[0] if found else "?"
    return f"contract: {kind} ({first})" if first else f"contract: {kind}"


def is_hang(outcome: Outcome) -> bool:
    return isinstance(outcome.exception, Hang)


def report(case: Case, outcome: Outcome, found: Sequence[str]) -> str:
    """A failure as a test prints it: the problems, the input, what came out."""
    parts = [
        "kvmsev broke its contract on this input:",
        *(f"  - {p}" for p in found),
        "",
        case.describe(),
        "",
        f"exit code {outcome.code}, {outcome.seconds:.2f} s",
    ]
    if outcome.stdout:
        parts += ["--- stdout ---", outcome.stdout[:2000]]
    if outcome.stderr:
        parts += ["--- stderr ---", outcome.stderr[:2000]]
    if outcome.traceback:
        parts += ["--- traceback ---", outcome.traceback[-6000:]]
    return "\n".join(parts)
