"""``kvm_amd``'s module-lifetime state that SEV setup and teardown touch.

Bitmaps are Python ints used as bit sets (bit *p* is bitmap position *p*, i.e. ASID ``p + 1``
in 5.12/5.13's 0-based indexing); ``None`` stands for a NULL pointer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.kernel.params import ParamDecl
from kvmsev.kvm.guest import SevVmcbs, Vm


@dataclass(slots=True)
class KvmAmd:
    """The loaded module's globals (svm.c / sev.c ``static`` variables)."""

    decls: list[ParamDecl]
    params: dict[str, int | bool]
    npt_enabled: bool = True
    sev_enc_bit: int = 0
    max_sev_asid: int = 0
    min_sev_asid: int = 0
    #: d7fc7d9833f6's bounds (6.18; 0 until setup reaches SEV-ES), see :func:`kvmsev.kvm.asid.asid_range`
    min_sev_es_asid: int = 0
    max_sev_es_asid: int = 0
    min_snp_asid: int = 0
    max_snp_asid: int = 0
    sev_asid_bitmap: int | None = None
    sev_reclaim_asid_bitmap: int | None = None
    #: every CPU's ``sd->sev_vmcbs``; ``sev_vmcbs_cpus`` counts the CPUs that have one
    sev_vmcbs: SevVmcbs | None = None
    sev_vmcbs_cpus: int = 0
    vms: dict[str, Vm] = field(default_factory=dict)
    #: the model's own index, not a kernel structure: the VMs of :attr:`vms` that have SEV state
    #: (:func:`has_sev_state`), by name, each with its :attr:`Vm.serial`, in creation order. The
    #: invariants walk it instead of every VM, so checking a host after a step costs its SEV VMs
    #: (bounded by ASIDs) rather than every VM ever created. :meth:`track` keeps it; the tests
    #: hold it to a walk of every VM in every state they reach.
    sev_vms: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    #: VMs created so far: the next :attr:`Vm.serial`
    vms_created: int = 0
    #: the checker's number for this object's share of a state fingerprint (never compared)
    fingerprint_cache: int | None = field(default=None, compare=False, repr=False)
    #: ``kvm_cpu_caps[CPUID_8000_001F_EAX]`` where the behaviour has that word (None before it).
    cpu_caps_8000001f_eax: int | None = None
    #: per-CPU ``svm_cpu_data`` ASID fields for non-SEV guests, by CPU: ``asid_generation`` and
    #: ``next_asid`` (:mod:`kvmsev.kvm.hardware`); ``hardware_enabled`` is the mask of CPUs on
    #: which ``svm_hardware_enable`` ran since virtualization was last turned off there
    asid_generation: list[int] = field(default_factory=list)
    next_asid: list[int] = field(default_factory=list)
    hardware_enabled: int = 0

    @property
    def sev_enabled(self) -> bool:
        """The final value of the ``sev`` variable (absent parameter: compiled-in ``false``)."""
        return bool(self.params.get("sev", False))

    @property
    def sev_es_enabled(self) -> bool:
        return bool(self.params.get("sev_es", False))

    def track(self, vm: Vm) -> None:
        """Keep :attr:`sev_vms` true for ``vm`` after a change to its SEV state: listed exactly
        while it is one of :attr:`vms` and has SEV state, and in creation order."""
        if self.vms.get(vm.name) is not vm or not has_sev_state(vm):
            self.sev_vms.pop(vm.name, None)
            return
        if vm.name in self.sev_vms:
            return
        last = next(reversed(self.sev_vms.values()), 0)
        self.sev_vms[vm.name] = vm.serial
        if vm.serial < last:  # an older VM became SEV after a newer one: restore creation order
            self.sev_vms = dict(sorted(self.sev_vms.items(), key=lambda item: item[1]))

    def sev_guests(self) -> list[Vm]:
        """The VMs with SEV state, in creation order (the order of :attr:`vms`)."""
        return [self.vms[name] for name in self.sev_vms]

    def sysfs(self) -> dict[str, str]:
        """``/sys/module/kvm_amd/parameters/*`` texts (without trailing newline)."""
        return {d.name: d.render(self.params[d.name]) for d in self.decls}


def has_sev_state(vm: Vm) -> bool:
    """Whether ``vm`` has anything an SEV invariant looks at: an ASID (``sev->active``), a
    firmware handle, a misc cgroup charge or a mirror's owner. A VM without any of these is a
    plain VM to every invariant."""
    return vm.active or vm.handle != 0 or vm.misc_cg is not None or vm.enc_context_owner is not None
