"""SEV setup, teardown and the cache-flush primitive (arch/x86/kvm/svm/sev.c, 5.12 onwards).

Every shape of each function is here, selected by :class:`~kvmsev.kvm.behaviour.Behaviour`
fields; docstrings give the order of steps and the commits that changed them. sev.c defines no
``pr_fmt`` until 8d20bd638167 (6.3), so logs read "SEV supported: 509 ASIDs" before it and
"kvm_amd: SEV enabled (ASIDs 1 - 509)" after 6d1bc9754b04 (6.5).
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.firmware.status import Command
from kvmsev.hw import cpuid
from kvmsev.kernel import kconfig
from kvmsev.kernel.alloc import POINTER_SIZE, bitmap_bytes
from kvmsev.kernel.bitops import find_next_bit
from kvmsev.kvm.behaviour import SetupLog
from kvmsev.kvm.env import KernelEnv, c_hex_alt
from kvmsev.kvm.guest import SevVmcbs
from kvmsev.kvm.oops import null_deref
from kvmsev.kvm.psp_calls import platform_init, platform_shutdown
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


def log_prefix(env: KernelEnv) -> str:
    """sev.c's ``pr_fmt``: none until 8d20bd638167 (6.3), then the module name."""
    return "kvm_amd: " if env.behaviour.module_log_prefix else ""


def sev_hardware_setup(env: KernelEnv, kvm: KvmAmd) -> None:
    """Decide SEV and SEV-ES, read the ASID range, allocate the bitmaps, print the result.

    Steps (5.12; later changes in brackets):

    0. [e8126bdaf194, 5.13: always called; leave unless CONFIG_KVM_AMD_SEV, ``sev`` and -- with
       fa13680f5668 -- ``npt_enabled``; 80d0f521d59e, 6.6: and ``nrips``.]
    1. Leave unless the host kernel has X86_FEATURE_SEV. [5.17 and 6.8 add WARNs for missing
       DECODEASSISTS and FLUSHBYASID; every modeled part has both.]
    2. CPUID 0x8000001F: ``sev_enc_bit = EBX & 0x3f``, ``max_sev_asid = ECX``; leave if no ASIDs.
    3. ``min_sev_asid = EDX``.
    4. Allocate the ASID bitmap, then the reclaim bitmap (``max_sev_asid`` bits each; [5.14:
       ``max_sev_asid + 1``]); on failure of the second, leave -- keeping the first
       [f31b88b35f90: freeing it].
    5. [7aef27f0b2a8: misc capacity ``sev = max - min + 1``, unsigned; 0aa6b90ef9d7, 6.9: only
       when ``min <= max``.] Print "SEV supported: %u ASIDs" [until 6.4].
    6. SEV-ES: leave unless ``sev_es``, X86_FEATURE_SEV_ES [d922056215617, 6.10: and ``lbrv``]
       and ``min_sev_asid != 1`` (an EDX of 0 passes and prints ``min - 1`` wrapped); [capacity
       ``sev_es = min - 1``;] print "SEV-ES supported: %u ASIDs" [until 6.4]. [6.0 also leaves
       when MMIO caching is off; it is on for every modeled part and command line.]
    7. ``out:`` [6d1bc9754b04, 6.5: print "SEV %s (ASIDs %u - %u)" and "SEV-ES %s (ASIDs %u -
       %u)" whenever the CPU has the feature, whatever happened above; 0aa6b90ef9d7, 6.9: an SEV
       range with ``min > max`` reads "unusable"]; ``sev = sev_supported; sev_es =
       sev_es_supported``; [6.6: ``debug_swap`` forced off unless SEV-ES ended up on and the CPU
       has DEBUG_SWAP and NO_NESTED_DATA_BP.]
    """
    b = env.behaviour
    sev_supported = False
    sev_es_supported = False
    sev_snp_supported = False
    prefix = log_prefix(env)
    try:
        if b.sev_setup_called_unconditionally:
            if not env.kconfig[kconfig.KVM_AMD_SEV] or not kvm.params.get("sev", False):
                return
            if b.sev_requires_npt and not kvm.npt_enabled:
                return
            if b.sev_requires_nrips and not kvm.params.get("nrips", True):
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

        size = bitmap_bytes(kvm.max_sev_asid + 1 if b.asid_bitmap_real_index else kvm.max_sev_asid)
        if not env.kmalloc(ASID_BITMAP, size):
            return
        kvm.sev_asid_bitmap = 0
        if not env.kmalloc(RECLAIM_BITMAP, size):
            if b.free_asid_bitmap_on_setup_failure:
                env.alloc.free(ASID_BITMAP)
                kvm.sev_asid_bitmap = None
            return
        kvm.sev_reclaim_asid_bitmap = 0

        sev_asid_count = (kvm.max_sev_asid - kvm.min_sev_asid + 1) & U32
        if b.misc_cgroup and (not b.empty_sev_range_unusable or kvm.min_sev_asid <= kvm.max_sev_asid):
            # 106ed2cad9f7 (6.5) only WARNs on failure; the model's capacities cannot fail
            env.misc.set_capacity("sev", sev_asid_count)
        if b.setup_log is SetupLog.COUNTS:
            env.trace.dmesg(f"{prefix}SEV supported: {sev_asid_count} ASIDs")
        sev_supported = True

        if not kvm.params.get("sev_es", False):
            return
        if not env.features.has(cpuid.SEV_ES):
            return
        if b.lbrv_before_sev and not kvm.params.get("lbrv", True):
            return
        if kvm.min_sev_asid == 1:
            return
        sev_es_asid_count = (kvm.min_sev_asid - 1) & U32
        if b.misc_cgroup:
            env.misc.set_capacity("sev_es", sev_es_asid_count)
        if b.setup_log is SetupLog.COUNTS:
            env.trace.dmesg(f"{prefix}SEV-ES supported: {sev_es_asid_count} ASIDs")
        kvm.min_sev_es_asid = kvm.min_snp_asid = 1
        kvm.max_sev_es_asid = kvm.max_snp_asid = (kvm.min_sev_asid - 1) & U32
        sev_es_supported = True
        # 1dfe571c12cf (6.11): SNP rides on SEV-ES: the parameter and CC_ATTR_HOST_SEV_SNP
        sev_snp_supported = bool(kvm.params.get("sev_snp", False)) and env.features.host_snp
    finally:
        if b.psp_init_at_kvm_load and kvm.params.get("sev", False):
            # 6f1d5a3513c2 (6.16): ``if (sev_enabled)`` -- the parameter, not the outcome; SNP
            # also needs the firmware's SNP platform up (is_sev_snp_initialized)
            ret, _ = platform_init(env)
            if ret:
                sev_supported = sev_es_supported = sev_snp_supported = False
            elif sev_snp_supported:
                sev_snp_supported = env.ccp.snp_initialized
            if b.ciphertext_hiding_param:
                _ciphertext_hiding(env, kvm, sev_snp_supported)
        if b.setup_log is SetupLog.RANGES:
            _log_ranges(env, kvm, sev_supported, sev_es_supported, sev_snp_supported)
        write_back_params(kvm, sev_supported, sev_es_supported, sev_snp_supported)
        _force_debug_swap(env, kvm, sev_es_supported)


def _ciphertext_hiding(env: KernelEnv, kvm: KvmAmd, sev_snp_supported: bool) -> None:
    """6c7c620585c6 (6.18), in ``sev_hardware_setup`` after ``sev_platform_init``.

    ``sev_is_snp_ciphertext_hiding_supported()`` needs the firmware's SNP_FEATURE_INFO to report
    ciphertext hiding and SNP_PLATFORM_STATUS to show it enabled in the BIOS; the modeled firmware
    reports neither, so ``init_args.max_snp_asid`` stays 0. Then: with SNP supported the parameter
    is overwritten with that 0; otherwise it keeps the user's value, and any non-zero value left
    partitions the joint range anyway -- SNP ``1..N``, SEV-ES ``N+1..max_sev_es_asid`` -- and logs
    "SEV-SNP ciphertext hiding enabled", although SNP is off and nothing was sent to the firmware.
    The misc cgroup's ``sev_es`` capacity, set earlier, is not reduced.
    """
    if sev_snp_supported:
        kvm.params["ciphertext_hiding_asids"] = 0
    count = int(kvm.params.get("ciphertext_hiding_asids", 0))
    if count:
        kvm.max_snp_asid = count
        kvm.min_sev_es_asid = (count + 1) & U32
        env.trace.dmesg(f"{log_prefix(env)}SEV-SNP ciphertext hiding enabled")


def _range_word(supported: bool, usable: bool) -> str:
    """The word of an "SEV[-ES] %s (ASIDs %u - %u)" line: "unusable" is an empty range that is
    supported (0aa6b90ef9d7, 6.9, for SEV; d7fc7d9833f6, 6.18, for SEV-ES)."""
    if not supported:
        return "disabled"
    return "enabled" if usable else "unusable"


def _log_ranges(env: KernelEnv, kvm: KvmAmd, sev: bool, sev_es: bool, snp: bool) -> None:
    """6d1bc9754b04's lines at ``out:`` (printed with ``%u``, so ``min - 1`` wraps for EDX 0)."""
    prefix = log_prefix(env)
    low, high = kvm.min_sev_asid, kvm.max_sev_asid
    if env.features.has(cpuid.SEV):
        word = _range_word(sev, low <= high or not env.behaviour.empty_sev_range_unusable)
        env.trace.dmesg(f"{prefix}SEV {word} (ASIDs {low} - {high})")
    if env.behaviour.split_es_snp_ranges:
        es_low, es_high = kvm.min_sev_es_asid, kvm.max_sev_es_asid
        snp_low, snp_high = kvm.min_snp_asid, kvm.max_snp_asid
    else:
        es_low = snp_low = 1 if low > 1 else 0
        es_high = snp_high = (low - 1) & U32
    if env.features.has(cpuid.SEV_ES):
        word = _range_word(sev_es, es_low <= es_high or not env.behaviour.split_es_snp_ranges)
        env.trace.dmesg(f"{prefix}SEV-ES {word} (ASIDs {es_low} - {es_high})")
    if env.features.has(cpuid.SEV_SNP) and env.behaviour.sev_snp:
        word = "enabled" if snp else "disabled"
        env.trace.dmesg(f"{prefix}SEV-SNP {word} (ASIDs {snp_low} - {snp_high})")


def _force_debug_swap(env: KernelEnv, kvm: KvmAmd, sev_es: bool) -> None:
    """The ``debug_swap`` parameter reads Y only when SEV-ES is on and the CPU has DEBUG_SWAP
    (0x8000001F EAX bit 14) and NO_NESTED_DATA_BP (0x80000021 EAX bit 0) (6.6-6.19)."""
    if "debug_swap" not in kvm.params:
        return
    if not (sev_es and env.features.has(cpuid.DEBUG_SWAP) and env.svm.no_nested_data_bp):
        kvm.params["debug_swap"] = False


def write_back_params(kvm: KvmAmd, sev: bool, sev_es: bool, sev_snp: bool = False) -> None:
    """The ``out:`` label: results overwrite the parameter variables (int 0/1 or bool).

    With the parameters compiled out (CONFIG_KVM_AMD_SEV=n after a479c3348422) the names are the
    constant ``false`` and there is nothing to write.
    """
    for name, value in (("sev", sev), ("sev_es", sev_es), ("sev_snp", sev_snp)):
        if name in kvm.params:
            kvm.params[name] = value if isinstance(kvm.params[name], bool) else int(value)


def sev_flush_asids(env: KernelEnv, kvm: KvmAmd, low: int = 0, high: int | None = None) -> int:
    """WBINVD on every online CPU, then DF_FLUSH, under ``sev_deactivate_lock`` for write.

    After 469bb32b68d5 the function first looks for an ASID awaiting reclaim in the range and
    returns ``-EBUSY`` without flushing when there is none; a NULL reclaim bitmap there is a NULL
    dereference (``find_next_bit``). The range is in the allocator's terms
    (:func:`kvmsev.kvm.asid.asid_range`): bitmap positions ``[low, high)`` in 5.13, ASIDs
    ``[low, high]`` from 5.14 (searched over the whole ``nr_asids`` bitmap). On failure it
    prints "SEV: DF_FLUSH failed, ret=%d, error=%#x" (``error`` starts at 0, so a driver-level
    failure such as -ENODEV prints ``error=0``).
    """
    b = env.behaviour
    if b.flush_only_if_reclaim_pending:
        if kvm.sev_reclaim_asid_bitmap is None:
            raise null_deref("sev_flush_asids: find_next_bit(sev_reclaim_asid_bitmap)")
        reclaim = kvm.sev_reclaim_asid_bitmap
        if b.asid_bitmap_real_index:
            found = find_next_bit(reclaim, kvm.max_sev_asid + 1, low)
            if found > (kvm.max_sev_asid if high is None else high):
                return -Errno.EBUSY
        else:
            bound = kvm.max_sev_asid if high is None else high
            if find_next_bit(reclaim >> 1, bound, low) >= bound:
                return -Errno.EBUSY
    env.wbinvd_on_all_cpus()
    snp = bool(kvm.params.get("sev_snp", False))
    result = env.psp.snp_df_flush() if snp else env.psp.df_flush()
    env.trace.fw(result)
    if result.ret:
        if env.psp.injected in (Command.DF_FLUSH, Command.SNP_DF_FLUSH):
            env.psp.injected = None
        else:
            env.df_flush_failures += 1
        error = 0 if result.status is None else int(result.status)
        name = "SEV-SNP" if snp else "SEV"
        env.trace.dmesg(
            f"{log_prefix(env)}{name}: DF_FLUSH failed, ret={result.ret}, error={c_hex_alt(error)}"
        )
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
        # 5.13: positions 0..max-1; bb2baeb214a7 (5.14): ASIDs 1..max
        first = 1 if env.behaviour.asid_bitmap_real_index else 0
        sev_flush_asids(env, kvm, first, kvm.max_sev_asid)
        _free_bitmaps(env, kvm)
    else:
        _free_bitmaps(env, kvm)
        sev_flush_asids(env, kvm)
    if env.behaviour.misc_cgroup:
        env.misc.set_capacity("sev", 0)
        env.misc.set_capacity("sev_es", 0)
    if env.behaviour.psp_init_at_kvm_load:
        platform_shutdown(env)


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
    if not env.kmalloc(f"sev_vmcbs[{cpu}]", entries * POINTER_SIZE):
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
