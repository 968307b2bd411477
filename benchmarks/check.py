"""Explorer benchmark: distinct states per second, and how the state count grows with the bound.

Run with ``make bench``. One core; figures are reported, never asserted. The default host is
``kvmsev check``'s (:mod:`kvmsev.check.defaults`), explored until no new state appears; the lab
part's own four ASIDs show how the count grows with the depth bound when it does not end.
"""

from __future__ import annotations

import statistics

from kvmsev.check import defaults
from kvmsev.check.actions import Bounds
from kvmsev.check.explore import Result, explore
from kvmsev.host.config import HostConfig

HEADER = f"{'configuration':44} {'depth':>6} {'states':>8} {'transitions':>11} {'seconds':>8} {'states/s':>9}"


def line(name: str, r: Result) -> str:
    depth = f"{r.depth}{'*' if r.complete else ''}"
    return (
        f"{name:44} {depth:>6} {r.states:>8} {r.transitions:>11} {r.seconds:>8.2f} "
        f"{r.states / r.seconds:>9,.0f}"
    )


def main() -> None:
    default = HostConfig(profile=defaults.PROFILE, bios=defaults.BIOS)
    print(HEADER)
    rates = []
    for _ in range(3):
        r = explore(default, Bounds(depth=defaults.DEPTH))
        rates.append(r.states / r.seconds)
        print(line("default host (kvmsev check), v5.13", r))
    print(f"median: {statistics.median(rates):,.0f} states/s (* = complete: no new state at the next level)")
    print()
    for depth in (10, 20, 30, 40):
        print(line("default host, bounded", explore(default, Bounds(depth=depth))))
    lab = HostConfig(profile="lab")
    for depth in (8, 10, 12, 14, 16):
        print(line("lab, 4 ASIDs (does not end quickly)", explore(lab, Bounds(depth=depth))))


if __name__ == "__main__":
    main()
