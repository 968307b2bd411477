"""Breadth-first exploration of a modeled host's reachable states.

From a booted host with ``kvm_amd`` loaded, every enabled move (:mod:`kvmsev.check.actions`) is
applied to a copy of every frontier state; states are deduplicated by their canonical
fingerprint, every new state is checked against every invariant, and a state that breaks one is
not expanded further (invariants already broken by the boot itself, such as a CPUID leaf
advertising too much, do not stop the search). Because the search is breadth-first, the first
path found to each broken invariant is a shortest one. "Sometimes" properties record whether
the interesting things happened at all (an allocation found its range full; freed ASIDs were
recycled), so that a pass means the explorer really reached them.

The search ends when a level brings no new state (``complete``: the outcome covers every
reachable state), at the depth bound, or once ``bounds.max_states`` states are known.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kvmsev.check.actions import Action, Bounds, apply, enumerate_actions
from kvmsev.check.invariants import ALL, BY_NAME, violations
from kvmsev.check.state import Interner, clone, clone_for, fingerprint
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host

SOMETIMES = {
    "pool_filled": "Some allocation found its ASID range full.",
    "asid_recycled": "Some allocation recycled freed ASIDs (WBINVD + DF_FLUSH).",
}


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    detail: str
    path: tuple[Action, ...]


@dataclass(slots=True)
class Result:
    config: HostConfig
    bounds: Bounds
    #: the invariants checked (all unless the search left some out)
    invariants: tuple[str, ...] = ALL
    states: int = 0
    transitions: int = 0
    #: levels explored; when complete, the greatest distance of any state from the boot
    depth: int = 0
    complete: bool = False
    #: what ended an incomplete search: "depth" or "max_states" (None when complete)
    limit: str | None = None
    seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    sometimes: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(SOMETIMES, False))

    @property
    def holds(self) -> bool:
        return not self.violations


def boot(config: HostConfig) -> Host:
    host = Host.boot(config)
    host.env.trace.on = False
    host.load_kvm_amd()
    return host


def explore(
    config: HostConfig,
    bounds: Bounds,
    progress: Callable[[int, int, int], None] | None = None,
    fast: bool = True,
    invariants: Sequence[str] = ALL,
) -> Result:
    """Explore up to ``bounds.depth`` moves and ``bounds.max_states`` states, checking
    ``invariants`` in every state; ``progress(depth, states, frontier)`` after each level. A
    state that breaks only invariants left out is expanded like any other.

    ``fast`` copies only what each move can write (:func:`~kvmsev.check.state.clone_for`);
    False copies the whole state every time (the reference the tests compare against).
    """
    # Model states hold no reference cycles, so reference counting frees them; the cyclic
    # collector would only rescan the growing frontier over and over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _explore(config, bounds, progress, fast, tuple(invariants))
    finally:
        if collecting:
            gc.enable()


def _explore(
    config: HostConfig,
    bounds: Bounds,
    progress: Callable[[int, int, int], None] | None,
    fast: bool,
    invariants: tuple[str, ...],
) -> Result:
    start = time.perf_counter()
    result = Result(config, bounds, invariants=invariants)
    root = boot(config)
    found: dict[str, Violation] = {}

    def record(host: Host, path: tuple[Action, ...]) -> bool:
        """Note new violations; True when ``host`` breaks something the boot did not."""
        broken = violations(host, invariants)
        for name, details in broken.items():
            if name not in found:
                found[name] = Violation(name, details[0], path)
        return any(name not in at_boot for name in broken)

    at_boot: set[str] = set()
    record(root, ())
    at_boot = set(found)
    intern = Interner()
    seen = {fingerprint(root, intern)}
    result.states = 1
    frontier: list[tuple[Host, tuple[Action, ...]]] = [(root, ())]
    budget = bounds.max_states
    over_budget = False
    depth = deepest = 0
    while frontier and depth < bounds.depth and not over_budget:
        depth += 1
        known = len(seen)
        next_frontier: list[tuple[Host, tuple[Action, ...]]] = []
        for host, path in frontier:
            if budget is not None and len(seen) >= budget:
                over_budget = True
                break
            exhausted, recycles = host.env.exhausted, host.env.recycles
            for action in enumerate_actions(host, bounds):
                child = clone_for(host, action.op, dict(action.args)) if fast else clone(host)
                apply(child, action)
                result.transitions += 1
                if child.env.exhausted != exhausted:
                    result.sometimes["pool_filled"] = True
                if child.env.recycles != recycles:
                    result.sometimes["asid_recycled"] = True
                before = len(seen)
                seen.add(fingerprint(child, intern))  # one hash of the key, not two
                if len(seen) == before:
                    continue
                child_path = (*path, action)
                if not record(child, child_path):
                    next_frontier.append((child, child_path))
        frontier = next_frontier
        result.states = len(seen)
        if result.states > known:
            deepest = depth
        if progress is not None:
            progress(depth, result.states, len(frontier))
    result.complete = not frontier and not over_budget
    result.depth = deepest if result.complete else depth
    if not result.complete:
        result.limit = "max_states" if over_budget else "depth"
    result.violations = sorted(found.values(), key=lambda v: (len(v.path), v.invariant))
    result.seconds = time.perf_counter() - start
    return result


def statement(name: str) -> str:
    return BY_NAME[name].statement
