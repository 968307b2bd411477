"""Per-VM and per-vCPU state that KVM keeps for SEV guests (``struct kvm_sev_info``,
``struct vcpu_svm``), plus the per-CPU VMCB tracking array.

``SevVmcbs`` stands for every CPU's ``sd->sev_vmcbs`` at once, stored by ASID index so that
``sev_asid_free()``'s "for every possible CPU, clear entry i" is one operation whatever the CPU
count. Entries never written read as NULL when the arrays were zeroed (kcalloc, 3b1902b87bf1)
and as the *unknown* initial content otherwise (kmalloc_array): ``garbage`` supplies it, from a
seed or from values the scenario fixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kvmsev.kernel.misc_cgroup import MiscCg
from kvmsev.kernel.usermem import AddressSpace


@dataclass(slots=True)
class SevVmcbs:
    entries: int
    zeroed: bool
    garbage: Callable[[int, int], int]
    columns: dict[int, dict[int, int]] = field(default_factory=dict)
    nulled: set[int] = field(default_factory=set)

    def get(self, cpu: int, index: int) -> int:
        column = self.columns.get(index)
        if column is not None:
            value = column.get(cpu)
            if value is not None:
                return value
        if self.zeroed or index in self.nulled:
            return 0
        return self.garbage(cpu, index)

    def set(self, cpu: int, index: int, value: int) -> None:
        column = self.columns.get(index)
        if column is None:
            column = self.columns[index] = {}
        column[cpu] = value

    def clear_all_cpus(self, index: int) -> None:
        """``for_each_possible_cpu(cpu) sd->sev_vmcbs[index] = NULL``."""
        self.columns.pop(index, None)
        self.nulled.add(index)

    def written(self) -> dict[int, dict[int, int]]:
        """cpu -> {index: value} for every entry KVM has written (non-NULL only)."""
        out: dict[int, dict[int, int]] = {}
        for index, column in sorted(self.columns.items()):
            for cpu, value in column.items():
                if value:
                    out.setdefault(cpu, {})[index] = value
        return out


@dataclass(slots=True)
class EncRegion:
    uaddr: int
    size: int
    npages: int


@dataclass(slots=True)
class Vcpu:
    index: int
    serial: int
    vmcb_pfn: int
    vmcb: int
    vmsa_pfn: int | None
    last_vmentry_cpu: int
    guest_state_protected: bool = False
    #: ``VALID_PAGE(vcpu->arch.mmu->root_hpa)``: the MMU root is loaded. A new vCPU has none, so
    #: its first KVM_RUN loads one (``kvm_mmu_load``), which flushes the current ASID.
    root_loaded: bool = False
    #: the CPU the vCPU (5.13: its current VMCB) last ran on, -1 before the first run
    #: (``vcpu->cpu`` / ``svm->current_vmcb->cpu``); a change resets ``asid_generation``
    cpu: int = -1
    #: the per-CPU ASID generation this vCPU's non-SEV ASID belongs to (0: none)
    asid_generation: int = 0
    #: KVM_SET_GUEST_DEBUG's ``control`` while enabled (``vcpu->guest_debug``), and the DR7 it
    #: gave for hardware breakpoints (``guest_debug_dr7``). The debug state below only steers
    #: the debug ioctls and VMSA sync, which the checker does not drive: it stays out of the
    #: fingerprint
    guest_debug: int = 0
    guest_debug_dr7: int = 0
    #: the guest's DR7 (``vcpu->arch.dr7``) and the VMCB's ``save.dr7``, which
    #: ``sev_es_sync_vmsa`` checks; both DR7_FIXED_1 after ``kvm_vcpu_reset``
    dr7: int = 0x400
    save_dr7: int = 0x400


@dataclass(slots=True)
class Vm:
    """One KVM VM: ``struct kvm`` with its ``kvm_sev_info`` and the owning process's memory."""

    name: str
    memory: AddressSpace
    cgroup: MiscCg
    active: bool = False
    es_active: bool = False
    asid: int = 0
    handle: int = 0
    fd: int = 0
    misc_cg: MiscCg | None = None
    pages_locked: int = 0
    regions: list[EncRegion] = field(default_factory=list)
    vcpus: list[Vcpu] = field(default_factory=list)
    created_vcpus: int = 0
    #: the VMM's side, not the kernel's: whether the KVM_SEV_INIT / KVM_SEV_ES_INIT that made the
    #: VM an SEV guest was ES_INIT (None before one succeeds). The kernel keeps no such record;
    #: the invariants compare ``es_active`` against it.
    initialised_as_es: bool | None = None
    #: ``sev->enc_context_owner``: the VM whose ASID this mirror shares (5.13), by name
    enc_context_owner: str | None = None
    #: ``kvm->users_count``: the VM fd's reference plus one per mirror of it (``kvm_get_kvm``)
    users: int = 1
    #: the VM fd was closed but a mirror still holds the VM (it is destroyed with the last user)
    closed: bool = False
    #: ``kvm->arch.vm_type`` (KVM_CREATE_VM's argument, 6.10: 0 default, 2 SEV, 3 SEV-ES)
    vm_type: int = 0
    #: ``sev->need_init``: an SEV-typed VM before KVM_SEV_INIT2 (KVM_RUN -EINVAL)
    need_init: bool = False
    #: ``sev->vmsa_features`` (6.10): the SEV features INIT2 asked for (DebugSwap: 0x20)
    vmsa_features: int = 0
    #: ``sev->snp_context``: the firmware's guest context of an SNP guest (0: none yet)
    snp_context: int = 0
    #: ``sev->have_run_cpus`` (6f38f8c57464, 6.17): the CPUs ``pre_sev_run`` entered this VM on,
    #: never cleared; a migration destination and a mirror start with their own, empty mask. Only
    #: UNREG_REGION reads it, which the checker does not drive: it stays out of the fingerprint
    have_run_cpus: int = 0
    #: ``sev->snp_certs_enabled`` (7.0): KVM_SEV_SNP_ENABLE_REQ_CERTS was issued, so extended
    #: guest requests exit to userspace for certificates (which the model does not run; out of
    #: the fingerprint like the debug state)
    snp_certs_enabled: bool = False
    #: guest_memfd pages already prepared (populated) for the guest, by GFN
    gmem_prepared: set[int] = field(default_factory=set)
    #: ``kvm_vm_dead()``: the VM's context moved away (KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM, 5.16);
    #: every later VM or vCPU ioctl on it fails -EIO
    dead: bool = False
    #: the guest owner's side, not the kernel's: the TEK and TIK of the launch session (zero
    #: without one), which its LAUNCH_SECRET packets use
    owner_keys: tuple[bytes, bytes] = (bytes(16), bytes(16))
    #: the model's label, not the kernel's: this VM's place in creation order (1 for the first
    #: VM of a module load), which keeps :attr:`KvmAmd.sev_vms` in the order of ``vms``
    serial: int = 0
