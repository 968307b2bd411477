"""SEV setup, teardown and the cache-flush primitive (arch/x86/kvm/svm/sev.c, 5.12 and 5.13).

Both shapes of each function are here, selected by :class:`~kvmsev.kvm.behaviour.Behaviour`
fields; docstrings give the order of steps and the commits that changed them. Messages are
printed with no prefix: sev.c defines no ``pr_fmt`` in 5.12/5.13, so real logs read
"SEV supported: 509 ASIDs".
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.firmware.status import Command
from kvmsev.hw import cpuid
from kvmsev.kernel import kconfig
from kvmsev.kernel.alloc import POINTER_SIZE, bitmap_bytes
from kvmsev.kernel.bitops import find_next_bit
from kvmsev.kvm.env import KernelEnv, c_hex_alt
from kvmsev.kvm.guest import SevVmcbs
from kvmsev.kvm.oops import null_deref
from kvmsev.kvm.state import KvmAmd

U32 = 0xFFFF_FFFF
ASID_BITMAP = "sev_asid_bitmap"
RECLAIM_BITMAP = "sev_reclaim_asid_bitmap"


def svm_sev_enabled(env: KernelEnv, kvm: KvmAmd) -> bool:
    """The pre-5.13 helper: ``IS_ENABLED(CONFIG_KVM_AMD_SEV) ? max_sev_asid : 0``.

    True as soon as CPUID reported ASIDs, even when setup later failed.
    """
    return env.kconfig[kconfig.KVM_AMD_SEV] and kvm.max_sev_asid != 0


def sev_gate(env: KernelEnv, kvm: KvmAmd) -> bool:
    """What per-CPU allocation and teardown key on: ``svm_sev_enabled()`` before a5c1c5aad6cf
    ("Drop redundant svm_sev_enabled() helper"), the final ``sev_enabled`` after."""
    if env.behaviour.gates_on_sev_enabled:
        return kvm.sev_enabled
    return svm_sev_enabled(env, kvm)


def sev_hardware_setup(env: KernelEnv, kvm: KvmAmd) -> None:
    """Decide SEV and SEV-ES, read the ASID range, allocate the bitmaps, print the result.

    Steps (5.12; the 5.13 differences in brackets):

    0. [e8126bdaf194: always called; leave unless CONFIG_KVM_AMD_SEV, ``sev`` and -- with
       fa13680f5668 -- ``npt_enabled``.]
    1. Leave unless the host kernel has X86_FEATURE_SEV.
    2. CPUID 0x8000001F: ``sev_enc_bit = EBX & 0x3f``, ``max_sev_asid = ECX``; leave if no ASIDs
       (``svm_sev_enabled()``, [8cb756b7bdcc: ``!max_sev_asid``]).
    3. ``min_sev_asid = EDX``.
    4. Allocate the ASID bitmap, then the reclaim bitmap (``max_sev_asid`` bits each); on failure
       of the second, leave -- keeping the first [f31b88b35f90: freeing it].
    5. [7aef27f0b2a8: misc cgroup capacity ``sev = max - min + 1``, unsigned 32-bit.]
       Print "SEV supported: %u ASIDs" with ``max - min + 1`` (wraps when ``min > max + 1``).
    6. SEV-ES: leave unless ``sev_es``, X86_FEATURE_SEV_ES and ``min_sev_asid != 1`` (note: an
       EDX of 0 passes and prints ``min - 1`` wrapped); [capacity ``sev_es = min - 1``;] print
       "SEV-ES supported: %u ASIDs".
    7. Always: ``sev = sev_supported; sev_es = sev_es_supported``.
    """
    b = env.behaviour
    sev_supported = False
    sev_es_supported = False
    try:
        if b.sev_setup_called_unconditionally:
            if not env.kconfig[kconfig.KVM_AMD_SEV] or not kvm.params.get("sev", False):
                return
            if b.sev_requires_npt and not kvm.npt_enabled:
                return
        if not env.features.has(cpuid.SEV):
            return
        kvm.sev_enc_bit = env.leaf.c_bit
        kvm.max_sev_asid = env.leaf.ecx
        if b.explicit_max_asid_check:
            if not kvm.max_sev_asid:
                return
        elif not svm_sev_enabled(env, kvm):
            return
        kvm.min_sev_asid = env.leaf.edx

        size = bitmap_bytes(kvm.max_sev_asid)
        if not env.alloc.alloc(ASID_BITMAP, size):
            return
        kvm.sev_asid_bitmap = 0
        if not env.alloc.alloc(RECLAIM_BITMAP, size):
            if b.free_asid_bitmap_on_setup_failure:
                env.alloc.free(ASID_BITMAP)
                kvm.sev_asid_bitmap = None
            return
        kvm.sev_reclaim_asid_bitmap = 0

        sev_asid_count = (kvm.max_sev_asid - kvm.min_sev_asid + 1) & U32
        if b.misc_cgroup and env.misc.set_capacity("sev", sev_asid_count):
            return
        env.trace.dmesg(f"SEV supported: {sev_asid_count} ASIDs")
        sev_supported = True

        if not kvm.params.get("sev_es", False):
            return
        if not env.features.has(cpuid.SEV_ES):
            return
        if kvm.min_sev_asid == 1:
            return
        sev_es_asid_count = (kvm.min_sev_asid - 1) & U32
        if b.misc_cgroup and env.misc.set_capacity("sev_es", sev_es_asid_count):
            return
        env.trace.dmesg(f"SEV-ES supported: {sev_es_asid_count} ASIDs")
        sev_es_supported = True
    finally:
        write_back_params(kvm, sev_supported, sev_es_supported)


def write_back_params(kvm: KvmAmd, sev: bool, sev_es: bool) -> None:
    """The ``out:`` label: results overwrite the parameter variables (int 0/1 or bool).

    With the parameters compiled out (CONFIG_KVM_AMD_SEV=n after a479c3348422) the names are the
    constant ``false`` and there is nothing to write.
    """
    for name, value in (("sev", sev), ("sev_es", sev_es)):
        if name in kvm.params:
            kvm.params[name] = value if isinstance(kvm.params[name], bool) else int(value)


def sev_flush_asids(env: KernelEnv, kvm: KvmAmd, min_pos: int = 0, max_pos: int | None = None) -> int:
    """WBINVD on every online CPU, then DF_FLUSH, under ``sev_deactivate_lock`` for write.

    After 469bb32b68d5 the function first looks for a set bit of the reclaim bitmap in
    ``[min_pos, max_pos)`` (bitmap positions) and returns ``-EBUSY`` without flushing when there
    is none; a NULL reclaim bitmap there is a NULL dereference (``find_next_bit``). On failure it
    prints "SEV: DF_FLUSH failed, ret=%d, error=%#x" (``error`` starts at 0, so a driver-level
    failure such as -ENODEV prints ``error=0``).
    """
    if env.behaviour.flush_only_if_reclaim_pending:
        if kvm.sev_reclaim_asid_bitmap is None:
            raise null_deref("sev_flush_asids: find_next_bit(sev_reclaim_asid_bitmap)")
        bound = kvm.max_sev_asid if max_pos is None else max_pos
        if find_next_bit(kvm.sev_reclaim_asid_bitmap, bound, min_pos) >= bound:
            return -Errno.EBUSY
    env.wbinvd_on_all_cpus()
    result = env.psp.df_flush()
    env.trace.fw(result)
    if result.ret:
        if env.psp.injected is Command.DF_FLUSH:
            env.psp.injected = None
        else:
            env.df_flush_failures += 1
        error = 0 if result.status is None else int(result.status)
        env.trace.dmesg(f"SEV: DF_FLUSH failed, ret={result.ret}, error={c_hex_alt(error)}")
    return result.ret


def sev_hardware_teardown(env: KernelEnv, kvm: KvmAmd) -> None:
    """Flush and free what setup allocated.

    5.12: leave unless ``svm_sev_enabled()``; free both bitmaps; then flush unconditionally.
    5.13: leave unless ``sev_enabled`` (a5c1c5aad6cf); ``sev_flush_asids(0, max_sev_asid)``,
    which skips the flush when nothing awaits reclaim (469bb32b68d5) and so runs *before* the
    bitmaps are freed; free both bitmaps; reset the misc cgroup capacities to 0.
    """
    if not sev_gate(env, kvm):
        return
    if env.behaviour.flush_only_if_reclaim_pending:
        sev_flush_asids(env, kvm, 0, kvm.max_sev_asid)
        _free_bitmaps(env, kvm)
    else:
        _free_bitmaps(env, kvm)
        sev_flush_asids(env, kvm)
    if env.behaviour.misc_cgroup:
        env.misc.set_capacity("sev", 0)
        env.misc.set_capacity("sev_es", 0)


def _free_bitmaps(env: KernelEnv, kvm: KvmAmd) -> None:
    env.alloc.free(ASID_BITMAP)
    env.alloc.free(RECLAIM_BITMAP)
    kvm.sev_asid_bitmap = None
    kvm.sev_reclaim_asid_bitmap = None


def alloc_sev_vmcbs(env: KernelEnv, kvm: KvmAmd, cpu: int) -> bool:
    """Allocate one CPU's ``sev_vmcbs`` (``max_sev_asid + 1`` pointers); False on OOM.

    kmalloc_array (contents unknown) before 3b1902b87bf1, kcalloc (zeroed) after.
    """
    entries = kvm.max_sev_asid + 1
    if not env.alloc.alloc(f"sev_vmcbs[{cpu}]", entries * POINTER_SIZE):
        return False
    if kvm.sev_vmcbs is None:
        env.garbage.resolved.clear()
        kvm.sev_vmcbs = SevVmcbs(entries, env.behaviour.sev_vmcbs_zeroed, env.garbage)
    kvm.sev_vmcbs_cpus += 1
    return True


def sev_cpu_init(env: KernelEnv, kvm: KvmAmd, cpu: int) -> int:
    """b95c221cac16's helper: 0 without SEV, ``-ENOMEM`` when the array cannot be allocated."""
    if not sev_gate(env, kvm):
        return 0
    return 0 if alloc_sev_vmcbs(env, kvm, cpu) else -Errno.ENOMEM


def free_sev_vmcbs(env: KernelEnv, kvm: KvmAmd, cpu: int) -> None:
    """``kfree(sd->sev_vmcbs)`` in ``svm_cpu_uninit()``."""
    site = f"sev_vmcbs[{cpu}]"
    if env.alloc.holds(site):
        env.alloc.free(site)
        kvm.sev_vmcbs_cpus -= 1
        if not kvm.sev_vmcbs_cpus:
            kvm.sev_vmcbs = None
