"""Copying a host and fingerprinting its state for the explorer.

``clone`` deep-copies everything that can change and shares what cannot (the resolved
configuration, behaviour, CPUID leaf, boot features) or what does not steer any decision (guest
memory contents, the firmware's random source). ``fingerprint`` is a canonical tuple of every
piece of state that decides what can happen next: two hosts with equal fingerprints behave the
same under every sequence of entry points. Identities that are only labels are canonicalised:
a TLB entry is owned by "live vCPU i of VM v" or by "a vCPU that no longer exists".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from kvmsev.firmware.guest import GuestContext
from kvmsev.host.host import Host
from kvmsev.kernel.misc_cgroup import MiscCg


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
    env = new.env = _shallow(host.env)
    env.alloc = _shallow(env.alloc)
    env.alloc.live = dict(env.alloc.live)
    env.alloc.fail_sites = set(env.alloc.fail_sites)
    psp = env.psp = _shallow(env.psp)
    psp.fingerprint_cache = None
    psp.guests = {h: _guest(g) for h, g in psp.guests.items()}
    psp.asid_owner = dict(psp.asid_owner)
    psp.faults = dict(psp.faults)
    misc = env.misc = _shallow(env.misc)
    misc.capacity = dict(misc.capacity)
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
    pages = env.pages = _shallow(env.pages)
    pages.free_list = list(pages.free_list)
    pages.live = set(pages.live)
    env.breaches = list(env.breaches)
    env.unclean_teardowns = list(env.unclean_teardowns)
    if not env.trace.on:
        env.trace = env.trace  # off: nothing is ever appended, sharing is safe
    else:
        env.trace = _shallow(env.trace)
        env.trace.events = list(env.trace.events)
    if host.kvm is not None:
        kvm = new.kvm = _shallow(host.kvm)
        kvm.fingerprint_cache = None
        kvm.params = dict(kvm.params)
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
            vms[name] = v
        kvm.vms = vms
    return new


def _kvm_part(kvm: Any) -> tuple[Any, ...]:
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
                tuple(
                    (v.vmcb_pfn, v.vmsa_pfn, v.last_vmentry_cpu, v.guest_state_protected) for v in vm.vcpus
                ),
            )
        )
    vmcbs = kvm.sev_vmcbs
    return (
        tuple(sorted(kvm.params.items())),
        kvm.npt_enabled,
        kvm.max_sev_asid,
        kvm.min_sev_asid,
        kvm.sev_asid_bitmap,
        kvm.sev_reclaim_asid_bitmap,
        kvm.sev_vmcbs_cpus,
        None
        if vmcbs is None
        else (
            vmcbs.zeroed,
            tuple(sorted((i, tuple(sorted(col.items()))) for i, col in vmcbs.columns.items())),
            tuple(sorted(vmcbs.nulled)),
        ),
        tuple(vms),
    )


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
    )


def fingerprint(host: Host, memo: bool = False) -> tuple[Any, ...]:
    """The canonical state key. ``memo`` (the explorer's setting) keeps each KVM and firmware
    object's share on the object: valid because the explorer never writes an object after
    fingerprinting it -- every write goes to a fresh copy whose memo is cleared."""
    env = host.env
    kvm = host.kvm
    owners: dict[int, tuple[str, int]] = {}
    kvm_part: tuple[Any, ...] = ()
    if kvm is not None:
        for name, vm in kvm.vms.items():
            for vcpu in vm.vcpus:
                owners[vcpu.serial] = (name, vcpu.index)
        cached = kvm.fingerprint_cache if memo else None
        kvm_part = cached if cached is not None else _kvm_part(kvm)
        if memo:
            kvm.fingerprint_cache = kvm_part
    psp = env.psp
    cached = psp.fingerprint_cache if memo else None
    psp_part = cached if cached is not None else _psp_part(psp)
    if memo:
        psp.fingerprint_cache = psp_part
    tlb = tuple(
        (cpu, tuple(sorted((asid, owners.get(serial, ("gone", -1))) for asid, serial in entries.items())))
        for cpu, entries in sorted(env.tlb.items())
    )
    misc = (
        tuple(
            (path, tuple(sorted(g.usage.items())), tuple(sorted(g.max.items())))
            for path, g in sorted(env.misc.groups.items())
        )
        if env.misc.enabled
        else ()
    )
    return (
        kvm is not None,
        kvm_part,
        psp_part,
        env.ccp.initialized,
        env.online,
        tlb,
        tuple(env.pages.free_list),
        env.pages.next_pfn,
        tuple(sorted(env.garbage.resolved.items())),
        tuple(sorted(env.misc.capacity.items())),
        misc,
        len(env.breaches) > 0,
        len(env.unclean_teardowns) > 0,
        host.crashed is not None,
    )


def _copy_psp(env: Any) -> None:
    psp = env.psp = _shallow(env.psp)
    psp.fingerprint_cache = None
    psp.guests = {h: _guest(g) for h, g in psp.guests.items()}
    psp.asid_owner = dict(psp.asid_owner)
    psp.faults = dict(psp.faults)


def _copy_vm(new: Host, name: str, vcpus: bool) -> Any:
    assert new.kvm is not None
    kvm = new.kvm = _shallow(new.kvm)
    kvm.fingerprint_cache = None
    kvm.vms = dict(kvm.vms)
    vm = kvm.vms[name] = _shallow(kvm.vms[name])
    vm.vcpus = [_shallow(c) for c in vm.vcpus] if vcpus else list(vm.vcpus)
    vm.regions = list(vm.regions)
    return vm


#: moves that only change the firmware and one VM's own fields
_FIRMWARE_MOVES = frozenset(
    {"launch_start", "launch_measure", "launch_finish", "launch_update_vmsa", "fw_fault"}
)


def clone_for(host: Host, op: str, args: dict[str, Any]) -> Host:
    """A copy of ``host`` independent wherever the move ``op`` can write, sharing the rest.

    Most moves touch little: CPU hotplug changes the online mask (and, coming online, one CPU's
    TLB); a VM entry changes one CPU's TLB, one ``sev_vmcbs`` column and one vCPU; launch
    commands change the firmware and one VM. Everything else gets the full :func:`clone`.
    ``tests/test_check.py`` checks that exploring this way gives exactly the full-copy result and
    never changes a parent state.
    """
    if host.kvm is None or op not in ("cpu_offline", "cpu_online", "vcpu_run", *_FIRMWARE_MOVES):
        return clone(host)
    new = _shallow(host)
    env = new.env = _shallow(host.env)
    if op in ("cpu_offline", "cpu_online"):
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
    kvm = new.kvm
    assert kvm is not None
    if kvm.sev_vmcbs is not None:
        vmcbs = kvm.sev_vmcbs = _shallow(kvm.sev_vmcbs)
        vmcbs.garbage = garbage
        vmcbs.columns = dict(vmcbs.columns)
        if vm.asid in vmcbs.columns:
            vmcbs.columns[vm.asid] = dict(vmcbs.columns[vm.asid])
    return new
