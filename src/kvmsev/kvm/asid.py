"""SEV ASID allocation and recycling (sev.c ``sev_asid_new``, ``sev_asid_free``,
``__sev_recycle_asids``; 5.12 and 5.13).

Bitmaps are 0-based in 5.12/5.13: position ``p`` is ASID ``p + 1``, size ``max_sev_asid``.

Allocation searches for the lowest clear bit at or above the range's first position in the
*whole* bitmap; a result at or past the range's end means the range is exhausted. The bounds
are C ``int``s computed from ``unsigned int`` CPUID values, as in the kernel, so a CPUID EDX of 0
(``min_sev_asid`` 0, common on client parts) makes every allocation fail with -EBUSY: the SEV
search starts past the end of the bitmap and the SEV-ES range ends at -1. Freed ASIDs
keep their bit in ``sev_asid_bitmap`` (and gain one in the reclaim bitmap), so they are not
reused until an exhausted allocation recycles: WBINVD on all CPUs + DF_FLUSH, then every
reclaimed ASID in *both* ranges is freed at once (``bitmap_xor``), and the search runs once more.
Before 469bb32b68d5 the "anything to reclaim in this range?" check was here; after, inside
``sev_flush_asids``; the effect is the same.

5.13 charges the misc cgroup first (7aef27f0b2a8): a capacity of 0 gives -EINVAL, a limit
-EBUSY; the charge is dropped if the search then fails.

``sev_asid_free`` marks the ASID for reclaim and clears ``sev_vmcbs`` on every CPU -- at index
``asid - 1`` in 5.11-5.13 (the bitmap position; fixed by 179c6c27bf48, "KVM: SVM: Fix off-by-one
indexing when nullifying last used SEV VMCB", 5.14), then uncharges the cgroup.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kernel.bitops import c_int, find_next_bit, find_next_zero_bit
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev import sev_flush_asids
from kvmsev.kvm.state import KvmAmd

_EBUSY = -int(Errno.EBUSY)


def asid_range(kvm: KvmAmd, es: bool) -> tuple[int, int]:
    """``min_asid``, ``max_asid`` of ``sev_asid_new`` (5.12/5.13): bitmap positions ``[min, max)``
    as C ``int``s computed from the ``unsigned int`` CPUID values. With EDX = 0 the SEV start is
    -1 (past the end once it is an ``unsigned long``) and the SEV-ES end is -1: nothing fits."""
    if es:
        return 0, c_int(kvm.min_sev_asid - 1)
    return c_int(kvm.min_sev_asid - 1), c_int(kvm.max_sev_asid)


def usable_range(kvm: KvmAmd, es: bool) -> tuple[int, int] | None:
    """The ASIDs ``sev_asid_new`` can hand out for an SEV-ES or SEV guest, or None when it can hand
    out none (the JSON's ``sev_asid_range`` / ``sev_es_asid_range``)."""
    low, high = asid_range(kvm, es)
    first = find_next_zero_bit(0, kvm.max_sev_asid, low)
    last = min(high, kvm.max_sev_asid) - 1
    return (first + 1, last + 1) if first <= last and first < kvm.max_sev_asid else None


def sev_recycle_asids(env: KernelEnv, kvm: KvmAmd, min_pos: int, max_pos: int) -> bool:
    """``__sev_recycle_asids``: flush, then free every reclaimed ASID of both ranges."""
    reclaim = kvm.sev_reclaim_asid_bitmap or 0
    if (
        not env.behaviour.flush_only_if_reclaim_pending
        and find_next_bit(reclaim, kvm.max_sev_asid, min_pos) >= max_pos
    ):
        return False
    if sev_flush_asids(env, kvm, min_pos, max_pos):
        return False
    kvm.sev_asid_bitmap = (kvm.sev_asid_bitmap or 0) ^ reclaim
    kvm.sev_reclaim_asid_bitmap = 0
    return True


def sev_asid_new(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> int:
    """Allocate an ASID for ``vm`` (its ``es_active`` picks the range): ASID or -errno."""
    misc = env.misc
    resource = "sev_es" if vm.es_active else "sev"
    if env.behaviour.misc_cgroup:
        ret, lines = misc.try_charge(resource, vm.cgroup)
        for line in lines:
            env.trace.dmesg(line)
        if ret:
            return ret
        vm.misc_cg = vm.cgroup
    min_pos, max_pos = asid_range(kvm, vm.es_active)
    bitmap = kvm.sev_asid_bitmap or 0
    pos = find_next_zero_bit(bitmap, kvm.max_sev_asid, min_pos)
    if pos >= max_pos:
        env.exhausted += 1
        if sev_recycle_asids(env, kvm, min_pos, max_pos):
            env.recycles += 1
            bitmap = kvm.sev_asid_bitmap or 0
            pos = find_next_zero_bit(bitmap, kvm.max_sev_asid, min_pos)
        if pos >= max_pos:
            if vm.misc_cg is not None:
                misc.uncharge(resource, vm.misc_cg)
                vm.misc_cg = None
            return _EBUSY
    kvm.sev_asid_bitmap = bitmap | (1 << pos)
    return pos + 1


def sev_asid_free(env: KernelEnv, kvm: KvmAmd, vm: Vm, fix_off_by_one: bool) -> None:
    """Mark ``vm.asid`` for reclaim, forget it in every CPU's ``sev_vmcbs``, uncharge."""
    pos = vm.asid - 1
    kvm.sev_reclaim_asid_bitmap = (kvm.sev_reclaim_asid_bitmap or 0) | (1 << pos)
    if kvm.sev_vmcbs is not None:
        kvm.sev_vmcbs.clear_all_cpus(vm.asid if fix_off_by_one else pos)
    if vm.misc_cg is not None:
        env.misc.uncharge("sev_es" if vm.es_active else "sev", vm.misc_cg)
        vm.misc_cg = None
