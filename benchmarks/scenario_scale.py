"""How a scenario run's time grows with the VMs it keeps alive.

Run with ``make bench``. The runner checks every invariant after every step, and most
invariants walk every VM, so a run of N ``vm_create`` steps costs about N²: the seconds per step
double with each doubling of N. The ratio printed is that growth (2.0: per-step cost linear in the
VMs alive; 1.0 would be a constant cost per step). A second series interleaves cgroups, whose
``misc_usage`` check used to multiply cgroups by VMs.
"""

from __future__ import annotations

import time
from typing import Any

from kvmsev.scenario import runner, schema

SIZES = (500, 1000, 2000, 4000)


def _plain_vms(n: int) -> list[dict[str, Any]]:
    return [{"op": "vm_create", "vm": f"v{i}"} for i in range(n)]


def _vms_in_cgroups(n: int) -> list[dict[str, Any]]:
    groups = [{"op": "cgroup_create", "cgroup": f"/g{i}"} for i in range(n)]
    return groups + [{"op": "vm_create", "vm": f"v{i}", "cgroup": f"/g{i}"} for i in range(n)]


def seconds_per_step(steps: list[dict[str, Any]]) -> float:
    scenario = schema.parse({"host": {"profile": "lab", "kernel": "v6.12"}, "steps": steps})
    start = time.perf_counter()
    runner.run(scenario)
    return (time.perf_counter() - start) / len(steps)


def main() -> None:
    for label, build in (("vm_create", _plain_vms), ("cgroup_create + vm_create", _vms_in_cgroups)):
        print(f"{label}: microseconds per step, and growth per doubling")
        previous = None
        for n in SIZES:
            per_step = seconds_per_step(build(n))
            growth = f"  x{per_step / previous:.2f}" if previous else ""
            print(f"  {n:>5} VMs: {per_step * 1e6:8.0f} us{growth}")
            previous = per_step


if __name__ == "__main__":
    main()
