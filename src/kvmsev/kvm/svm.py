"""``kvm_amd`` load and unload: the SEV-relevant parts of ``svm_hardware_setup()`` and
``svm_hardware_teardown()`` (arch/x86/kvm/svm/svm.c).

Order in 5.12 (SEV set up before NPT is decided):
  nested line -> SEV setup -> ``svm_adjust_mmio_mask()`` -> ``svm_cpu_init()`` per CPU ->
  NPT decision + "Nested Paging" line -> vls / vgif lines -> ``svm_set_cpu_caps()``.
Order in 5.13 (fa13680f5668 moved NPT first; "SEV setup consumes npt_enabled"):
  nested line -> NPT decision + line -> SEV setup -> mmio mask -> ``svm_cpu_init()`` per CPU ->
  vls / vgif -> ``svm_set_cpu_caps()`` (ending in ``sev_set_cpu_caps()``).

svm.c defines ``pr_fmt(fmt) "SVM: " fmt`` until 6.3, so its ``pr_info`` lines read "SVM: kvm:
Nested Paging enabled"; the nested message is a bare ``printk(KERN_INFO "kvm: Nested
Virtualization enabled\\n")``. From 8d20bd638167 (6.3) every line reads "kvm_amd: ...". The SVM
feature bits come from the profile's CPUID Fn8000_000A EDX.

A failing ``svm_cpu_init()`` jumps to ``err:``, which runs ``svm_hardware_teardown()`` and fails
the load with its error (-ENOMEM).
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.hw import svm_features
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


def _line(env: KernelEnv, text: str, legacy_prefix: str = "SVM: ") -> None:
    """An svm.c ``pr_info``: "SVM: " until 8d20bd638167 (6.3), "kvm_amd: " after."""
    env.trace.dmesg(("kvm_amd: " if env.behaviour.module_log_prefix else legacy_prefix) + text)


def _npt_setup(env: KernelEnv, kvm: KvmAmd) -> None:
    """NPT needs X86_FEATURE_NPT (and a 64-bit or PAE kernel; all modeled kernels are 64-bit).
    The line read "SVM: kvm: Nested Paging enabled" until 6.3 dropped the "kvm: "."""
    if not env.npt_supported:
        kvm.params["npt"] = False
    kvm.npt_enabled = bool(kvm.params["npt"])
    state = "enabled" if kvm.npt_enabled else "disabled"
    _line(env, f"Nested Paging {state}" if env.behaviour.module_log_prefix else f"kvm: Nested Paging {state}")


def _feature_param(env: KernelEnv, kvm: KvmAmd, name: str, present: bool, line: str | None) -> None:
    """The ``if (param) { if (!feature) param = false; else pr_info(...); }`` blocks (tsc_scaling,
    lbrv, vls, vgif, vnmi): the parameter is written back, so sysfs shows the outcome."""
    if name not in kvm.params or not kvm.params[name]:
        return
    if not present:
        kvm.params[name] = _typed(kvm.params[name], False)
    elif line is not None:
        _line(env, line)


def _typed(old: int | bool, value: bool) -> int | bool:
    return value if isinstance(old, bool) else int(value)


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
    """Module init's hardware setup; returns 0 or a negative errno.

    The SEV-relevant order, and the lines printed, by kernel:

    * TSC scaling ("TSC scaling supported", f800650a4ed2, 5.16), then the nested line;
    * NPT decision and line before SEV setup (fa13680f5668, 5.13), after the per-CPU init before;
    * ``nrips &= X86_FEATURE_NRIPS`` before SEV setup from 80d0f521d59e (6.6), after it before;
    * the LBRV block ("LBR virtualization supported", 4c84926e229e, 5.16) after vGIF, moved before
      SEV setup by d922056215617 (6.10);
    * per-CPU init, then VLS (needs NPT), vGIF and -- from fa4c027a7956 (6.4) -- vNMI (needs vGIF
      and the VNMI CPU bit, Zen 4 on).
    """
    b = env.behaviour
    svm = env.svm
    if b.svm_tsc_lbrv_lines:
        _feature_param(env, kvm, "tsc_scaling", svm.has(svm_features.TSC_RATE_MSR), "TSC scaling supported")
    if kvm.params["nested"]:
        if b.module_log_prefix:
            _line(env, "Nested Virtualization enabled")
        else:
            env.trace.dmesg("kvm: Nested Virtualization enabled")
    if b.sev_requires_npt:
        _npt_setup(env, kvm)
    if b.sev_requires_nrips:
        _feature_param(env, kvm, "nrips", svm.has(svm_features.NRIPS), None)
    lbrv_line = "LBR virtualization supported"
    if b.lbrv_before_sev:
        _feature_param(env, kvm, "lbrv", svm.has(svm_features.LBRV), lbrv_line)
    _sev_setup(env, kvm)
    for cpu in range(env.nr_cpus):
        ret = svm_cpu_init(env, kvm, cpu)
        if ret:
            svm_hardware_teardown(env, kvm)
            return ret
    if not b.sev_requires_npt:
        _npt_setup(env, kvm)
    if not b.sev_requires_nrips:
        _feature_param(env, kvm, "nrips", svm.has(svm_features.NRIPS), None)
    vls_ok = kvm.npt_enabled and svm.has(svm_features.V_VMSAVE_VMLOAD)
    _feature_param(env, kvm, "vls", vls_ok, "Virtual VMLOAD VMSAVE supported")
    _feature_param(env, kvm, "vgif", svm.has(svm_features.VGIF), "Virtual GIF supported")
    if b.svm_vnmi:
        vnmi_ok = bool(kvm.params.get("vgif")) and svm.has(svm_features.VNMI)
        _feature_param(env, kvm, "vnmi", vnmi_ok, "Virtual NMI enabled")
    if b.svm_tsc_lbrv_lines and not b.lbrv_before_sev:
        _feature_param(env, kvm, "lbrv", svm.has(svm_features.LBRV), lbrv_line)
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
    env.module_loaded(MODULE)
    decls = kvm_params.declarations(env.behaviour, env.kconfig)
    outcome = parse_module_args(MODULE, words, decls, env.behaviour.bool_letters)
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
