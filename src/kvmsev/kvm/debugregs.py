"""A vCPU's debug state as SEV-ES launch sees it: KVM_SET_GUEST_DEBUG and KVM_SET_DEBUGREGS.

An SEV-ES VMSA is encrypted with the register state it has at launch, and the hypervisor can
neither intercept nor fix up debug registers afterwards, so ``sev_es_sync_vmsa`` (ad73109ae7ec,
5.11) refuses a vCPU with guest debugging on or a DR7 other than its fixed bit. That DR7 is the
VMCB's ``save.dr7``, which only ``svm_set_dr7`` writes, and never once the state is protected
(8d4846b9b150, 5.11). Userspace reaches it two ways before launch: KVM_SET_DEBUGREGS, and
KVM_SET_GUEST_DEBUG with hardware breakpoints (its own DR7 then wins, ``kvm_update_dr7``).
A new vCPU starts with DR7 = DR7_FIXED_1 (``kvm_vcpu_reset``), which passes.

Breakpoint addresses (DR0-3), DR6's use and the exception injection KVM_SET_GUEST_DEBUG can
ask for (INJECT_DB / INJECT_BP, -EBUSY over a pending exception) change nothing SEV looks at
and are not modeled.
"""

from __future__ import annotations

from kvmsev.kvm.guest import Vcpu, Vm
from kvmsev.kvm.sev_cmd import EINVAL
from kvmsev.kvm.vm_types import SEV_ES_VM, SNP_VM

#: DR7 bit 10, which always reads as one
DR7_FIXED_1 = 0x400
KVM_GUESTDBG_ENABLE = 0x1
KVM_GUESTDBG_USE_HW_BP = 0x20000


def has_protected_state(vm: Vm) -> bool:
    """``kvm->arch.has_protected_state`` (517987e3fb19, 6.10): set by ``svm_vm_init`` for the
    KVM_X86_SEV_ES_VM type and, from 6.11, KVM_X86_SNP_VM. A VM made SEV-ES with the legacy
    KVM_SEV_ES_INIT never has it. Neither type exists before 6.10."""
    return vm.vm_type in (SEV_ES_VM, SNP_VM)


def _update_dr7(vcpu: Vcpu) -> None:
    """``kvm_update_dr7`` -> ``svm_set_dr7``: the debugger's DR7 while it uses hardware
    breakpoints, the guest's otherwise; not written once the state is protected."""
    dr7 = vcpu.guest_debug_dr7 if vcpu.guest_debug & KVM_GUESTDBG_USE_HW_BP else vcpu.dr7
    if not vcpu.guest_state_protected:
        vcpu.save_dr7 = dr7


def set_guest_debug(vcpu: Vcpu, control: int, debugreg7: int) -> int:
    """KVM_SET_GUEST_DEBUG (``kvm_arch_vcpu_ioctl_set_guest_debug``): -EINVAL once the vCPU's
    state is protected (8d4846b9b150, every kernel modeled); otherwise ``control`` is kept
    (cleared whole without KVM_GUESTDBG_ENABLE), and with USE_HW_BP ``debugreg7`` becomes the
    DR7 the VMCB gets. Before launch this succeeds; the refusal comes at LAUNCH_UPDATE_VMSA."""
    if vcpu.guest_state_protected:
        return EINVAL
    vcpu.guest_debug = control if control & KVM_GUESTDBG_ENABLE else 0
    if vcpu.guest_debug & KVM_GUESTDBG_USE_HW_BP:
        vcpu.guest_debug_dr7 = debugreg7
    _update_dr7(vcpu)
    return 0


def set_debugregs(vm: Vm, vcpu: Vcpu, dr6: int, dr7: int, flags: int) -> int:
    """KVM_SET_DEBUGREGS (``kvm_vcpu_ioctl_x86_set_debugregs``): -EINVAL for a protected vCPU of
    a VM with protected state (517987e3fb19, 6.10; a legacy SEV-ES VM still gets a silent 0 that
    changes nothing), for non-zero ``flags``, or for DR6 or DR7 with any of bits 63:32 set
    (``kvm_dr6_valid`` / ``kvm_dr7_valid``); otherwise DR7 is taken as given (bit 10 is not
    forced on)."""
    if has_protected_state(vm) and vcpu.guest_state_protected:
        return EINVAL
    if flags or dr6 >> 32 or dr7 >> 32:
        return EINVAL
    vcpu.dr7 = dr7
    _update_dr7(vcpu)
    return 0
