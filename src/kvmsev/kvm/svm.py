"""``kvm_amd`` load and unload: the SEV-relevant parts of ``svm_hardware_setup()`` and
``svm_hardware_teardown()`` (arch/x86/kvm/svm/svm.c).

Order in 5.12 (SEV set up before NPT is decided):
  nested line -> SEV setup -> ``svm_adjust_mmio_mask()`` -> ``svm_cpu_init()`` per CPU ->
  NPT decision + "Nested Paging" line -> vls / vgif lines -> ``svm_set_cpu_caps()``.
Order in 5.13 (fa13680f5668 moved NPT first; "SEV setup consumes npt_enabled"):
  nested line -> NPT decision + line -> SEV setup -> mmio mask -> ``svm_cpu_init()`` per CPU ->
  vls / vgif -> ``svm_set_cpu_caps()`` (ending in ``sev_set_cpu_caps()``).

svm.c defines ``pr_fmt(fmt) "SVM: " fmt``, so its ``pr_info`` lines read "SVM: kvm: Nested
Paging enabled"; the nested message is a bare ``printk(KERN_INFO "kvm: Nested Virtualization
enabled\\n")``. All modeled parts have V_VMSAVE_VMLOAD and VGIF (every Zen part does).

A failing ``svm_cpu_init()`` jumps to ``err:``, which runs ``svm_hardware_teardown()`` and fails
the load with its error (-ENOMEM).
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kernel import kconfig
from kvmsev.kernel.params import parse_module_args
from kvmsev.kvm import params as kvm_params
from kvmsev.kvm.cpuid import kvm_set_cpu_caps
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.hardware import svm_cpu_init_asids
from kvmsev.kvm.sev import (
    alloc_sev_vmcbs,
    free_sev_vmcbs,
    sev_cpu_init,
    sev_gate,
    sev_hardware_setup,
    sev_hardware_teardown,
    svm_sev_enabled,
    write_back_params,
)
from kvmsev.kvm.state import KvmAmd

MODULE = "kvm_amd"


def _npt_setup(env: KernelEnv, kvm: KvmAmd) -> None:
    """NPT needs X86_FEATURE_NPT (and a 64-bit or PAE kernel; all modeled kernels are 64-bit)."""
    if not env.npt_supported:
        kvm.params["npt"] = False
    kvm.npt_enabled = bool(kvm.params["npt"])
    env.trace.dmesg(f"SVM: kvm: Nested Paging {'enabled' if kvm.npt_enabled else 'disabled'}")


def _sev_setup(env: KernelEnv, kvm: KvmAmd) -> None:
    b = env.behaviour
    if b.sev_setup_called_unconditionally:
        sev_hardware_setup(env, kvm)
        return
    gate = env.kconfig[kconfig.KVM_AMD_SEV] and bool(kvm.params.get("sev", False))
    if b.sev_requires_npt:
        gate = gate and kvm.npt_enabled
    if gate:
        sev_hardware_setup(env, kvm)
    else:
        write_back_params(kvm, False, False)  # the caller's ``else { sev = false; sev_es = false; }``


def svm_cpu_init(env: KernelEnv, kvm: KvmAmd, cpu: int) -> int:
    """The SEV part of ``svm_cpu_init()``: the per-CPU VMCB array.

    Before b95c221cac16 it is allocated inline (``if (svm_sev_enabled())``, failing with a fixed
    -ENOMEM); after, by ``sev_cpu_init()`` whose error is propagated -- also -ENOMEM.
    """
    if env.behaviour.sev_cpu_init_helper:
        return sev_cpu_init(env, kvm, cpu)
    if sev_gate(env, kvm) and not alloc_sev_vmcbs(env, kvm, cpu):
        return -Errno.ENOMEM
    return 0


def svm_hardware_setup(env: KernelEnv, kvm: KvmAmd) -> int:
    """Module init's hardware setup; returns 0 or a negative errno."""
    b = env.behaviour
    if kvm.params["nested"]:
        env.trace.dmesg("kvm: Nested Virtualization enabled")
    if b.sev_requires_npt:
        _npt_setup(env, kvm)
    _sev_setup(env, kvm)
    for cpu in range(env.nr_cpus):
        ret = svm_cpu_init(env, kvm, cpu)
        if ret:
            svm_hardware_teardown(env, kvm)
            return ret
    if not b.sev_requires_npt:
        _npt_setup(env, kvm)
    if kvm.npt_enabled:
        env.trace.dmesg("SVM: Virtual VMLOAD VMSAVE supported")
    env.trace.dmesg("SVM: Virtual GIF supported")
    kvm_set_cpu_caps(env, kvm)
    return 0


def svm_hardware_teardown(env: KernelEnv, kvm: KvmAmd) -> None:
    """SEV teardown, then ``svm_cpu_uninit()`` for every CPU (which frees ``sev_vmcbs``).

    Before 4cafd0c572a2 the caller checked ``svm_sev_enabled()`` first; after, the callee's own
    guard is the only one.
    """
    if env.behaviour.sev_teardown_called_unconditionally or svm_sev_enabled(env, kvm):
        sev_hardware_teardown(env, kvm)
    for cpu in range(env.nr_cpus):
        free_sev_vmcbs(env, kvm, cpu)


def load(env: KernelEnv, words: list[tuple[str, str | None]]) -> tuple[KvmAmd | None, Errno | None]:
    """``modprobe kvm_amd``: parse parameters, then run hardware setup.

    A rejected parameter value fails the load before any setup (``load_module`` ->
    ``parse_args``); unknown names only warn.
    """
    decls = kvm_params.declarations(env.behaviour, env.kconfig)
    outcome = parse_module_args(MODULE, words, decls)
    for line in outcome.dmesg:
        env.trace.dmesg(line)
    if outcome.error is not None:
        return None, outcome.error
    kvm = KvmAmd(decls=decls, params=dict(outcome.values))
    ret = svm_hardware_setup(env, kvm)
    if ret:
        return None, Errno(-ret)
    svm_cpu_init_asids(kvm, env.nr_cpus)
    return kvm, None


def unload(env: KernelEnv, kvm: KvmAmd) -> None:
    """``rmmod kvm_amd`` (``svm_hardware_unsetup`` -> ``svm_hardware_teardown``)."""
    svm_hardware_teardown(env, kvm)
