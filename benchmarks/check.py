"""Explorer benchmark: distinct states per second, and how the state count grows with the bound.

Run with ``make bench``. One core; figures are reported, never asserted.
"""

from __future__ import annotations

from kvmsev.check.actions import Bounds
from kvmsev.check.explore import explore
from kvmsev.host.config import HostConfig


def main() -> None:
    default = HostConfig(profile="lab")
    print(
        f"{'configuration':44} {'depth':>5} {'states':>8} {'transitions':>11} {'seconds':>8} {'states/s':>9}"
    )
    for depth in (6, 8, 10, 12, 14):
        r = explore(default, Bounds(depth=depth))
        print(
            f"{'lab (kvmsev check defaults)':44} {depth:>5} {r.states:>8} {r.transitions:>11} "
            f"{r.seconds:>8.2f} {r.states / r.seconds:>9,.0f}"
        )
    one_asid = HostConfig(profile="lab", bios=("sev_asid_count=3",))
    r = explore(one_asid, Bounds(depth=15))
    print(
        f"{'lab, one SEV ASID (finds the 5.13 hole)':44} {15:>5} {r.states:>8} {r.transitions:>11} "
        f"{r.seconds:>8.2f} {r.states / r.seconds:>9,.0f}"
    )


if __name__ == "__main__":
    main()
