"""KVM's calls into the ccp driver after boot: ``sev_platform_init`` (KVM_SEV_INIT, and from 6.16
kvm_amd's own setup) and ``sev_platform_shutdown`` (kvm_amd's unload from 6.16).

The driver's log lines are printed when the call runs, so they land in the kernel log between
the lines of whatever KVM was doing, not with the driver's boot-time lines.
"""

from __future__ import annotations

from kvmsev.kernel import ccp
from kvmsev.kvm.env import KernelEnv


def _emit_driver_lines(env: KernelEnv, mark: int) -> None:
    for line in env.ccp.log[mark:]:
        env.trace.dmesg(line)
    del env.ccp.log[mark:]


def platform_init(env: KernelEnv) -> tuple[int, int]:
    """``sev_platform_init()``: (ret, firmware error)."""
    mark = len(env.ccp.log)
    result = ccp.sev_platform_init(env.psp, env.ccp, env.wbinvd_on_all_cpus, env.trace.fw)
    _emit_driver_lines(env, mark)
    return result


def platform_shutdown(env: KernelEnv) -> None:
    """``sev_platform_shutdown()``."""
    mark = len(env.ccp.log)
    ccp.sev_platform_shutdown(env.psp, env.ccp, env.trace.fw)
    _emit_driver_lines(env, mark)
