"""VMs, vCPUs and VM entry for SEV guests: create, run on a physical CPU, destroy.

VM entry (``pre_svm_run`` -> ``pre_sev_run``, 5.11-5.13): the vCPU runs with its VM's ASID; no
TLB flush is requested only when this CPU's ``sev_vmcbs[asid]`` already points at this vCPU's
VMCB *and* the vCPU's ``last_vmentry_cpu`` is this CPU. Otherwise KVM records the VMCB there
and sets ``tlb_ctl = TLB_CONTROL_FLUSH_ASID`` for this one VMRUN. ``last_vmentry_cpu`` is
written after the run (``vcpu_enter_guest``), so the test always sees the previous entry's CPU;
it starts at 0 in 5.12/5.13 (zeroed vCPU allocation) and at -1 from 5.14 ("KVM: x86: Alert
userspace that KVM_SET_CPUID{,2} after KVM_RUN is broken").

VMCB and VMSA pages come from the page allocator in ``svm_create_vcpu`` order (VMCB, then the
VMSA of an SEV-ES guest) and go back on destroy (VMSA, then VMCB), so addresses get reused.

``sev_vm_destroy`` runs before the vCPUs are freed (``kvm_arch_destroy_vm``): WBINVD on all
CPUs, unpin leftover regions, DEACTIVATE + DECOMMISSION, free the ASID for reclaim.

The TLB model: per CPU, which vCPU (by a serial number unique over the host's life, so a reused
VMCB address is still a different vCPU) may have entries cached under each ASID. VMRUN with a
flush replaces them; VMRUN without one keeps what was there -- a stale entry of another vCPU
or guest is recorded as an isolation breach for the invariants to report.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmsev.kernel.misc_cgroup import MiscCg
from kvmsev.kernel.pages import page_address
from kvmsev.kernel.usermem import AddressSpace
from kvmsev.kvm.asid import sev_asid_free
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vcpu, Vm
from kvmsev.kvm.ioctl import sev_unbind_asid, sev_unpin_memory
from kvmsev.kvm.state import KvmAmd


@dataclass(frozen=True, slots=True)
class RunResult:
    """One KVM_RUN: whether VMRUN entered the guest, and whether the TLB was flushed."""

    entered: bool
    tlb_flush: bool
    stale_from: int | None = None

    @property
    def exit_reason(self) -> str | None:
        """KVM_RUN's exit reason when VMRUN itself failed; guest execution is not modeled."""
        return None if self.entered else "KVM_EXIT_FAIL_ENTRY"


def vm_create(kvm: KvmAmd, name: str, memory: AddressSpace, cgroup: MiscCg) -> Vm:
    """KVM_CREATE_VM: nothing SEV-specific happens yet."""
    vm = Vm(name, memory, cgroup)
    kvm.vms[name] = vm
    return vm


def vcpu_create(env: KernelEnv, vm: Vm) -> Vcpu:
    """KVM_CREATE_VCPU (``svm_create_vcpu``): VMCB page, then a VMSA page for SEV-ES guests."""
    vm.created_vcpus += 1
    vmcb_pfn = env.pages.alloc()
    vmsa_pfn = env.pages.alloc() if vm.active and vm.es_active else None
    start = -1 if env.behaviour.last_vmentry_cpu_starts_minus_one else 0
    vcpu = Vcpu(len(vm.vcpus), env.next_vcpu_serial, vmcb_pfn, page_address(vmcb_pfn), vmsa_pfn, start)
    env.next_vcpu_serial += 1
    vm.vcpus.append(vcpu)
    return vcpu


def pre_sev_run(env: KernelEnv, kvm: KvmAmd, vm: Vm, vcpu: Vcpu, cpu: int) -> bool:
    """Return True when this entry flushes the ASID's TLB entries (``tlb_ctl`` = FLUSH_ASID)."""
    asid = vm.asid
    vmcbs = kvm.sev_vmcbs
    assert vmcbs is not None
    if vmcbs.get(cpu, asid) == vcpu.vmcb and vcpu.last_vmentry_cpu == cpu:
        return False
    vmcbs.set(cpu, asid, vcpu.vmcb)
    if env.trace.on:
        env.trace.tlb_flush(cpu, asid)
    return True


def vcpu_run(env: KernelEnv, kvm: KvmAmd, vm: Vm, vcpu: Vcpu, cpu: int) -> RunResult:
    """KVM_RUN on physical CPU ``cpu`` until the guest's first exit."""
    if not vm.active:
        vcpu.last_vmentry_cpu = cpu
        return RunResult(True, False)
    flush = pre_sev_run(env, kvm, vm, vcpu, cpu)
    entered = env.psp.asid_valid(vm.asid) and (not vm.es_active or vcpu.guest_state_protected)
    stale: int | None = None
    if entered:
        tlb = env.tlb.get(cpu)
        if tlb is None:
            tlb = env.tlb[cpu] = {}
        if not flush:
            owner = tlb.get(vm.asid)
            if owner is not None and owner != vcpu.serial:
                stale = owner
                env.breaches.append((cpu, vm.asid, owner, vcpu.serial))
        tlb[vm.asid] = vcpu.serial
    vcpu.last_vmentry_cpu = cpu
    return RunResult(entered, flush, stale)


def sev_vm_destroy(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """``sev_vm_destroy``: flush caches, unpin, unbind the ASID, free it for reclaim."""
    if not vm.active:
        return
    env.wbinvd_on_all_cpus()
    for region in vm.regions:
        sev_unpin_memory(vm, region.npages)
    vm.regions = []
    sev_unbind_asid(env, vm, vm.handle)
    sev_asid_free(env, kvm, vm, env.behaviour.sev_vmcbs_clear_real_asid)


def vm_destroy(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """The last reference to the VM goes: SEV teardown, then every vCPU's pages."""
    sev_vm_destroy(env, kvm, vm)
    for vcpu in vm.vcpus:
        if vcpu.vmsa_pfn is not None:
            env.pages.free(vcpu.vmsa_pfn)
        env.pages.free(vcpu.vmcb_pfn)
    vm.vcpus = []
    vm.active = False
    del kvm.vms[vm.name]


def cpu_offline(env: KernelEnv, cpu: int) -> None:
    """The CPU leaves ``cpu_online_mask``: WBINVD IPIs no longer reach it."""
    env.online &= ~(1 << cpu)


def cpu_online(env: KernelEnv, cpu: int) -> None:
    """The CPU comes back through INIT/SIPI, which empties its TLB."""
    env.online |= 1 << cpu
    env.tlb.pop(cpu, None)
