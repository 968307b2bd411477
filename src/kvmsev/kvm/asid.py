"""SEV ASID allocation and recycling (sev.c ``sev_asid_new``, ``sev_asid_free``,
``__sev_recycle_asids``, ``sev_flush_asids``).

The model stores both bitmaps indexed by ASID (bit ``a`` is ASID ``a``) whatever the kernel; the
kernel's own indexing, which the search arithmetic depends on, changed twice:

* 5.12/5.13: bitmap position ``p`` is ASID ``p + 1``, ``max_sev_asid`` bits. The search covers
  positions ``[min, max)`` computed as C ``int``s from the ``unsigned int`` CPUID values, so a
  CPUID EDX of 0 (``min_sev_asid`` 0, common on client parts) makes every allocation fail with
  -EBUSY: the SEV search starts past the end and the SEV-ES range ends at -1.
* bb2baeb214a7 "KVM: SVM: improve the code readability for ASID management" (5.14): bit ``a`` is
  ASID ``a`` (``max_sev_asid + 1`` bits, bit 0 never set by anyone), ranges are inclusive
  ``int`` ASIDs: SEV ``min_sev_asid..max_sev_asid``, SEV-ES ``1..min_sev_asid - 1``. With EDX 0
  the SEV range starts at 0 and nothing marks bit 0 in use: the first SEV guest gets ASID 0, the
  host's own (the firmware then refuses to ACTIVATE it, INVALID_ASID).
* 466eec4a22a7 "KVM: SVM: Use unsigned integers when dealing with ASIDs" (6.9): the bounds are
  ``unsigned int``; with EDX 0 the SEV-ES range ends at 4294967295, the search size ``max + 1``
  wraps to 0, and the search "finds" ASID 0 every time, for every SEV-ES guest. With it,
  0aa6b90ef9d7 (6.9) returns -ENOTTY for an empty range before anything else.

An exhausted search recycles once: WBINVD on every online CPU + DF_FLUSH (``sev_flush_asids``,
which first looks for an ASID awaiting reclaim in the range and gives up with -EBUSY when there is
none), then every reclaimed ASID of *both* ranges is freed at once (``bitmap_xor``), and the search
runs again. From 5.13 the misc cgroup is charged first (7aef27f0b2a8): a capacity of 0 gives
-EINVAL, a limit -EBUSY; the charge is dropped if the search then fails.

``sev_asid_free`` marks the ASID for reclaim and clears ``sev_vmcbs`` on every CPU -- at index
``asid - 1`` in 5.11-5.13 (the bitmap position; fixed by 179c6c27bf48, 5.14), then uncharges.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kernel.bitops import c_int, find_next_bit, find_next_zero_bit
from kvmsev.kvm.behaviour import Behaviour
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev import sev_flush_asids
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import SNP_VM

_EBUSY = -int(Errno.EBUSY)
_ENOTTY = -int(Errno.ENOTTY)
U32 = 0xFFFF_FFFF


def positions(bitmap: int) -> int:
    """The 5.12/5.13 view of an ASID-indexed bitmap: position ``p`` is ASID ``p + 1``."""
    return bitmap >> 1


def asid_range(b: Behaviour, kvm: KvmAmd, es: bool, snp: bool = False) -> tuple[int, int]:
    """The search bounds of ``sev_asid_new`` in the kernel's own terms.

    5.12/5.13: bitmap positions ``[min, max)`` as C ``int``. From 5.14: ASIDs ``[min, max]``,
    C ``int`` until 6.9 and ``unsigned int`` after (466eec4a22a7). SNP guests (6.11) share the
    SEV-ES range until d7fc7d9833f6 (6.18) gives each its own bounds, which setup fills in only
    when it reaches SEV-ES and ``ciphertext_hiding_asids`` may split.
    """
    if not b.asid_bitmap_real_index:
        if es:
            return 0, c_int(kvm.min_sev_asid - 1)
        return c_int(kvm.min_sev_asid - 1), c_int(kvm.max_sev_asid)
    if es and b.split_es_snp_ranges:
        return (kvm.min_snp_asid, kvm.max_snp_asid) if snp else (kvm.min_sev_es_asid, kvm.max_sev_es_asid)
    if es:
        low, high = 1, kvm.min_sev_asid - 1
    else:
        low, high = kvm.min_sev_asid, kvm.max_sev_asid
    return (low, high & U32) if b.asid_unsigned else (c_int(low), c_int(high))


def _search_size(b: Behaviour, kvm: KvmAmd, high: int) -> int:
    """The ``size`` argument of the search: the whole bitmap (5.12/5.13), else ``max_asid + 1``
    (an ``unsigned int`` sum from 6.9, so UINT_MAX + 1 is 0)."""
    if not b.asid_bitmap_real_index:
        return kvm.max_sev_asid
    return (high + 1) & U32 if b.asid_unsigned else high + 1


def usable_range(b: Behaviour, kvm: KvmAmd, es: bool, snp: bool = False) -> tuple[int, int] | None:
    """The ASIDs ``sev_asid_new`` hands out from a fresh bitmap for an SEV, SEV-ES or SNP guest, or
    None when it hands out none (the JSON's ``sev_asid_range`` / ``sev_es_asid_range`` /
    ``snp_asid_range``)."""
    low, high = asid_range(b, kvm, es, snp)
    if not b.asid_bitmap_real_index:
        first = find_next_zero_bit(0, kvm.max_sev_asid, low)
        last = min(high, kvm.max_sev_asid) - 1
        return (first + 1, last + 1) if first <= last and first < kvm.max_sev_asid else None
    size = _search_size(b, kvm, high)
    first = find_next_zero_bit(0, size, low)
    if first > high:
        return None
    return (first, first) if size == 0 else (first, min(high, size - 1))


def sev_recycle_asids(env: KernelEnv, kvm: KvmAmd, low: int, high: int) -> bool:
    """``__sev_recycle_asids``: flush, then free every reclaimed ASID of both ranges."""
    b = env.behaviour
    reclaim = kvm.sev_reclaim_asid_bitmap or 0
    if (
        not b.asid_bitmap_real_index
        and not b.flush_only_if_reclaim_pending
        and find_next_bit(positions(reclaim), kvm.max_sev_asid, low) >= high
    ):
        return False
    if sev_flush_asids(env, kvm, low, high):
        return False
    kvm.sev_asid_bitmap = (kvm.sev_asid_bitmap or 0) ^ reclaim
    kvm.sev_reclaim_asid_bitmap = 0
    return True


def _search(env: KernelEnv, kvm: KvmAmd, low: int, high: int) -> int | None:
    """One search of the kernel's shape: the ASID found, or None when the range is exhausted."""
    b = env.behaviour
    bitmap = kvm.sev_asid_bitmap or 0
    if not b.asid_bitmap_real_index:
        pos = find_next_zero_bit(positions(bitmap), kvm.max_sev_asid, low)
        return None if pos >= high else pos + 1
    asid = find_next_zero_bit(bitmap, _search_size(b, kvm, high), low)
    return None if asid > high else asid


def sev_asid_new(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> int:
    """Allocate an ASID for ``vm`` (its type and ``es_active`` pick the range): the ASID or -errno."""
    b = env.behaviour
    low, high = asid_range(b, kvm, vm.es_active, vm.vm_type == SNP_VM)
    if b.empty_sev_range_unusable and low > high:
        return _ENOTTY
    resource = "sev_es" if vm.es_active else "sev"
    if b.misc_cgroup:
        ret, lines = env.misc.try_charge(resource, vm.cgroup)
        for line in lines:
            env.trace.dmesg(line)
        if ret:
            return ret
        vm.misc_cg = vm.cgroup
        kvm.track(vm)
    asid = _search(env, kvm, low, high)
    if asid is None:
        env.exhausted += 1
        if sev_recycle_asids(env, kvm, low, high):
            env.recycles += 1
            asid = _search(env, kvm, low, high)
        if asid is None:
            if vm.misc_cg is not None:
                for line in env.misc.uncharge(resource, vm.misc_cg):
                    env.trace.dmesg(line)
                vm.misc_cg = None
                kvm.track(vm)
            return _EBUSY
    kvm.sev_asid_bitmap = (kvm.sev_asid_bitmap or 0) | (1 << asid)
    return asid


def sev_asid_free(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """Mark ``vm.asid`` for reclaim, forget it in every CPU's ``sev_vmcbs``, uncharge."""
    kvm.sev_reclaim_asid_bitmap = (kvm.sev_reclaim_asid_bitmap or 0) | (1 << vm.asid)
    if kvm.sev_vmcbs is not None:
        index = vm.asid if env.behaviour.sev_vmcbs_clear_real_asid else vm.asid - 1
        kvm.sev_vmcbs.clear_all_cpus(index)
    if vm.misc_cg is not None:
        for line in env.misc.uncharge("sev_es" if vm.es_active else "sev", vm.misc_cg):
            env.trace.dmesg(line)
        vm.misc_cg = None
        kvm.track(vm)
