"""Intra-host migration: KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM (b56639318bb2 "KVM: SEV: Add support for
SEV intra host migration" and 0b020f5af092 for SEV-ES, 5.16; sev.c
``sev_vm_move_enc_context_from``, as in 6.1 and 7.1).

``KVM_ENABLE_CAP`` on the destination VM with the source VM's fd: non-zero ``flags`` -> -EINVAL
(``kvm_vm_ioctl_enable_cap``); then, in order:

1. the fd is not a VM -> -EBADF;
2. ``sev_lock_two_vms``: the same VM -> -EINVAL (either VM already migrating -> -EBUSY, a signal
   -> -EINTR: neither can happen in a scenario);
3. [6.10, with the VM types: the VM types differ ->] the destination is already an SEV guest, or
   the source is not [6ee414078823, 7.1.5 and other stable trees: or is an SNP guest] -> -EINVAL;
4. [5.16 and 5.17 only, 17d44a96f000: a source with mirrors -> -EBUSY];
5. the destination takes its caller's misc cgroup; when that differs from the source's, one unit
   is charged there (an error is returned as is). The charge is of the type the *destination's*
   ``es_active`` says -- still false at this point -- so an SEV-ES guest moved across cgroups is
   charged as ``sev``;
6. an SEV-ES source must have as many vCPUs as the destination and each must have its VMSA
   launched (LAUNCH_UPDATE_VMSA) -> -EINVAL;
7. ``sev_migrate_from``: ASID, handle, pinned pages, ``es_active``, the regions and mirror status
   move to the destination and are cleared in the source (``sev->fd`` does not move); for an
   SEV-ES guest each destination vCPU takes the source vCPU's ``sev_es`` state, its VMSA page
   included, and the source's is zeroed (``guest_state_protected`` follows); [5.18,
   b2125513dfc0: the source's mirrors now mirror the destination;] then ``kvm_vm_dead(source)``.

On success the source's cgroup reference is dropped, and when a charge was made at step 5 the
source is uncharged -- by the type *its* ``es_active`` says, which step 7 just cleared: ``sev``.
For an SEV-ES guest moved across cgroups the source cgroup keeps its ``sev_es`` unit forever and
its ``sev`` usage goes below zero (a WARNING), and the destination, charged ``sev``, is uncharged
``sev_es`` when the guest is destroyed (the same code is in 7.1).
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kernel.misc_cgroup import MiscCg
from kvmsev.kvm.behaviour import MoveEncContext
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import SNP_VM

EBADF = -int(Errno.EBADF)
EBUSY = -int(Errno.EBUSY)
EINVAL = -int(Errno.EINVAL)


def mirrors_of(kvm: KvmAmd, vm: Vm) -> list[Vm]:
    return [m for m in kvm.vms.values() if m.enc_context_owner == vm.name]


def sev_vm_move_enc_context_from(env: KernelEnv, kvm: KvmAmd, dst: Vm, src: Vm | None, flags: int = 0) -> int:
    """0 or -errno; ``src`` None stands for an fd that is not a (live) VM."""
    b = env.behaviour
    if flags:
        return EINVAL
    if src is None or src.closed:
        return EBADF
    if src is dst:
        return EINVAL
    if b.vm_types and dst.vm_type != src.vm_type:
        return EINVAL
    if dst.active or not src.active:
        return EINVAL
    if b.snp_move_mirror_rejected and src.vm_type == SNP_VM:
        return EINVAL
    mirrors = mirrors_of(kvm, src)
    if b.move_enc_context is MoveEncContext.NO_MIRRORS and mirrors:
        return EBUSY
    dst_cg = dst.cgroup
    charged = False
    if dst_cg is not src.misc_cg:
        resource = "sev_es" if dst.es_active else "sev"
        ret, lines = env.misc.try_charge(resource, dst_cg)
        for line in lines:
            env.trace.dmesg(line)
        if ret:
            return ret
        charged = True
    if src.es_active and (
        len(src.vcpus) != len(dst.vcpus) or not all(v.guest_state_protected for v in src.vcpus)
    ):
        if charged:
            _uncharge(env, dst, dst_cg)
        return EINVAL
    _migrate(kvm, dst, src, mirrors)
    src_cg, dst.misc_cg = src.misc_cg, dst_cg
    if charged and src_cg is not None:
        _uncharge(env, src, src_cg)
    src.misc_cg = None
    kvm.track(dst)
    kvm.track(src)
    src.dead = True
    return 0


def _uncharge(env: KernelEnv, vm: Vm, group: MiscCg) -> None:
    """``sev_misc_cg_uncharge``: by the type ``vm.es_active`` says now."""
    for line in env.misc.uncharge("sev_es" if vm.es_active else "sev", group):
        env.trace.dmesg(line)


def _migrate(kvm: KvmAmd, dst: Vm, src: Vm, mirrors: list[Vm]) -> None:
    """``sev_migrate_from``: the context moves; the source keeps its vCPUs but no SEV state."""
    # the source's sev_fd is not moved: the destination's SEV commands that go through
    # sev_issue_cmd (GUEST_STATUS, DBG_*, ...) then fail -EBADF
    dst.active, dst.asid, dst.handle = True, src.asid, src.handle
    dst.pages_locked, dst.es_active = src.pages_locked, src.es_active
    dst.enc_context_owner = src.enc_context_owner
    dst.regions, src.regions = src.regions, []
    dst.initialised_as_es = src.initialised_as_es
    dst.owner_keys = src.owner_keys
    src.active, src.asid, src.handle, src.pages_locked, src.es_active = False, 0, 0, 0, False
    src.enc_context_owner = None
    for mirror in mirrors:
        # each mirror's reference moves from the source to the destination
        mirror.enc_context_owner = dst.name
        dst.users += 1
        src.users -= 1
    if dst.es_active:
        # each destination vCPU takes the VMSA page (and the rest of ``sev_es``) of the source
        # vCPU with its index; the source's is cleared, so it is freed once, with the destination
        for dst_vcpu, src_vcpu in zip(dst.vcpus, src.vcpus, strict=True):
            dst_vcpu.vmsa_pfn, src_vcpu.vmsa_pfn = src_vcpu.vmsa_pfn, None
            dst_vcpu.guest_state_protected, src_vcpu.guest_state_protected = True, False
