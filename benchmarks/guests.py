"""Guest-path benchmarks: ASID allocate+free pairs and whole VM lifecycles per second.

Run with ``make bench``. Trace recording is off (``trace.on = False``), as the simulator runs.
The pair benchmark must not slow down with more ASIDs or CPUs: the ratio between the two hosts
is printed and should stay under 2.
"""

from __future__ import annotations

import time

from kvmsev.host import launch_ops, ops
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.kvm.asid import sev_asid_free, sev_asid_new
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev_cmd import SevCmd


def _host(config: HostConfig) -> Host:
    host = Host.boot(config)
    host.load_kvm_amd()
    host.env.trace.on = False
    return host


def asid_pairs_per_second(config: HostConfig, seconds: float = 1.0) -> float:
    host = _host(config)
    kvm = host.kvm
    assert kvm is not None
    vm = Vm("bench", None, host.env.misc.root)  # type: ignore[arg-type]
    env = host.env
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            vm.asid = sev_asid_new(env, kvm, vm)
            sev_asid_free(env, kvm, vm)
        n += 1000
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def lifecycles_per_second(config: HostConfig, seconds: float = 1.0) -> float:
    host = _host(config)
    page = bytes(range(256)) * 16
    cpus = host.env.nr_cpus
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        ops.vm_create(host, "vm")
        ops.sev_cmd(host, "vm", SevCmd.INIT, {})
        launch_ops.launch_start(host, "vm", 0x1)
        ops.launch_update_data(host, "vm", page, 0x7F0000000000, None)
        launch_ops.launch_measure(host, "vm", 48)
        ops.sev_cmd(host, "vm", SevCmd.LAUNCH_FINISH, {})
        ops.vcpu_create(host, "vm")
        for i in range(10):
            ops.vcpu_run(host, "vm", 0, i % min(2, cpus))
        ops.vm_destroy(host, "vm")
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    big = HostConfig(profile="epyc-9654", cpus=192)
    small = HostConfig(profile="epyc-7551p", cpus=2)
    big_rate = asid_pairs_per_second(big)
    small_rate = asid_pairs_per_second(small)
    print(f"ASID allocate+free pairs/s, 1006 ASIDs, 192 CPUs: {big_rate:12,.0f}")
    print(f"ASID allocate+free pairs/s,   15 ASIDs,   2 CPUs: {small_rate:12,.0f}")
    print(f"ratio (small/big): {small_rate / big_rate:.2f}")
    print(f"VM lifecycles/s (epyc-9654, 192 CPUs):            {lifecycles_per_second(big):12,.0f}")
    lab_rate = lifecycles_per_second(HostConfig(profile="lab"))
    print(f"VM lifecycles/s (lab, 2 CPUs):                    {lab_rate:12,.0f}")


if __name__ == "__main__":
    main()
