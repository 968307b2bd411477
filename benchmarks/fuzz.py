"""``make fuzz``: the robustness strategies on every core, for as many inputs or seconds as asked.

    make fuzz                            # 20,000 inputs
    make fuzz FUZZ_INPUTS=200000
    make fuzz FUZZ_SECONDS=600           # ten minutes; with FUZZ_INPUTS too, whichever ends first
    python -m benchmarks.fuzz --help     # workers, limits, output directory, seed

``tests/test_robustness.py`` runs a small sample of the same four input families with every
``make test``; this runs them long enough to find the rare failures. Each worker process drives
Hypothesis (generate phase only, no example database, a seed of its own) over the families, each
example picking one, and records a failing input instead of raising it, so that one crash does
not end the run.

Failures are told apart by exception type and innermost frame of the package
(:func:`tests.fuzzing.harness.failure_key`). The smallest input of each class goes to
``fuzz-crashes/<class>/``: ``README.txt`` (what broke, the input), ``traceback.txt``,
``output.txt``, and ``work/`` with ``replay.sh`` to run the command again where it ran.

A hang is an input that got no answer within the time limit (20 s); one the interpreter could
not even interrupt ends its worker after three times that, which is then replaced. The exit
status is 1 when any input crashed or hung.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import pickle
import queue
import random
import re
import shlex
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from pathlib import Path
from typing import TextIO

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from tests.fuzzing.harness import DEFAULT_MEMORY, DEFAULT_TIMEOUT, failure_key, is_hang, problems, run_case
from tests.fuzzing.strategies import FAMILIES, STRATEGIES, Case, Family, materialize, remove

DEFAULT_INPUTS = 20_000
DEFAULT_OUT = "fuzz-crashes"
#: examples per Hypothesis run; each run starts again from the simplest example, so not too few
CHUNK = 500
#: the first line of every README this script writes: what it may delete at the next run
MARKER = "kvmsev fuzz failure"
PROGRESS_EVERY = 15.0


@dataclass(frozen=True, slots=True)
class Failure:
    """One failing input, as a worker reports it."""

    key: str
    hang: bool
    case: Case
    problems: tuple[str, ...]
    traceback: str
    code: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclass
class FailureClass:
    """The smallest input that failed this way, and where it was written."""

    smallest: Failure
    families: set[str] = field(default_factory=set)
    directory: Path | None = None


@dataclass(frozen=True)
class Shared:
    """What workers and the parent share: the input budget and the counters."""

    claimed: Synchronized[int]
    budget: int
    deadline: float
    #: inputs done, per worker slot and family
    counts: SynchronizedArray[int]
    crashes: Synchronized[int]
    hangs: Synchronized[int]
    #: per worker slot: when its current input started (time.time()), 0 when idle
    started: SynchronizedArray[float]

    def claim(self) -> bool:
        """Take one input from the budget; False once the inputs or the time are used up."""
        if self.deadline and time.time() >= self.deadline:
            return False
        with self.claimed.get_lock():
            if self.budget and self.claimed.value >= self.budget:
                return False
            self.claimed.value += 1
        return True

    def done(self, slot: int, family: Family) -> None:
        with self.counts.get_lock():
            self.counts[slot * len(FAMILIES) + FAMILIES.index(family)] += 1

    def family_counts(self) -> dict[Family, int]:
        with self.counts.get_lock():
            values = self.counts[:]
        return {f: sum(values[i :: len(FAMILIES)]) for i, f in enumerate(FAMILIES)}


class _Stop(Exception):
    """Raised inside a Hypothesis run to end it once the budget is used up."""


def _drive(strategy: st.SearchStrategy[Case], seed: int, body: Callable[[Case], None]) -> None:
    """Up to :data:`CHUNK` examples of ``strategy`` through ``body``: no shrinking, no database."""

    @settings(
        max_examples=CHUNK,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @hypothesis.seed(seed)
    @given(strategy)
    def drive(case: Case) -> None:
        body(case)

    drive()


def _work(
    slot: int,
    seed: int,
    shared: Shared,
    results: multiprocessing.Queue[Failure | str],
    scratch: Path,
    families: Sequence[Family],
    timeout: float,
    memory: int,
) -> None:
    """A worker: Hypothesis runs, one after the other, until the budget is used up."""
    workdir = scratch / f"work-{slot}"
    inflight = scratch / f"inflight-{slot}.pickle"
    stacks: TextIO = (scratch / f"stacks-{slot}.txt").open("w")
    reported: dict[str, int] = {}

    def one(case: Case) -> None:
        if not shared.claim():
            raise _Stop
        inflight.write_bytes(pickle.dumps(case))
        shared.started[slot] = time.time()
        outcome = run_case(case, workdir, timeout=timeout, memory=memory, watchdog=stacks)
        shared.started[slot] = 0.0
        shared.done(slot, case.family)
        found = problems(outcome)
        if not found:
            return
        hang = is_hang(outcome)
        counter = shared.hangs if hang else shared.crashes
        with counter.get_lock():
            counter.value += 1
        key = failure_key(outcome, found)
        results.put(key)  # one tick per failing input; the input itself only when it is smaller
        if key in reported and reported[key] <= case.size():
            return
        reported[key] = case.size()
        results.put(
            Failure(
                key,
                hang,
                case,
                tuple(found),
                outcome.traceback,
                outcome.code,
                outcome.stdout[-4000:],
                outcome.stderr[-4000:],
                outcome.seconds,
            )
        )

    # every example picks its family, so that any number of inputs covers them evenly
    mixed = st.sampled_from(list(families)).flatmap(STRATEGIES.__getitem__)
    for round_ in range(sys.maxsize):
        try:
            _drive(mixed, seed + round_, one)
        except _Stop:
            return
        except Exception:  # a bug of the fuzzer's own (a strategy, the scratch directory): say so, go on
            shared.started[slot] = 0.0
            print(
                f"fuzz worker {slot}: error in the fuzzer itself\n{traceback.format_exc()}", file=sys.stderr
            )


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", key.replace("kvmsev/", "").replace(".py", "")).strip("-")[:100]


def _clear(out: Path) -> None:
    """Remove what an earlier run wrote to ``out`` (only directories with this script's README)."""
    if not out.is_dir():
        return
    for child in out.iterdir():
        readme = child / "README.txt"
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if readme.is_file() and readme.read_text().startswith(MARKER):
                remove(child)


def _write(out: Path, failure_class: FailureClass) -> Path:
    """The smallest failing input of a class as a directory to replay it in."""
    f = failure_class.smallest
    directory = failure_class.directory or out / _slug(f.key)
    remove(directory)
    directory.mkdir(parents=True)
    materialize(f.case, directory / "work", reuse=False)
    replay = directory / "replay.sh"
    replay.write_text(
        "#!/bin/sh\n# the failing command, in the directory it ran in\n"
        f'cd "$(dirname "$0")/work" && exec kvmsev {shlex.join(f.case.argv)}\n',
        errors="surrogateescape",
    )
    replay.chmod(0o755)
    kind = "hang" if f.hang else "crash"
    (directory / "README.txt").write_text(
        f"{MARKER}: {kind}\n{f.key}\n\n"
        + "".join(f"- {p}\n" for p in f.problems)
        + f"\nseen in: {', '.join(sorted(failure_class.families))}"
        + "\nthe smallest input (replay: sh replay.sh, or the command below inside work/):\n\n"
        + f.case.describe()
        + "\n",
        errors="backslashreplace",
    )
    (directory / "traceback.txt").write_text(f.traceback or "(no traceback)\n", errors="backslashreplace")
    (directory / "output.txt").write_text(
        f"exit code {f.code}, {f.seconds:.2f} s\n"
        f"--- stdout (end) ---\n{f.stdout}\n--- stderr (end) ---\n{f.stderr}\n",
        errors="backslashreplace",
    )
    return directory


def _dead_worker(scratch: Path, slot: int, exitcode: int | None, timeout: float) -> Failure | None:
    """The input a worker died on, as a failure: an uninterruptible hang when faulthandler
    dumped its stacks, else the signal or exit status that ended it."""
    try:
        case: Case = pickle.loads((scratch / f"inflight-{slot}.pickle").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    stacks = (scratch / f"stacks-{slot}.txt").read_text(errors="replace")
    frames = re.findall(r'File "([^"]*/kvmsev/[^"]*)", line (\d+) in (\S+)', stacks)
    where = f"kvmsev/{frames[0][0].split('/kvmsev/', 1)[1]} {frames[0][2]}" if frames else "no kvmsev frame"
    if stacks.strip():
        key = f"Hang (not interruptible) in {where}"
        problem = (
            f"hang: no answer within {timeout * 3 + 10:g} s and the interpreter could not be interrupted"
        )
        return Failure(key, True, case, (problem,), stacks, None, "", "", 0.0)
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit status {exitcode}"
    guess = " (the kernel's OOM killer?)" if exitcode == -9 else ""
    problem = f"crash: the worker process died ({how}){guess}"
    return Failure(f"worker died ({how})", False, case, (problem,), "", None, "", "", 0.0)


def _options(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    env_inputs, env_seconds = os.environ.get("FUZZ_INPUTS"), os.environ.get("FUZZ_SECONDS")
    p.add_argument("--inputs", type=int, default=int(env_inputs) if env_inputs else None, help="stop after N")
    p.add_argument(
        "--seconds", type=float, default=float(env_seconds) if env_seconds else None, help="stop after S"
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"where failing inputs go (default {DEFAULT_OUT}/)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random; printed)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per input")
    p.add_argument("--memory-mib", type=int, default=DEFAULT_MEMORY >> 20, help="MiB per input")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of the families")
    args = p.parse_args(argv)
    if args.inputs is None and args.seconds is None:
        args.inputs = DEFAULT_INPUTS
    unknown = set(args.families.split(",")) - set(FAMILIES)
    if unknown:
        p.error(f"unknown families {sorted(unknown)} (known: {', '.join(FAMILIES)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _options(argv)
    out = Path(args.out)
    _clear(out)
    scratch = Path(tempfile.mkdtemp(prefix="kvmsev-fuzz-"))
    try:
        return _fuzz(args, out, scratch)
    finally:
        remove(scratch)


def _fuzz(args: argparse.Namespace, out: Path, scratch: Path) -> int:
    """Run the workers, collect their failures, print the summary; the exit status."""
    families: list[Family] = [f for f in FAMILIES if f in args.families.split(",")]
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    ctx: ForkContext | SpawnContext
    if "fork" in multiprocessing.get_all_start_methods():  # workers start at once, imports done
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("spawn")
    shared = Shared(
        claimed=ctx.Value("q", 0),
        budget=args.inputs or 0,
        deadline=time.time() + args.seconds if args.seconds else 0.0,
        counts=ctx.Array("q", args.workers * len(FAMILIES)),
        crashes=ctx.Value("q", 0),
        hangs=ctx.Value("q", 0),
        started=ctx.Array("d", args.workers),
    )
    results: multiprocessing.Queue[Failure | str] = ctx.Queue()
    classes: dict[str, FailureClass] = {}
    tally: Counter[str] = Counter()
    limits = ([f"{args.inputs:,} inputs"] if args.inputs else []) + (
        [f"{args.seconds:g} s"] if args.seconds else []
    )
    budget = " or ".join(limits)
    print(f"kvmsev fuzz: {budget} on {args.workers} workers, seed {seed}, failures to {out}/", flush=True)

    def record(message: Failure | str) -> None:
        if isinstance(message, str):
            tally[message] += 1
            return
        failure = message
        entry = classes.get(failure.key)
        if entry is None:
            entry = classes[failure.key] = FailureClass(failure)
            kind = "hang" if failure.hang else "crash"
            print(f"  new {kind}: {failure.key}", flush=True)
        elif failure.case.size() >= entry.smallest.case.size():
            entry.families.add(failure.case.family)
            return
        entry.smallest = failure
        entry.families.add(failure.case.family)
        entry.directory = _write(out, entry)

    generation = 0

    def spawn(slot: int) -> BaseProcess:
        nonlocal generation
        generation += 1
        process = ctx.Process(
            target=_work,
            args=(
                slot,
                seed + generation * 1_000_003,
                shared,
                results,
                scratch,
                families,
                args.timeout,
                args.memory_mib << 20,
            ),
            daemon=True,
        )
        process.start()
        return process

    start = time.time()
    workers = {slot: spawn(slot) for slot in range(args.workers)}
    last_progress = start
    interrupted = False
    try:
        while workers:
            with contextlib.suppress(queue.Empty):
                record(results.get(timeout=0.5))
            for slot, process in list(workers.items()):
                began = shared.started[slot]
                if process.is_alive():
                    if began and time.time() - began > args.timeout * 3 + 30:
                        process.kill()  # faulthandler did not end it: stuck beyond recovery
                    continue
                process.join()
                del workers[slot]
                if began or process.exitcode != 0:
                    shared.started[slot] = 0.0
                    failure = _dead_worker(scratch, slot, process.exitcode, args.timeout)
                    if failure is not None:
                        shared.done(slot, failure.case.family)
                        counter = shared.hangs if failure.hang else shared.crashes
                        with counter.get_lock():
                            counter.value += 1
                        record(failure.key)
                        record(failure)
                    workers[slot] = spawn(slot)
            if time.time() - last_progress >= PROGRESS_EVERY:
                last_progress = time.time()
                done = sum(shared.family_counts().values())
                print(
                    f"  {done:,} inputs, {done / (last_progress - start):,.0f}/s, "
                    f"crashes {shared.crashes.value:,}, hangs {shared.hangs.value:,}, {len(classes)} classes",
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        for process in workers.values():
            process.terminate()
    while True:
        try:
            record(results.get(timeout=0.2))
        except (queue.Empty, EOFError, OSError):
            break
    elapsed = time.time() - start
    return _summary(shared, classes, tally, out, elapsed, interrupted)


def _summary(
    shared: Shared,
    classes: dict[str, FailureClass],
    tally: Counter[str],
    out: Path,
    elapsed: float,
    interrupted: bool,
) -> int:
    counts = shared.family_counts()
    total = sum(counts.values())
    print(f"\n{total:,} inputs in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.1f} inputs/s)")
    for family, n in counts.items():
        print(f"  {family:20} {n:>9,}")
    if classes:
        print(f"\n{len(classes)} kind(s) of failure; the smallest input of each is in {out}/:")
        for key, entry in sorted(classes.items(), key=lambda kv: (kv[1].smallest.hang, kv[0])):
            kind = "hang " if entry.smallest.hang else "crash"
            where = entry.directory.name if entry.directory else "?"
            families = ", ".join(sorted(entry.families))
            print(f"  {kind} {key}\n        {tally[key]:,} input(s) ({families}) -> {where}/")
    crashes, hangs = shared.crashes.value, shared.hangs.value
    print(f"inputs {total}, crashes {crashes}, hangs {hangs}", flush=True)
    if interrupted and not (crashes or hangs):
        return 130
    return 1 if crashes or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
