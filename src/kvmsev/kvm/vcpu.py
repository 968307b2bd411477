"""VMs, vCPUs and VM entry for SEV guests: create, run on a physical CPU, destroy.

VM entry (``vcpu_enter_guest`` in arch/x86/kvm/x86.c, 5.12/5.13). Two things can ask for the
ASID's TLB entries to be flushed on this VMRUN, both by setting ``tlb_ctl =
TLB_CONTROL_FLUSH_ASID`` in the VMCB:

1. ``kvm_mmu_reload()``: a vCPU without an MMU root (its first KVM_RUN) runs ``kvm_mmu_load()``,
   which ends by loading the root and calling ``kvm_x86_tlb_flush_current`` -- ``svm_flush_tlb()``,
   which sets FLUSH_ASID on FlushByAsid parts (every SEV-capable part has it).
2. ``pre_svm_run`` -> ``pre_sev_run`` (5.11-5.13): no request only when this CPU's
   ``sev_vmcbs[asid]`` already points at this vCPU's VMCB *and* the vCPU's ``last_vmentry_cpu``
   is this CPU; otherwise KVM records the VMCB there and sets FLUSH_ASID. ``pre_sev_run`` only
   ever sets ``tlb_ctl``; it never clears a request made earlier.

``svm_vcpu_run`` resets ``tlb_ctl`` to TLB_CONTROL_DO_NOTHING after every VMRUN, so a request
applies to exactly one VMRUN -- including one that fails, which is how a flush can be lost (see
:func:`vcpu_run`). ``last_vmentry_cpu`` is written after the run hook returns, so the test always
sees the previous entry's CPU; it starts at 0 in 5.12/5.13 (zeroed vCPU allocation) and at -1
from 5.14 ("KVM: x86: Alert userspace that KVM_SET_CPUID{,2} after KVM_RUN is broken").

Flushes the model leaves out: every other ``KVM_REQ_TLB_FLUSH*`` / ``KVM_REQ_MMU_RELOAD`` source
(MMU notifier invalidations, memslot changes, KVM_SET_SREGS / KVM_SET_CPUID2 resetting the MMU
context, ...). None of them is reachable through the entry points modeled here, and each only
*adds* a flush, so leaving them out can make the model report a stale TLB entry the kernel would
have flushed (a false alarm), never hide one.

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
from kvmsev.kvm.hardware import (
    hardware_disable_all,
    hardware_enable_all,
    new_asid,
    svm_hardware_disable,
    svm_hardware_enable,
)
from kvmsev.kvm.launch import sev_unbind_asid
from kvmsev.kvm.sev_cmd import sev_unpin_memory
from kvmsev.kvm.snp import is_snp_guest, snp_decommission_context
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import DEFAULT_VM, SW_PROTECTED_VM, type_supported

#: who asked for a flush of the ASID's TLB entries on one VMRUN (the ``by`` of a tlb_flush event)
BY_MMU_LOAD = "kvm_mmu_load"
BY_PRE_SEV_RUN = "pre_sev_run"
#: a non-SEV entry that wrapped the CPU's ASID range: every ASID on the CPU is flushed
BY_NEW_ASID = "new_asid"


@dataclass(frozen=True, slots=True)
class RunResult:
    """One KVM_RUN: whether VMRUN entered the guest, which flush requests it carried, and
    whether it flushed (a request is carried out only by a VMRUN that enters)."""

    entered: bool
    flush_by: tuple[str, ...] = ()
    stale_from: int | None = None

    @property
    def tlb_flush(self) -> bool:
        """The TLB entries of the ASID were flushed on this CPU."""
        return self.entered and bool(self.flush_by)

    @property
    def exit_reason(self) -> str | None:
        """KVM_RUN's exit reason when VMRUN itself failed; guest execution is not modeled."""
        return None if self.entered else "KVM_EXIT_FAIL_ENTRY"


def vm_create(
    env: KernelEnv, kvm: KvmAmd, name: str, memory: AddressSpace, cgroup: MiscCg, vm_type: int = 0
) -> Vm | None:
    """KVM_CREATE_VM: an unsupported type fails (None: -EINVAL, :mod:`kvmsev.kvm.vm_types`);
    an SEV-typed VM waits for KVM_SEV_INIT2 (``svm_vm_init``: ``need_init``). Nothing else
    SEV-specific happens yet; the first VM enables virtualization on every online CPU
    (``kvm_create_vm`` -> ``hardware_enable_all``)."""
    if not type_supported(env, kvm, vm_type):
        return None
    if not kvm.vms:
        hardware_enable_all(env, kvm)
    kvm.vms_created += 1
    vm = Vm(
        name,
        memory,
        cgroup,
        vm_type=vm_type,
        need_init=vm_type not in (DEFAULT_VM, SW_PROTECTED_VM),
        serial=kvm.vms_created,
    )
    kvm.vms[name] = vm
    return vm


def vcpu_create(env: KernelEnv, vm: Vm) -> Vcpu | None:
    """KVM_CREATE_VCPU: None (-EINVAL) once the VM has created ``KVM_MAX_VCPUS``
    (``kvm_vm_ioctl_create_vcpu``: the vCPU ids the model hands out, 0, 1, 2, ..., stay below
    ``KVM_MAX_VCPU_ID``); then ``svm_create_vcpu``: VMCB page, and a VMSA page for SEV-ES guests."""
    if vm.created_vcpus >= env.behaviour.max_vcpus:
        return None
    vm.created_vcpus += 1
    vmcb_pfn = env.pages.alloc()
    vmsa_pfn = env.pages.alloc() if vm.active and vm.es_active else None
    start = -1 if env.behaviour.last_vmentry_cpu_starts_minus_one else 0
    vcpu = Vcpu(len(vm.vcpus), env.next_vcpu_serial, vmcb_pfn, page_address(vmcb_pfn), vmsa_pfn, start)
    env.next_vcpu_serial += 1
    vm.vcpus.append(vcpu)
    return vcpu


def kvm_mmu_reload(vcpu: Vcpu) -> bool:
    """``kvm_mmu_reload``: True when the vCPU had no root, so ``kvm_mmu_load`` ran and ended with
    ``kvm_x86_tlb_flush_current`` (``svm_flush_tlb``: ``tlb_ctl = TLB_CONTROL_FLUSH_ASID``)."""
    if vcpu.root_loaded:
        return False
    vcpu.root_loaded = True
    return True


def pre_sev_run(kvm: KvmAmd, vm: Vm, vcpu: Vcpu, cpu: int) -> bool:
    """Return True when ``pre_sev_run`` sets ``tlb_ctl = TLB_CONTROL_FLUSH_ASID``."""
    asid = vm.asid
    vmcbs = kvm.sev_vmcbs
    assert vmcbs is not None
    if vmcbs.get(cpu, asid) == vcpu.vmcb and vcpu.last_vmentry_cpu == cpu:
        return False
    vmcbs.set(cpu, asid, vcpu.vmcb)
    return True


def vcpu_run(env: KernelEnv, kvm: KvmAmd, vm: Vm, vcpu: Vcpu, cpu: int) -> RunResult:
    """KVM_RUN on physical CPU ``cpu`` until the guest's first exit (``vcpu_enter_guest``).

    Order as in the kernel: the vCPU is loaded on ``cpu`` (a different CPU than last time
    invalidates its non-SEV ASID: ``svm_vcpu_load`` in 5.12, ``pre_svm_run`` in 5.13),
    ``kvm_mmu_reload`` (after the pending requests), then the run hook (``pre_svm_run`` ->
    ``pre_sev_run`` for SEV guests, ``new_asid`` for others), VMRUN, ``tlb_ctl`` reset,
    ``last_vmentry_cpu`` written. VMRUN enters only while the firmware has the ASID in use
    (ACTIVATE on a RUNNING guest, or LAUNCH_FINISH after a pending ACTIVATE) and, for SEV-ES,
    the vCPU's VMSA was encrypted.

    A VMRUN that fails carries out no flush, yet ``tlb_ctl`` is reset after it and
    ``sev_vmcbs`` already records the VMCB: the request is lost. That a failing VMRUN performs no
    TLB_CONTROL flush is an assumption about the hardware that no public source documents.
    """
    flush_by: tuple[str, ...] = (BY_MMU_LOAD,) if kvm_mmu_reload(vcpu) else ()
    if vcpu.cpu != cpu:
        vcpu.asid_generation = 0
        vcpu.cpu = cpu
    if not vm.active:
        if vcpu.asid_generation != kvm.asid_generation[cpu] and new_asid(env, kvm, vcpu, cpu):
            flush_by += (BY_NEW_ASID,)
            env.tlb.pop(cpu, None)
            if env.trace.on:
                env.trace.tlb_flush(cpu, None, (BY_NEW_ASID,), True)
        vcpu.last_vmentry_cpu = cpu
        return RunResult(True, flush_by)
    if env.behaviour.writeback_have_run_cpus:
        vm.have_run_cpus |= 1 << cpu
    if pre_sev_run(kvm, vm, vcpu, cpu):
        flush_by += (BY_PRE_SEV_RUN,)
    entered = env.psp.asid_valid(vm.asid) and (not vm.es_active or vcpu.guest_state_protected)
    stale: int | None = None
    if entered:
        tlb = env.tlb.get(cpu)
        if tlb is None:
            tlb = env.tlb[cpu] = {}
        if not flush_by:
            owner = tlb.get(vm.asid)
            if owner is not None and owner != vcpu.serial:
                stale = owner
                env.breaches.append((cpu, vm.asid, owner, vcpu.serial))
        tlb[vm.asid] = vcpu.serial
    if flush_by and env.trace.on:
        env.trace.tlb_flush(cpu, vm.asid, flush_by, entered)
    vcpu.last_vmentry_cpu = cpu
    return RunResult(entered, flush_by, stale)


def sev_vm_destroy(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """``sev_vm_destroy``: a mirror only drops its reference to the VM it mirrors (which may
    destroy that VM now); an SEV guest flushes caches (WBINVD on every CPU, until 7e00013bd339
    "KVM: SVM: Remove wbinvd in sev_vm_destroy()", 6.17), unpins, unbinds its ASID and frees it
    for reclaim."""
    if not vm.active:
        return
    if vm.enc_context_owner is not None:
        kvm_put_kvm(env, kvm, kvm.vms[vm.enc_context_owner])
        return
    if env.behaviour.vm_destroy_wbinvd:
        env.wbinvd_on_all_cpus()
    for region in vm.regions:
        sev_unpin_memory(vm, region.npages)
    vm.regions = []
    if is_snp_guest(vm):
        # SNP_DECOMMISSION instead of DEACTIVATE + DECOMMISSION; on failure the ASID leaks
        if not snp_decommission_context(env, vm):
            return
    else:
        sev_unbind_asid(env, vm.handle)
    sev_asid_free(env, kvm, vm)


def kvm_destroy_vm(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """The last user is gone (``kvm_destroy_vm``): SEV teardown (``kvm_arch_destroy_vm`` ->
    ``svm_vm_destroy``), then every vCPU's pages; the last VM turns virtualization off."""
    del kvm.vms[vm.name]
    kvm.track(vm)
    sev_vm_destroy(env, kvm, vm)
    for vcpu in vm.vcpus:
        if vcpu.vmsa_pfn is not None:
            env.pages.free(vcpu.vmsa_pfn)
        env.pages.free(vcpu.vmcb_pfn)
    vm.vcpus = []
    vm.active = False
    if not kvm.vms:
        hardware_disable_all(kvm)


def kvm_put_kvm(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """Drop one reference (``kvm_put_kvm``); the last one destroys the VM."""
    vm.users -= 1
    if not vm.users:
        kvm_destroy_vm(env, kvm, vm)


def vm_destroy(env: KernelEnv, kvm: KvmAmd, vm: Vm) -> None:
    """The VMM closes the VM fd (``kvm_vm_release``): its reference goes; a VM a mirror still
    holds lives on, unusable from userspace, until the mirror is gone."""
    vm.closed = True
    kvm_put_kvm(env, kvm, vm)


def cpu_offline(env: KernelEnv, kvm: KvmAmd | None, cpu: int) -> None:
    """Take ``cpu`` offline.

    While VMs exist ``kvm_dying_cpu`` first turns virtualization off there. The CPU leaves
    ``cpu_online_mask`` (WBINVD IPIs no longer reach it) and dies in ``native_play_dead()``, which
    executes WBINVD on every AMD path: ``mwait_play_dead()`` returns at once on AMD, then
    ``acpi_idle_play_dead()`` (``ACPI_FLUSH_CPU_CACHE()``) or ``hlt_play_dead()`` (``wbinvd()``).
    So the thread's WBINVD_DONE flag is set as it goes; only a DEACTIVATE while it is offline
    leaves the flag clear until it comes back.
    """
    if kvm is not None and kvm.vms:
        svm_hardware_disable(kvm, cpu)
    env.online &= ~(1 << cpu)
    env.psp.wbinvd(1 << cpu)


def cpu_online(env: KernelEnv, kvm: KvmAmd | None, cpu: int) -> None:
    """The CPU comes back through INIT/SIPI, which empties its TLB; while VMs exist
    ``kvm_starting_cpu`` enables virtualization there (a fresh non-SEV ASID allocator)."""
    env.online |= 1 << cpu
    env.tlb.pop(cpu, None)
    if kvm is not None and kvm.vms:
        svm_hardware_enable(env, kvm, cpu)
