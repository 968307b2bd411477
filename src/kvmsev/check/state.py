"""Copying a host and fingerprinting its state for the explorer.

``clone`` deep-copies everything that can change and shares what cannot (the resolved
configuration, behaviour, CPUID leaf, boot features) or what does not steer any decision (guest
memory contents, the firmware's random source). ``fingerprint`` is a canonical tuple of every
piece of state that decides what can happen next: two hosts with equal fingerprints behave the
same under every sequence of entry points. Identities that are only labels are canonicalised:
a TLB entry is owned by "live vCPU i of VM v" or by "a vCPU that no longer exists". What no move
can observe is left out: an offline CPU's TLB (emptied by INIT before the CPU runs again), and
how a ``sev_vmcbs`` entry came to read what it reads. ``tests/test_check.py`` checks that a
search without these reductions reaches exactly the same fingerprints.

One abstraction is not a reduction: a CPU's non-SEV ``next_asid`` enters the fingerprint only as
"the next allocation wraps (and flushes every ASID)" or not. Between two wraps a CPU hands out
``CPUID 0x8000000A EBX - max_sev_asid - 1`` ASIDs (over 31,000 on every real part), far more
moves than any search makes, so within a search only the wrap right after an enable can happen;
states merged by the abstraction differ only in how far away a wrap is that no explored path
reaches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from kvmsev.firmware.guest import GuestContext
from kvmsev.host.host import Host
from kvmsev.kernel.misc_cgroup import MiscCg, MiscCgroup
from kvmsev.kvm.env import Garbage
from kvmsev.kvm.guest import SevVmcbs
from kvmsev.kvm.state import KvmAmd


def _copier(cls: type) -> Callable[[Any], Any]:
    """A compiled field-by-field copier for a (non-frozen, slots) dataclass: several times
    cheaper than ``copy.copy``, which goes through ``__reduce_ex__``."""
    names = [f.name for f in dataclasses.fields(cls)]
    body = "\n".join(f"    n.{name} = o.{name}" for name in names)
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec(f"def copy(o):\n    n = new(cls)\n{body}\n    return n", namespace)
    fn: Callable[[Any], Any] = namespace["copy"]
    return fn


_COPIERS: dict[type, Callable[[Any], Any]] = {}
_T = TypeVar("_T")


def _shallow(obj: _T) -> _T:
    cls = type(obj)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _copier(cls)
    result: _T = copier(obj)
    return result


def _guest(guest: GuestContext) -> GuestContext:
    copy = _shallow(guest)
    if copy.ld is not None:
        copy.ld = copy.ld.copy()
    return copy


def clone(host: Host) -> Host:
    """An independent copy of every piece of ``host`` that entry points can change.

    Shared, never changed by entry points: configuration, behaviour, CPUID leaf, boot features,
    guest memory contents, the firmware's random source, a trace that is off.
    """
    new = _shallow(host)
    new.streams = {name: stream.copy() for name, stream in host.streams.items()}
    env = new.env = _shallow(host.env)
    env.alloc = _shallow(env.alloc)
    env.alloc.live = dict(env.alloc.live)
    env.alloc.leaked = dict(env.alloc.leaked)
    env.alloc.fail_sites = set(env.alloc.fail_sites)
    _copy_psp(env)
    misc = env.misc = _shallow(env.misc)
    misc.fingerprint_cache = None
    misc.capacity = dict(misc.capacity)
    misc.in_use = set(misc.in_use)
    groups: dict[str, MiscCg] = {}
    for path, group in sorted(misc.groups.items(), key=lambda item: item[0].count("/") + (item[0] != "/")):
        g = _shallow(group)
        g.usage = dict(g.usage)
        g.max = dict(g.max)
        g.failed = set(g.failed)
        g.parent = None if group.parent is None else groups[group.parent.path]
        groups[path] = g
    misc.groups = groups
    misc.root = groups["/"]
    garbage = env.garbage = _shallow(env.garbage)
    garbage.resolved = dict(garbage.resolved)
    env.tlb = {cpu: dict(entries) for cpu, entries in env.tlb.items()}
    env.ccp = _shallow(env.ccp)
    env.ccp.log = list(env.ccp.log)
    pages = env.pages = _shallow(env.pages)
    pages.free_list = list(pages.free_list)
    pages.live = set(pages.live)
    env.breaches = list(env.breaches)
    env.unclean_teardowns = list(env.unclean_teardowns)
    env.out_of_bounds = list(env.out_of_bounds)
    if env.trace.on:  # a trace that is off is never appended to: shared
        env.trace = _shallow(env.trace)
        env.trace.events = list(env.trace.events)
    if host.kvm is not None:
        kvm = new.kvm = _shallow(host.kvm)
        kvm.fingerprint_cache = None
        kvm.params = dict(kvm.params)
        kvm.asid_generation = list(kvm.asid_generation)
        kvm.next_asid = list(kvm.next_asid)
        if kvm.sev_vmcbs is not None:
            vmcbs = kvm.sev_vmcbs = _shallow(kvm.sev_vmcbs)
            vmcbs.garbage = garbage
            vmcbs.columns = {i: dict(col) for i, col in vmcbs.columns.items()}
            vmcbs.nulled = set(vmcbs.nulled)
        vms = {}
        for name, vm in kvm.vms.items():
            v = _shallow(vm)
            v.cgroup = groups[vm.cgroup.path]
            v.misc_cg = None if vm.misc_cg is None else groups[vm.misc_cg.path]
            v.regions = list(vm.regions)
            v.vcpus = [_shallow(c) for c in vm.vcpus]
            v.gmem_prepared = set(vm.gmem_prepared)
            vms[name] = v
        kvm.vms = vms
        kvm.sev_vms = dict(kvm.sev_vms)
    return new


def _kvm_part(kvm: Any, garbage: Garbage, nr_cpus: int, nasid: int) -> tuple[Any, ...]:
    vms = []
    for name in sorted(kvm.vms):
        vm = kvm.vms[name]
        vms.append(
            (
                name,
                vm.active,
                vm.es_active,
                vm.asid,
                vm.handle,
                vm.fd,
                vm.cgroup.path,
                vm.misc_cg is not None,
                vm.pages_locked,
                vm.created_vcpus,
                vm.initialised_as_es,
                vm.enc_context_owner,
                vm.users,
                vm.closed,
                vm.dead,
                vm.vm_type,
                vm.need_init,
                vm.vmsa_features,
                vm.snp_context,
                tuple(sorted(vm.gmem_prepared)),
                tuple(
                    (
                        v.vmcb_pfn,
                        v.vmsa_pfn,
                        v.last_vmentry_cpu,
                        v.guest_state_protected,
                        v.root_loaded,
                        v.cpu,
                        v.asid_generation,
                    )
                    for v in vm.vcpus
                ),
            )
        )
    return (
        tuple(sorted(kvm.params.items())),
        kvm.npt_enabled,
        kvm.max_sev_asid,
        kvm.min_sev_asid,
        kvm.sev_asid_bitmap,
        kvm.sev_reclaim_asid_bitmap,
        kvm.sev_vmcbs_cpus,
        _vmcbs_part(kvm.sev_vmcbs, garbage, nr_cpus),
        tuple(vms),
        tuple(kvm.asid_generation),
        tuple(n > nasid - 1 for n in kvm.next_asid),
        kvm.hardware_enabled,
    )


#: an uninitialised ``sev_vmcbs`` entry the explorer has not yet chosen a value for
UNKNOWN = -1


def _vmcbs_part(
    vmcbs: SevVmcbs | None, garbage: Garbage, nr_cpus: int
) -> tuple[tuple[int, int, int], ...] | None:
    """What every CPU's ``sev_vmcbs`` would read: for each entry that does not read the arrays'
    initial content (NULL when zeroed, :data:`UNKNOWN` otherwise), ``(index, cpu, value)`` -- a
    written value, NULL (cleared by ``sev_asid_free``), or a value chosen for uninitialised memory.
    How an entry came to read NULL (never written, cleared, written 0) does not change any later
    decision, so it is not part of the state. Only touched entries are visited: a 1006-ASID part
    costs what a 2-ASID one does."""
    if vmcbs is None:
        return None
    columns, nulled = vmcbs.columns, vmcbs.nulled
    initial = 0 if vmcbs.zeroed else UNKNOWN
    touched = set(columns) | nulled
    if not vmcbs.zeroed:
        touched.update(index for _, index in garbage.resolved)
        touched.update(index for _, index in garbage.fixed)
    out: list[tuple[int, int, int]] = []
    for index in sorted(touched):
        if index >= vmcbs.entries:
            continue
        column = columns.get(index, {})
        cleared = vmcbs.zeroed or index in nulled
        for cpu in range(nr_cpus):
            value = column.get(cpu)
            if value is None:
                if cleared:
                    value = 0
                else:
                    chosen = garbage.resolved.get((cpu, index), garbage.fixed.get((cpu, index)))
                    value = UNKNOWN if chosen is None else chosen
            if value != initial:
                out.append((index, cpu, value))
    return tuple(out)


def _psp_part(psp: Any) -> tuple[Any, ...]:
    guests = tuple(
        (h, g.policy, int(g.state), g.asid, g.activation.value) for h, g in sorted(psp.guests.items())
    )
    return (
        int(psp.state),
        psp.es_initialized,
        psp.wbinvd_done,
        psp.asid_allocated,
        psp.asid_in_use,
        psp.asid_dirty,
        psp.asid_all_dirty,
        guests,
        tuple(sorted((int(c), int(st)) for c, st in psp.faults.items())),
        psp.snp_initialized,
        tuple(
            (g.gctx, int(g.state), g.asid, g.active, tuple(sorted(g.pages)))
            for g in sorted(psp.snp_guests.values(), key=lambda g: g.gctx)
        ),
    )


class Interner:
    """Numbers each distinct fingerprint share once, so that a state key is a short tuple of small
    integers: Python does not cache tuple hashes, and hashing the nested shares again for every
    transition cost more than computing them."""

    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: dict[tuple[Any, ...], int] = {}

    def __call__(self, share: tuple[Any, ...]) -> int:
        ids = self.ids
        number = ids.get(share)
        if number is None:
            number = ids[share] = len(ids)
        return number


def fingerprint(host: Host, intern: Interner | None = None) -> tuple[Any, ...]:
    """The canonical state key.

    With ``intern`` (the explorer's setting) the KVM, firmware and cgroup shares are numbered and
    the number is kept on the object: valid because the explorer never writes an object after
    fingerprinting it -- every write goes to a fresh copy whose memo is cleared.
    """
    env = host.env
    kvm = host.kvm
    kvm_part: object = None
    if kvm is not None:
        if intern is None:
            kvm_part = _kvm_part(kvm, env.garbage, env.nr_cpus, env.svm_nasid)
        else:
            if kvm.fingerprint_cache is None:
                kvm.fingerprint_cache = intern(_kvm_part(kvm, env.garbage, env.nr_cpus, env.svm_nasid))
            kvm_part = kvm.fingerprint_cache
    psp, misc = env.psp, env.misc
    if intern is None:
        psp_part: object = _psp_part(psp)
        misc_part: object = _misc_part(misc)
    else:
        if psp.fingerprint_cache is None:
            psp.fingerprint_cache = intern(_psp_part(psp))
        if misc.fingerprint_cache is None:
            misc.fingerprint_cache = intern(_misc_part(misc))
        psp_part, misc_part = psp.fingerprint_cache, misc.fingerprint_cache
    online = env.online
    return (
        kvm_part,
        psp_part,
        misc_part,
        env.ccp.initialized,
        online,
        _tlb_part(env.tlb, online, kvm) if env.tlb else (),
        tuple(env.pages.free_list),
        env.pages.next_pfn,
        bool(env.breaches),
        bool(env.unclean_teardowns),
        bool(env.out_of_bounds),
        host.crashed is not None,
        tuple(sorted((name, bool(stream.session), stream.policy) for name, stream in host.streams.items())),
    )


def _tlb_part(tlb: dict[int, dict[int, int]], online: int, kvm: KvmAmd | None) -> tuple[Any, ...]:
    """Each online CPU's cached ASIDs with their owner as "vCPU i of VM v" or "gone": serial
    numbers only tell vCPUs apart. An offline CPU's TLB is emptied before it can run again."""
    owners: dict[int, tuple[str, int]] = {}
    if kvm is not None:
        for name, vm in kvm.vms.items():
            for vcpu in vm.vcpus:
                owners[vcpu.serial] = (name, vcpu.index)
    gone = ("gone", -1)
    return tuple(
        (cpu, tuple(sorted([(asid, owners.get(serial, gone)) for asid, serial in entries.items()])))
        for cpu, entries in sorted(tlb.items())
        if entries and online >> cpu & 1
    )


def _misc_part(misc: MiscCgroup) -> tuple[Any, ...]:
    groups = (
        tuple(
            (path, tuple(sorted(g.usage.items())), tuple(sorted(g.max.items())))
            for path, g in sorted(misc.groups.items())
        )
        if misc.enabled
        else ()
    )
    return (tuple(sorted(misc.capacity.items())), groups)


def _copy_psp(env: Any) -> None:
    psp = env.psp = _shallow(env.psp)
    psp.fingerprint_cache = None
    psp.guests = {h: _guest(g) for h, g in psp.guests.items()}
    if psp.identity is not None:
        psp.identity = _shallow(psp.identity)
    psp.asid_owner = dict(psp.asid_owner)
    psp.faults = dict(psp.faults)
    psp.snp_guests = {g: _shallow_snp(c) for g, c in psp.snp_guests.items()}


def _shallow_snp(context: Any) -> Any:
    copy = _shallow(context)
    copy.pages = set(context.pages)
    return copy


def _copy_vm(new: Host, name: str, vcpus: bool) -> Any:
    assert new.kvm is not None
    kvm = new.kvm = _shallow(new.kvm)
    kvm.fingerprint_cache = None
    kvm.vms = dict(kvm.vms)
    vm = kvm.vms[name] = _shallow(kvm.vms[name])
    vm.vcpus = [_shallow(c) for c in vm.vcpus] if vcpus else list(vm.vcpus)
    vm.regions = list(vm.regions)
    vm.gmem_prepared = set(vm.gmem_prepared)
    return vm


#: moves that only change the firmware and one VM's own fields
_FIRMWARE_MOVES = frozenset(
    {"launch_start", "launch_measure", "launch_finish", "launch_update_vmsa", "fw_fault"}
)


def clone_for(host: Host, op: str, args: dict[str, Any]) -> Host:
    """A copy of ``host`` independent wherever the move ``op`` can write, sharing the rest.

    Most moves touch little: CPU hotplug changes the online mask and the CPU's SVM enable state
    (going offline, the dying CPU's WBINVD_DONE flag in the firmware; coming online, one CPU's TLB
    and its non-SEV ASID allocator); a VM entry changes one CPU's TLB, one
    ``sev_vmcbs`` column, the CPUs' non-SEV ASID allocators and one vCPU; launch
    commands change the firmware and one VM. Everything else gets the full :func:`clone`.
    ``tests/test_check.py`` checks that exploring this way gives exactly the full-copy result and
    never changes a parent state.
    """
    if host.kvm is None or op not in ("cpu_offline", "cpu_online", "vcpu_run", *_FIRMWARE_MOVES):
        return clone(host)
    new = _shallow(host)
    env = new.env = _shallow(host.env)
    if op in ("cpu_offline", "cpu_online"):
        kvm = new.kvm = _shallow(host.kvm)
        kvm.fingerprint_cache = None
        assert kvm is not None
        kvm.asid_generation = list(kvm.asid_generation)
        kvm.next_asid = list(kvm.next_asid)
        if op == "cpu_offline":
            psp = env.psp = _shallow(env.psp)
            psp.fingerprint_cache = None
        else:
            env.tlb = dict(env.tlb)
        return new
    if op in _FIRMWARE_MOVES:
        _copy_psp(env)
        if "vm" in args:
            _copy_vm(new, args["vm"], vcpus=op == "launch_update_vmsa")
        return new
    # vcpu_run
    cpu, name, index = args["cpu"], args["vm"], args["vcpu"]
    env.tlb = dict(env.tlb)
    if cpu in env.tlb:
        env.tlb[cpu] = dict(env.tlb[cpu])
    env.breaches = list(env.breaches)
    garbage = env.garbage = _shallow(env.garbage)
    garbage.resolved = dict(garbage.resolved)
    vm = _copy_vm(new, name, vcpus=False)
    vm.vcpus[index] = _shallow(vm.vcpus[index])
    assert new.kvm is not None
    kvm = new.kvm
    kvm.asid_generation = list(kvm.asid_generation)
    kvm.next_asid = list(kvm.next_asid)
    if kvm.sev_vmcbs is not None:
        vmcbs = kvm.sev_vmcbs = _shallow(kvm.sev_vmcbs)
        vmcbs.garbage = garbage
        vmcbs.columns = dict(vmcbs.columns)
        if vm.asid in vmcbs.columns:
            vmcbs.columns[vm.asid] = dict(vmcbs.columns[vm.asid])
    return new
