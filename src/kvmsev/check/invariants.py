"""SEV isolation and correctness invariants, written once as named predicates over a host.

Each predicate returns the list of ways the property is broken right now (empty: it holds).
Scenario runs check all of them after every step; the unit tests and the explorer use the
same functions. Each has a one-line statement and the source the property comes from.

The predicates that look at VMs walk only those with SEV state (``KvmAmd.sev_guests``): a VM
without an ASID, a firmware handle, a misc charge or a mirror owner has nothing any of them
checks. A check then costs the host's SEV VMs, which ASIDs bound, however many plain VMs a
scenario creates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kvmsev.errors import InputError
from kvmsev.firmware.guest import Activation
from kvmsev.host.host import Host
from kvmsev.hw import cpuid
from kvmsev.kernel.bitops import set_bits
from kvmsev.kvm.asid import asid_range
from kvmsev.kvm.cpuid import supported_8000001f
from kvmsev.kvm.vm_types import SNP_VM

Event = TypeVar("Event")


@dataclass(frozen=True, slots=True)
class History(Generic[Event]):
    """An invariant whose details are a history: the kernel environment logs each event that
    breaks it, and the log is kept for good. A run that checks after every step asks only for
    the events since its last check, so it describes each event once however long it runs."""

    events: Callable[[Host], Sequence[Event]]
    describe: Callable[[Event], str]

    def count(self, host: Host) -> int:
        return len(self.events(host))

    def since(self, host: Host, start: int = 0) -> list[str]:
        """The details of the events from the ``start``-th on (all of them by default)."""
        return [self.describe(event) for event in self.events(host)[start:]]


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    statement: str
    source: str
    check: Callable[[Host], list[str]]
    #: where the events are logged, for an invariant whose details are a history
    history: History[Any] | None = None


def _live_asids(host: Host, mirrors: bool = True) -> dict[int, list[str]]:
    """Active VMs by ASID (with or without the mirrors that share an owner's ASID)."""
    owners: dict[int, list[str]] = {}
    if host.kvm is not None:
        for vm in host.kvm.sev_guests():
            if vm.active and (mirrors or vm.enc_context_owner is None):
                owners.setdefault(vm.asid, []).append(vm.name)
    return owners


def asid_single_owner(host: Host) -> list[str]:
    out = [
        f"ASID {a} held by VMs {', '.join(names)}"
        for a, names in _live_asids(host, mirrors=False).items()
        if len(names) > 1
    ]
    fw: dict[int, list[int]] = {}
    for guest in host.env.psp.guests.values():
        if guest.activation is not Activation.INACTIVE:
            fw.setdefault(guest.asid, []).append(guest.handle)
    out += [f"ASID {a} bound to firmware handles {handles}" for a, handles in fw.items() if len(handles) > 1]
    return out


def no_reuse_before_flush(host: Host) -> list[str]:
    """A live VM's ASID must not be one KVM still holds for reclaim (freed, not yet flushed)."""
    kvm = host.kvm
    if kvm is None or kvm.sev_reclaim_asid_bitmap is None:
        return []
    return [
        f"VM {', '.join(names)} holds ASID {a}, which awaits WBINVD + DF_FLUSH"
        for a, names in _live_asids(host).items()
        if kvm.sev_reclaim_asid_bitmap >> a & 1
    ]


def asid_ranges(host: Host) -> list[str]:
    kvm = host.kvm
    if kvm is None:
        return []
    out = []
    split = host.env.behaviour.split_es_snp_ranges
    for vm in kvm.sev_guests():
        if not vm.active:
            continue
        if vm.asid == 0:
            out.append(f"VM {vm.name} holds ASID 0, the host's own")
            continue
        if vm.es_active:
            snp = vm.vm_type == SNP_VM
            low, high = asid_range(host.env.behaviour, kvm, True, snp) if split else (1, kvm.min_sev_asid - 1)
            if not low <= vm.asid <= high:
                kind = "SNP" if snp else "SEV-ES"
                out.append(f"{kind} VM {vm.name} holds ASID {vm.asid}, outside {low}..{high}")
        if not vm.es_active and not kvm.min_sev_asid <= vm.asid <= kvm.max_sev_asid:
            out.append(
                f"SEV VM {vm.name} holds ASID {vm.asid}, outside {kvm.min_sev_asid}..{kvm.max_sev_asid}"
            )
    return out


def asid_accounting(host: Host) -> list[str]:
    """Every ASID is exactly one of free / in use / awaiting reclaim, and the firmware agrees."""
    kvm = host.kvm
    if kvm is None or kvm.sev_asid_bitmap is None:
        return []
    out = []
    reclaim = kvm.sev_reclaim_asid_bitmap or 0
    if reclaim & ~kvm.sev_asid_bitmap:
        out.append("an ASID awaits reclaim without being marked allocated")
    in_use = kvm.sev_asid_bitmap & ~reclaim
    live = _live_asids(host)
    expected = 0
    for asid in live:
        expected |= 1 << asid
    if in_use != expected:
        extra = set_bits(in_use & ~expected)
        missing = set_bits(expected & ~in_use)
        out.append(
            f"KVM bitmap disagrees with live VMs: allocated without VM {extra}, VM without bit {missing}"
        )
    psp = host.env.psp
    for asid in set_bits(psp.asid_allocated | psp.asid_in_use):
        if asid and asid not in live:
            out.append(f"firmware has ASID {asid} bound but no live VM holds it")
    return out


def mirror_shares_owner(host: Host) -> list[str]:
    """A mirror VM runs on its owner's ASID, and the owner stays alive (and active) while it does."""
    if host.kvm is None:
        return []
    out = []
    for vm in host.kvm.sev_guests():
        if vm.enc_context_owner is None:
            continue
        owner = host.kvm.vms.get(vm.enc_context_owner)
        if owner is None or not owner.active:
            out.append(f"mirror {vm.name} outlives its owner {vm.enc_context_owner}")
        elif owner.asid != vm.asid:
            out.append(f"mirror {vm.name} holds ASID {vm.asid}, its owner {owner.name} ASID {owner.asid}")
    return out


def _describe_breach(breach: tuple[int, int, int, int]) -> str:
    cpu, asid, old, new = breach
    return f"CPU {cpu} entered ASID {asid} for vCPU #{new} without a flush over entries of vCPU #{old}"


#: No VMRUN kept TLB entries another vCPU (or guest) made under the same ASID.
TLB_BREACHES = History(lambda host: host.env.breaches, _describe_breach)


def guest_kind(host: Host) -> list[str]:
    """``es_active`` says what userspace asked for: ES_INIT makes an SEV-ES guest, INIT an SEV one."""
    if host.kvm is None:
        return []
    return [
        f"VM {vm.name} was initialised with {'KVM_SEV_ES_INIT' if vm.initialised_as_es else 'KVM_SEV_INIT'} "
        f"but KVM has es_active={int(vm.es_active)}"
        for vm in host.kvm.sev_guests()
        if vm.active and vm.initialised_as_es is not None and vm.es_active != vm.initialised_as_es
    ]


def es_vcpus_have_vmsa(host: Host) -> list[str]:
    if host.kvm is None:
        return []
    return [
        f"vCPU {vcpu.index} of SEV-ES VM {vm.name} has no VMSA page"
        for vm in host.kvm.sev_guests()
        if vm.active and vm.es_active
        for vcpu in vm.vcpus
        if vcpu.vmsa_pfn is None
    ]


def no_leaked_context(host: Host) -> list[str]:
    held = {vm.handle for vm in host.kvm.sev_guests()} if host.kvm is not None else set()
    return [
        f"firmware guest context {handle} belongs to no VM"
        for handle in host.env.psp.guests
        if handle not in held
    ]


def misc_usage(host: Host) -> list[str]:
    misc = host.env.misc
    if not misc.enabled or host.kvm is None or not host.env.behaviour.misc_cgroup:
        return []
    # a charge counts in its cgroup and every ancestor: one walk up from each charged VM, so the
    # check costs the charged VMs' depth plus the cgroups in use, not every cgroup times every VM
    charged: dict[tuple[str, str], int] = {}
    for vm in host.kvm.sev_guests():
        if vm.misc_cg is None:
            continue
        resource = "sev_es" if vm.es_active else "sev"
        for path in _ancestry(vm.misc_cg.path):
            charged[path, resource] = charged.get((path, resource), 0) + 1
    # a cgroup with no usage and no charged VM agrees: only those with either can disagree
    out = []
    for path in sorted(misc.in_use | {path for path, _ in charged}):
        group = misc.groups[path]
        for resource in ("sev", "sev_es"):
            count = charged.get((path, resource), 0)
            if group.usage[resource] != count:
                out.append(
                    f"misc {resource} usage in {path} is {group.usage[resource]} but {count} VMs charged"
                )
    return out


def _ancestry(path: str) -> list[str]:
    """``/a/b`` and every cgroup above it: ``/``, ``/a``, ``/a/b``."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def cpuid_only_supported(host: Host) -> list[str]:
    """KVM_GET_SUPPORTED_CPUID advertises SEV / SEV-ES / SEV-SNP only when KVM supports them."""
    kvm = host.kvm
    if kvm is None:
        return []
    leaf = supported_8000001f(host.env, kvm)
    out = []
    if leaf.eax & cpuid.SEV and not kvm.sev_enabled:
        out.append("CPUID 0x8000001F advertises SEV while KVM has SEV off")
    if leaf.eax & cpuid.SEV_ES and not kvm.sev_es_enabled:
        out.append("CPUID 0x8000001F advertises SEV-ES while KVM has SEV-ES off")
    snp_on = bool(kvm.params.get("sev_snp", False))
    extra = leaf.eax & (cpuid.SME | cpuid.VM_PAGE_FLUSH | (0 if snp_on else cpuid.SEV_SNP))
    if extra:
        out.append(f"CPUID 0x8000001F advertises host-only bits {extra:#x}")
    return out


def sev_preconditions(host: Host) -> list[str]:
    """SEV enabled implies NPT, ASIDs and SEV firmware."""
    kvm = host.kvm
    if kvm is None or not kvm.sev_enabled:
        return []
    out = []
    if not kvm.npt_enabled:
        out.append("SEV enabled without NPT")
    if not kvm.max_sev_asid:
        out.append("SEV enabled without ASIDs")
    if not host.env.psp.present:
        out.append("SEV enabled without SEV firmware")
    return out


#: Unloading kvm_amd freed everything it allocated and issued no failing firmware command.
UNCLEAN_TEARDOWNS = History(lambda host: host.env.unclean_teardowns, str)

#: The kernel, and the firmware on its behalf, write only inside the pages and buffers they were
#: given.
OUT_OF_BOUNDS_WRITES = History(lambda host: host.env.out_of_bounds, str)


def no_oops(host: Host) -> list[str]:
    return [] if host.crashed is None else [host.crashed]


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "asid_single_owner",
        "An ASID is bound to at most one guest (VM, not counting its mirrors, and firmware context).",
        "firmware ACTIVATE ASID_OWNED; sev.c sev_asid_new",
        asid_single_owner,
    ),
    Invariant(
        "no_reuse_before_flush",
        "A freed ASID is not bound again before WBINVD on all CPUs and a successful DF_FLUSH.",
        "sev.c __sev_recycle_asids; firmware DEACTIVATE/DF_FLUSH",
        no_reuse_before_flush,
    ),
    Invariant(
        "asid_ranges",
        "No guest holds ASID 0; SEV-ES guests hold ASIDs below min_sev_asid, SEV guests "
        "min_sev_asid..max_sev_asid.",
        "CPUID 0x8000001F EDX; sev.c sev_asid_new",
        asid_ranges,
    ),
    Invariant(
        "asid_accounting",
        "Every ASID is exactly one of free / in use / awaiting reclaim, in agreement with the firmware.",
        "sev.c sev_asid_bitmap and sev_reclaim_asid_bitmap",
        asid_accounting,
    ),
    Invariant(
        "mirror_shares_owner",
        "A mirror VM shares its owner's ASID, and the owner lives as long as a mirror does.",
        "54526d1fd593; sev.c svm_vm_copy_asid_from, sev_vm_destroy",
        mirror_shares_owner,
    ),
    Invariant(
        "tlb_isolation",
        "A vCPU never enters a guest over TLB entries another VMCB made under its ASID without a flush.",
        "sev.c pre_sev_run; 3b1902b87bf1, 179c6c27bf48",
        TLB_BREACHES.since,
        TLB_BREACHES,
    ),
    Invariant(
        "guest_kind",
        "A guest is SEV-ES exactly when userspace initialised it with KVM_SEV_ES_INIT.",
        "9fa1521daafb; sev.c sev_guest_init, sev_es_guest_init",
        guest_kind,
    ),
    Invariant(
        "es_vcpus_have_vmsa",
        "Every vCPU of an SEV-ES guest has a VMSA page (vCPUs exist only after INIT decided the kind).",
        "8727906fde6e; svm.c svm_create_vcpu",
        es_vcpus_have_vmsa,
    ),
    Invariant(
        "no_leaked_context",
        "Every firmware guest context belongs to a live VM: none outlives the VM or a failed launch.",
        "934002cd660b; sev.c sev_launch_start, sev_unbind_asid",
        no_leaked_context,
    ),
    Invariant(
        "misc_usage",
        "Each misc cgroup's sev / sev_es usage counts the SEV / SEV-ES VMs charged in it and below.",
        "7aef27f0b2a8; kernel/cgroup/misc.c",
        misc_usage,
    ),
    Invariant(
        "cpuid_only_supported",
        "KVM never advertises a CPUID 0x8000001F bit it does not support.",
        "d9db0fd6c5c9",
        cpuid_only_supported,
    ),
    Invariant(
        "sev_preconditions",
        "SEV enabled implies NPT, SEV ASIDs and SEV firmware.",
        "fa13680f5668; sev_hardware_setup",
        sev_preconditions,
    ),
    Invariant(
        "teardown_clean",
        "Unloading kvm_amd leaves no allocation behind and issues no firmware command that fails.",
        "f31b88b35f90, 469bb32b68d5; sev_hardware_teardown",
        UNCLEAN_TEARDOWNS.since,
        UNCLEAN_TEARDOWNS,
    ),
    Invariant(
        "writes_in_bounds",
        "The kernel and the firmware on its behalf write only inside the pages and buffers meant for it.",
        "78ee2d50185a; sev.c sev_dbg_crypt, __sev_dbg_encrypt_user",
        OUT_OF_BOUNDS_WRITES.since,
        OUT_OF_BOUNDS_WRITES,
    ),
    Invariant(
        "no_oops",
        "The kernel never dereferences NULL or otherwise crashes.",
        "model: KernelOops raised where the real kernel would crash",
        no_oops,
    ),
)

BY_NAME: dict[str, Invariant] = {i.name: i for i in INVARIANTS}


#: every invariant's name, in the order they are checked and reported
ALL: tuple[str, ...] = tuple(BY_NAME)


def select(only: Sequence[str] = (), skip: Sequence[str] = ()) -> tuple[str, ...]:
    """The invariants ``--invariant`` (only these) and ``--skip-invariant`` (all but these) leave
    to check, in the usual order; an unknown name is an input error."""
    for option, names in (("--invariant", only), ("--skip-invariant", skip)):
        for name in names:
            if name not in BY_NAME:
                raise InputError(option, f"unknown invariant {name!r} (known: {', '.join(ALL)})")
    chosen = tuple(n for n in ALL if (not only or n in only) and n not in skip)
    if not chosen:
        raise InputError("--skip-invariant", "leaves no invariant to check")
    return chosen


def violations(host: Host, names: Sequence[str] = ALL) -> dict[str, list[str]]:
    """Every broken invariant among ``names`` with its details."""
    out: dict[str, list[str]] = {}
    for name in names:
        details = BY_NAME[name].check(host)
        if details:
            out[name] = details
    return out


def new_violations(host: Host, names: Sequence[str], marks: dict[str, int]) -> dict[str, list[str]]:
    """:func:`violations` for a run that checks after every step: a history invariant describes
    only the events after ``marks[name]`` (those before were described already), and ``marks``
    moves past them. A long run then pays for each event once, not once per later step."""
    out: dict[str, list[str]] = {}
    for name in names:
        invariant = BY_NAME[name]
        if invariant.history is None:
            details = invariant.check(host)
        else:
            details = invariant.history.since(host, marks.get(name, 0))
            marks[name] = invariant.history.count(host)
        if details:
            out[name] = details
    return out
