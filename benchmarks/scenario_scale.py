"""How a scenario run's time per step grows with what the run has built up.

Run with ``make bench``. The runner checks every invariant after every step. Were a check to
walk every VM, cgroup or recorded event, a run of N steps would cost about N²: the seconds per
step would double with each doubling of N. The ratio printed is that growth (2.0: per-step cost
linear in what the run built; 1.0: a constant cost per step). Three series: plain VMs (the
invariants walk only VMs with SEV state), VMs each in a cgroup of its own (``misc_usage`` looks
only at cgroups in use), and a 5.13 cycle that breaks TLB isolation once every 20 steps (a
history invariant describes each breach once).
"""

from __future__ import annotations

import time
from typing import Any

from kvmsev.scenario import runner, schema

SIZES = (1000, 2000, 4000, 8000, 16000)


def _plain_vms(n: int) -> list[dict[str, Any]]:
    return [{"op": "vm_create", "vm": f"v{i}"} for i in range(n)]


def _vms_in_cgroups(n: int) -> list[dict[str, Any]]:
    groups = [{"op": "cgroup_create", "cgroup": f"/g{i}"} for i in range(n)]
    return groups + [{"op": "vm_create", "vm": f"v{i}", "cgroup": f"/g{i}"} for i in range(n)]


def _early_run_breaches(n: int) -> list[dict[str, Any]]:
    """``examples/early-run-lost-flush.yaml`` over fresh names, ``n / 20`` times: on 5.13 each
    cycle's last run enters a recycled ASID over a destroyed guest's TLB entries."""
    steps: list[dict[str, Any]] = []
    for i in range(n // 20):
        a, b, c = f"a{i}", f"b{i}", f"c{i}"
        steps += [{"op": "vm_create", "vm": a}, {"op": "sev_init", "vm": a}]
        steps += [{"op": op, "vm": a} for op in ("launch_start", "launch_measure", "launch_finish")]
        steps += [{"op": "vcpu_create", "vm": a}, {"op": "vcpu_run", "vm": a, "vcpu": 0, "cpu": 0}]
        steps += [{"op": "vm_destroy", "vm": a}]
        steps += [{"op": op, "vm": vm} for vm in (b, c) for op in ("vm_create", "sev_init")]
        steps += [{"op": op, "vm": c} for op in ("launch_start", "launch_measure", "vcpu_create")]
        steps += [{"op": "vcpu_run", "vm": c, "vcpu": 0, "cpu": 0}, {"op": "launch_finish", "vm": c}]
        steps += [{"op": "vcpu_run", "vm": c, "vcpu": 0, "cpu": 0}]
        steps += [{"op": "vm_destroy", "vm": b}, {"op": "vm_destroy", "vm": c}]
    return steps


SERIES = (
    ("vm_create", "v6.12", _plain_vms),
    ("cgroup_create + vm_create", "v6.12", _vms_in_cgroups),
    ("a TLB isolation breach every 20 steps", "v5.13", _early_run_breaches),
)


def seconds_per_step(steps: list[dict[str, Any]], kernel: str = "v6.12") -> float:
    scenario = schema.parse({"host": {"profile": "lab", "kernel": kernel}, "steps": steps})
    start = time.perf_counter()
    runner.run(scenario)
    return (time.perf_counter() - start) / len(steps)


def main() -> None:
    for label, kernel, build in SERIES:
        print(f"{label}: microseconds per step, and growth per doubling")
        previous = None
        for n in SIZES:
            steps = build(n)
            per_step = seconds_per_step(steps, kernel)
            growth = f"  x{per_step / previous:.2f}" if previous else ""
            print(f"  {len(steps):>5} steps: {per_step * 1e6:8.0f} us{growth}")
            previous = per_step


if __name__ == "__main__":
    main()
