"""SEV ASID allocation and recycling (sev.c ``sev_asid_new``, ``sev_asid_free``,
``__sev_recycle_asids``; 5.12 and 5.13).

Bitmaps are 0-based in 5.12/5.13: position ``p`` is ASID ``p + 1``, size ``max_sev_asid``.

Allocation searches for the lowest clear bit at or above the range's first position in the
*whole* bitmap; a result at or past the range's end means the range is exhausted. Freed ASIDs
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
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev import sev_flush_asids
from kvmsev.kvm.state import KvmAmd

_EBUSY = -int(Errno.EBUSY)


def _first_zero_from(bitmap: int, start: int) -> int:
    """``find_next_zero_bit``: lowest clear bit at or above ``start`` (no upper bound needed:
    callers compare with the range end)."""
    inverted = ~bitmap >> start
    return start + (inverted & -inverted).bit_length() - 1


def _has_bit_in(bitmap: int, start: int, end: int) -> bool:
    """Whether a set bit exists in ``[start, end)``."""
    if end <= start:
        return False
    window = bitmap >> start
    if not window:
        return False
    return (window & -window).bit_length() - 1 + start < end


def asid_range(kvm: KvmAmd, es: bool) -> tuple[int, int]:
    """Bitmap positions ``[min, max)`` for an SEV-ES or SEV guest."""
    if es:
        return 0, kvm.min_sev_asid - 1
    return kvm.min_sev_asid - 1, kvm.max_sev_asid


def sev_recycle_asids(env: KernelEnv, kvm: KvmAmd, min_pos: int, max_pos: int) -> bool:
    """``__sev_recycle_asids``: flush, then free every reclaimed ASID of both ranges."""
    reclaim = kvm.sev_reclaim_asid_bitmap or 0
    if not env.behaviour.flush_only_if_reclaim_pending and not _has_bit_in(reclaim, min_pos, max_pos):
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
    pos = _first_zero_from(bitmap, max(min_pos, 0))
    if pos >= max_pos:
        env.exhausted += 1
        if sev_recycle_asids(env, kvm, min_pos, max_pos):
            env.recycles += 1
            bitmap = kvm.sev_asid_bitmap or 0
            pos = _first_zero_from(bitmap, max(min_pos, 0))
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
