"""``sev_es_sync_vmsa``: the register state copied into a vCPU's VMSA page just before the
firmware encrypts it, for LAUNCH_UPDATE_VMSA (SEV-ES) and SNP_LAUNCH_FINISH (SNP) alike.

In the order the kernel goes:

1. 9b9f7962e3e8 (7.1): a vCPU whose state is already protected is refused (-EINVAL). Before
   it, the state is synced again: an SEV-ES guest's is clobbered (harmless to the host); an SNP
   guest's VMSA page belongs to the guest in the RMP, so the write is an RMP violation that
   oopses the host.
2. ad73109ae7ec (5.11): guest debugging on, or a VMCB DR7 other than DR7_FIXED_1 -> -EINVAL
   (:mod:`kvmsev.kvm.debugregs`).
3. The copy into ``svm->vmsa``: a vCPU created before KVM_SEV_ES_INIT has none (only kernels
   without 8727906fde6e, 5.12 before 5.12.4, let one exist), and the host oopses on NULL.

On SEV-ES, from 2837dd00f8fc (6.6), ``__sev_launch_update_vmsa`` looks at guest debugging
first and says why once per boot (:func:`refuse_guest_debug`); SNP_LAUNCH_FINISH has no such
message.
"""

from __future__ import annotations

from kvmsev.kvm.debugregs import DR7_FIXED_1
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vcpu, Vm
from kvmsev.kvm.oops import KernelOops, null_deref
from kvmsev.kvm.sev_cmd import EINVAL
from kvmsev.kvm.vm_types import SNP_VM

GUEST_DEBUG_WARNING = "kvm_amd: KVM_SET_GUEST_DEBUG for SEV-ES guest is not supported"


def rmp_violation(pfn: int | None) -> KernelOops:
    """The host writes a page the RMP assigns to a guest: a #PF with the RMP bit in kernel mode,
    an oops (9b9f7962e3e8's report: "BUG: unable to handle page fault for address: ...",
    "#PF: error_code(0x80000003) - RMP violation"). The address printed is the page's direct-map
    address; the model gives it without KASLR's memory randomisation (``page_offset_base``
    0xffff888000000000, 4-level paging), which real hosts with CONFIG_RANDOMIZE_MEMORY move."""
    address = 0xFFFF888000000000 + ((pfn or 0) << 12)
    return KernelOops(
        f"BUG: unable to handle page fault for address: {address:016x}",
        "sev_es_sync_vmsa: write to a VMSA page the RMP assigns to the guest (RMP violation)",
    )


def refuse_guest_debug(env: KernelEnv, vcpu: Vcpu) -> bool:
    """``__sev_launch_update_vmsa``'s own guest-debug check (2837dd00f8fc, 6.6): True (the
    caller returns -EINVAL) with a ``pr_warn_once`` the first time in a boot."""
    if not (env.behaviour.vmsa_guest_debug_warning and vcpu.guest_debug):
        return False
    if env.first_time("kvm_amd", GUEST_DEBUG_WARNING):
        env.trace.dmesg(GUEST_DEBUG_WARNING)
    return True


def sev_es_sync_vmsa(env: KernelEnv, vm: Vm, vcpu: Vcpu) -> int:
    """0 when the VMSA is ready for the firmware; -EINVAL as above; raises the oopses."""
    if vcpu.guest_state_protected and env.behaviour.vmsa_sync_rejects_launched:
        return EINVAL
    if vcpu.guest_debug or vcpu.save_dr7 & ~DR7_FIXED_1:
        return EINVAL
    if vcpu.vmsa_pfn is None:
        raise null_deref("sev_es_sync_vmsa: memcpy to svm->vmsa")
    if vcpu.guest_state_protected and vm.vm_type == SNP_VM:
        raise rmp_violation(vcpu.vmsa_pfn)
    return 0
