"""Mirror VMs: KVM_CAP_VM_COPY_ENC_CONTEXT_FROM (54526d1fd593 "KVM: x86: Support KVM VMs sharing
SEV context", 5.13; sev.c ``svm_vm_copy_asid_from``), as in v5.13.

``KVM_ENABLE_CAP`` on the target VM with the source VM's fd in ``args[0]``: non-zero ``flags``
-> -EINVAL (x86 ``kvm_vm_ioctl_enable_cap``); then, in order, a source fd that is not a VM ->
-EBADF; a source that is not an SEV guest -> -EINVAL; a source that is itself a mirror, or the
target itself -> -EINVAL; the source gets a reference (``kvm_get_kvm``); a target that is already
an SEV guest -> -EINVAL (reference dropped). The two VMs are never locked together, and the
target's vCPUs are not checked (79b111427637 adds that in 5.16). [6ee414078823 (stable 7.1.5,
6.18.40, 6.12.97): an SNP source -> -EINVAL.]

The target becomes "active" with the source's ASID and nothing else: no handle, no ``sev_fd``,
not ``es_active`` (a mirror of an SEV-ES VM runs as plain SEV on an SEV-ES ASID; f43c887cb7cb
copies the rest in 5.15), no misc cgroup charge. Every KVM_MEMORY_ENCRYPT_OP on a mirror is
-EINVAL (the dispatcher), REG_REGION -EINVAL, UNREG_REGION -EINVAL. Destroying a mirror only
drops its reference to the source; the source's own teardown runs when its last user is gone.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kvm.behaviour import Behaviour
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev_cmd import SevCmd
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import SNP_VM

EBADF = -int(Errno.EBADF)
EINVAL = -int(Errno.EINVAL)


def is_mirroring_enc_context(vm: Vm) -> bool:
    return vm.enc_context_owner is not None


#: what a mirror may still do once 5b92b6ca92b6 is in (``cmd_allowed_from_mirror``)
MIRROR_ALLOWED = frozenset(
    {SevCmd.LAUNCH_UPDATE_VMSA, SevCmd.GUEST_STATUS, SevCmd.DBG_DECRYPT, SevCmd.DBG_ENCRYPT}
)


def cmd_allowed_from_mirror(behaviour: Behaviour, cmd_id: int) -> bool:
    return behaviour.mirror_cmd_allow_list and cmd_id in MIRROR_ALLOWED


def svm_vm_copy_asid_from(
    behaviour: Behaviour, kvm: KvmAmd, target: Vm, source: Vm | None, flags: int = 0
) -> int:
    """0 or -errno; ``source`` None stands for an fd that is not a (live) VM. Later kernels
    refuse a target with vCPUs (79b111427637) and copy es_active, handle and fd (f43c887cb7cb)."""
    if flags:
        return EINVAL
    if source is None or source.closed:
        return EBADF
    if not source.active:
        return EINVAL
    if behaviour.snp_move_mirror_rejected and source.vm_type == SNP_VM:
        return EINVAL
    if is_mirroring_enc_context(source) or source is target:
        return EINVAL
    source.users += 1
    if target.active or (behaviour.mirror_target_no_vcpus and target.created_vcpus):
        source.users -= 1
        return EINVAL
    target.enc_context_owner = source.name
    target.asid = source.asid
    target.active = True
    kvm.track(target)
    if behaviour.mirror_copies_es_handle_fd:
        target.es_active, target.handle, target.fd = source.es_active, source.handle, source.fd
    return 0
