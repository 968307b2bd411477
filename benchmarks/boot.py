"""Boot benchmarks: median time of boot + modprobe + rmmod on a small and a large host.

Run with ``make bench``. Figures are medians over repeated runs on one core; they are reported,
never asserted.
"""

from __future__ import annotations

import statistics
import time

from kvmsev.host.config import HostConfig, resolve
from kvmsev.host.host import Host

CASES = {
    "lab (2 CPUs, 4 ASIDs)": HostConfig(profile="lab"),
    "epyc-9654 (192 CPUs, 1006 ASIDs)": HostConfig(profile="epyc-9654"),
    "epyc-9754 v5.12 sev=1 (256 CPUs)": HostConfig(
        profile="epyc-9754", kernel="v5.12", params=("kvm_amd.sev=1",)
    ),
}


def _one(config: HostConfig) -> float:
    resolved = resolve(config)
    start = time.perf_counter()
    host = Host.boot(resolved)
    host.load_kvm_amd()
    host.unload_kvm_amd()
    return time.perf_counter() - start


def main(repeats: int = 200) -> None:
    print(f"{'host':40} {'median':>10} {'boots/s':>10}")
    for label, config in CASES.items():
        samples = [_one(config) for _ in range(repeats)]
        median = statistics.median(samples)
        print(f"{label:40} {median * 1e6:8.1f}us {1 / median:10.0f}")


if __name__ == "__main__":
    main()
