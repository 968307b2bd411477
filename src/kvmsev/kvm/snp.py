"""SEV-SNP guests in KVM (6.11 on; sev.c ``snp_launch_start``, ``snp_launch_update``,
``snp_launch_finish``, ``snp_decommission_context``), as in 6.12.

An SNP guest is a VM of type KVM_X86_SNP_VM (4) made an SEV-ES guest by KVM_SEV_INIT2 (its
ASID comes from the SEV-ES range and it is charged as ``sev_es``). From then on only the SNP
commands work on it: the dispatcher answers -EPERM for any command id below 100.

* KVM_SEV_SNP_LAUNCH_START (100): -ENOTTY unless an SNP guest; params copied (-EFAULT); a second
  context, non-zero ``flags``, policy bits outside the valid mask, the reserved-must-be-one bit
  (17) clear, and until 6.17 the SMT bit (16) clear or SINGLE_SOCKET (20) set -> -EINVAL (6.11:
  only after the context is created, which it then keeps); SNP_GCTX_CREATE through the caller's ``sev_fd`` (a
  failure, a ``sev_fd`` that is not /dev/sev included, logs "Failed to create SEV-SNP context,
  rc %d fw_error %d" and gives -ENOTTY); SNP_LAUNCH_START, then SNP_ACTIVATE of the VM's ASID
  through ``sev->fd``; a failure of either decommissions the context.
* KVM_SEV_SNP_LAUNCH_UPDATE (101): -EINVAL unless an SNP guest with a context; ``len`` not page
  aligned, non-zero ``flags`` or an unknown page type -> -EINVAL; then each page through
  ``kvm_gmem_populate``: SNP_LAUNCH_UPDATE, the page given to the guest. A page already given
  (-EEXIST from guest_memfd) or a failing command stops the walk: with no page done that is -EIO
  (``error`` the firmware's status, 0 for the former), otherwise success for the pages done, the
  parameters advanced past them. The model takes the guest_memfd memslot a VMM sets up for the
  GFNs as given: memslots and memory attributes are not modeled.
* KVM_SEV_SNP_LAUNCH_FINISH (102): -ENOTTY unless an SNP guest; -EINVAL without a context or with
  non-zero ``flags``; each vCPU's VMSA goes in with SNP_LAUNCH_UPDATE (and is then protected);
  SNP_LAUNCH_FINISH. ID blocks and host data are passed through unmodeled.
* Destroying the VM: SNP_DECOMMISSION of the context (no DEACTIVATE); if it fails the ASID is
  leaked, not freed.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.hw.memory import PAGE_SIZE
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev_cmd import EBADF, EFAULT, EINVAL, EIO, ENOTTY, Cmd, dev_sev, fw, issue_ok
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import SNP_VM
from kvmsev.kvm.vmsa import sev_es_sync_vmsa

EEXIST = -int(Errno.EEXIST)

POLICY_SMT = 1 << 16
POLICY_RSVD_MBO = 1 << 17
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20
#: SNP_POLICY_MASK_VALID (6.11-6.16): ABI minor/major, SMT, MBO, DEBUG, SINGLE_SOCKET
POLICY_VALID = 0xFFFF | POLICY_SMT | POLICY_RSVD_MBO | POLICY_DEBUG | POLICY_SINGLE_SOCKET
#: KVM_SEV_SNP_PAGE_TYPE_*: NORMAL 1, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6
PAGE_TYPES = frozenset({1, 3, 4, 5, 6})
PAGE_TYPE_ZERO = 3


def is_snp_guest(vm: Vm) -> bool:
    """``sev_snp_guest()``: an active SEV guest of the SNP type."""
    return vm.active and vm.vm_type == SNP_VM


def _start_params_ok(env: KernelEnv, cmd: Cmd) -> bool:
    """SNP_LAUNCH_START's parameter checks: no ``flags``, no policy bit outside the valid mask,
    the reserved-must-be-one bit set; until 6.17 also the SMT bit set (9f4701e05fae drops it) and
    SINGLE_SOCKET clear (24be2b7956a5 drops it), after which the firmware decides (SMT: at
    SNP_LAUNCH_START, by the BIOS setting; SINGLE_SOCKET: at SNP_ACTIVATE, by the socket count).

    6.19 (7a61d61396b9) checks against ``snp_supported_policy_bits`` instead of the mask: the
    firmware's bits (``sev_get_snp_policy_bits``) within a wider mask. The modeled firmware has
    no SNP_FEATURE_INFO, so those bits are the base set, and with MIGRATE_MA (bit 18) outside
    KVM's mask they equal :data:`POLICY_VALID` (0x1BFFFF): the check is the same."""
    policy = cmd.int("policy")
    if cmd.int("flags") or policy & ~POLICY_VALID or not policy & POLICY_RSVD_MBO:
        return False
    if not env.behaviour.snp_policy_smt_optional and not policy & POLICY_SMT:
        return False
    return env.behaviour.snp_policy_single_socket or not policy & POLICY_SINGLE_SOCKET


def snp_context_create(env: KernelEnv, cmd: Cmd) -> int | None:
    """``snp_context_create``: SNP_GCTX_CREATE through the caller's ``sev_fd``. Whatever fails,
    a ``sev_fd`` that is not /dev/sev (-EBADF from ``__sev_issue_cmd``) included, logs "Failed to
    create SEV-SNP context, rc %d fw_error %d" with ``error`` as it then stands (the firmware's
    status; for -EBADF the value userspace passed in, which the model takes as 0) and gives
    NULL, which the caller answers with -ENOTTY (6.11 to 7.1 alike)."""
    if dev_sev(env, cmd.sev_fd):
        created = fw(env, cmd, env.psp.snp_gctx_create())
        if created.ok:
            assert isinstance(created.out, int)
            return created.out
        rc = created.ret
    else:
        rc = EBADF
    env.trace.dmesg(f"kvm_amd: Failed to create SEV-SNP context, rc {rc} fw_error {cmd.error}")
    return None


def snp_launch_start(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_SNP_LAUNCH_START (``snp_launch_start``). In 6.11 the parameters are checked only
    after the context is created, so a refused start keeps its context and every later start
    fails the one-context check (-EINVAL) until the VM is destroyed; from 6.12 they are checked
    first (``snp_start_params_first``)."""
    if not is_snp_guest(vm):
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    if vm.snp_context:
        return EINVAL
    if env.behaviour.snp_start_params_first and not _start_params_ok(env, cmd):
        return EINVAL
    context = snp_context_create(env, cmd)
    if context is None:
        return ENOTTY
    vm.snp_context = context
    if not _start_params_ok(env, cmd):
        return EINVAL
    start = fw(env, cmd, env.psp.snp_launch_start(vm.snp_context, cmd.int("policy")))
    if not start.ok:
        snp_decommission_context(env, vm)
        return start.ret
    vm.fd = cmd.sev_fd
    activate = fw(env, cmd, env.psp.snp_activate(vm.snp_context, vm.asid))
    if not activate.ok:
        snp_decommission_context(env, vm)
        return activate.ret
    return 0


def snp_launch_update(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_SNP_LAUNCH_UPDATE (``snp_launch_update``, 6.11 as in 6.12): -EINVAL without an SNP
    context, for a length off a page multiple [6.18, 5b66e335ead6: or zero], flags or an unknown
    page type [7.0, dcbcc2323c80: or a source off a page boundary]; then page by page through
    ``kvm_gmem_populate``, stopping at a page prepared before (-EEXIST), a source page not mapped
    (-EFAULT), no source at all (``uaddr`` 0 for a type that needs one: a WARN_ON_ONCE and
    -EINVAL), a ``sev_fd`` that is not /dev/sev (-EBADF from ``__sev_issue_cmd`` in
    ``sev_gmem_post_populate``) or a firmware error.
    Nothing done is -EIO with the firmware status; otherwise the parameters are advanced past
    what was done and copied back."""
    if not is_snp_guest(vm) or not vm.snp_context:
        return EINVAL
    if cmd.data_fault:
        return EFAULT
    length, page_type = cmd.int("len"), cmd.int("type")
    if length % PAGE_SIZE or cmd.int("flags") or page_type not in PAGE_TYPES:
        return EINVAL
    if env.behaviour.snp_update_len_nonzero and not length:
        return EINVAL
    gfn, uaddr = cmd.int("gfn_start"), cmd.int("uaddr")
    if env.behaviour.snp_update_src_aligned and page_type != PAGE_TYPE_ZERO and uaddr % PAGE_SIZE:
        return EINVAL
    done = 0
    failure = 0
    for i in range(length // PAGE_SIZE):
        if gfn + i in vm.gmem_prepared:
            failure = EEXIST  # kvm_gmem_populate: the page was prepared already
            break
        if page_type != PAGE_TYPE_ZERO and not uaddr:
            # a NULL source for a page that needs one: sev_gmem_post_populate's WARN_ON_ONCE
            env.warn_on_once("arch/x86/kvm/svm/sev.c", "sev_gmem_post_populate")
            failure = EINVAL
            break
        if page_type != PAGE_TYPE_ZERO and not vm.memory.mapped(uaddr + i * PAGE_SIZE, PAGE_SIZE):
            failure = EFAULT
            break
        if not dev_sev(env, cmd.sev_fd):  # sev_gmem_post_populate issues through the caller's fd
            failure = EBADF
            break
        result = fw(env, None, env.psp.snp_launch_update(vm.snp_context, gfn + i))
        if not result.ok:
            failure = result.code
            break
        vm.gmem_prepared.add(gfn + i)
        done += 1
    if done == 0 and length:
        cmd.error = failure if failure > 0 else 0  # a firmware status, or none for -EEXIST/-EFAULT
        return EIO
    cmd.params.update(
        gfn_start=gfn + done,
        len=length - done * PAGE_SIZE,
        uaddr=uaddr if page_type == PAGE_TYPE_ZERO else uaddr + done * PAGE_SIZE,
    )
    return 0


def snp_launch_finish(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_SNP_LAUNCH_FINISH: every vCPU's VMSA synced and encrypted (SNP_LAUNCH_UPDATE of a
    VMSA page, ``snp_launch_update_vmsa``), then SNP_LAUNCH_FINISH. A vCPU encrypted by an
    earlier call (a finish run twice, or retried after a firmware error) is written again: an RMP
    violation that brings the host down, until 9b9f7962e3e8 (7.1) refuses it with -EINVAL."""
    if not is_snp_guest(vm):
        return ENOTTY
    if not vm.snp_context:
        return EINVAL
    if cmd.data_fault:
        return EFAULT
    if cmd.int("flags"):
        return EINVAL
    if not issue_ok(env, vm):
        return EBADF
    for vcpu in vm.vcpus:
        synced = sev_es_sync_vmsa(env, vm, vcpu)
        if synced:
            return synced
        assert vcpu.vmsa_pfn is not None  # sev_es_sync_vmsa oopses first
        result = fw(env, cmd, env.psp.snp_launch_update(vm.snp_context, -1 - vcpu.vmsa_pfn))
        if not result.ok:
            return result.ret
        vcpu.guest_state_protected = True
    return fw(env, cmd, env.psp.snp_launch_finish(vm.snp_context)).ret


def snp_enable_certs(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_SNP_ENABLE_REQ_CERTS (``snp_enable_certs``, 20c3c4108d58, 7.0): -EINVAL once the
    VM has created a vCPU or unless it is an SNP guest; otherwise certificate requests are
    enabled. The parameters struct is not read."""
    if vm.created_vcpus or not is_snp_guest(vm):
        return EINVAL
    vm.snp_certs_enabled = True
    return 0


def snp_decommission_context(env: KernelEnv, vm: Vm) -> bool:
    """SNP_DECOMMISSION (through the driver, not ``sev->fd``); False when it failed, which
    ``WARN_ONCE``s "Failed to release guest context, ret %d" and keeps the context (6.11 to 7.1)."""
    if not vm.snp_context:
        return True
    result = fw(env, None, env.psp.snp_decommission(vm.snp_context))
    if not result.ok:
        env.warn_on_once(
            "arch/x86/kvm/svm/sev.c",
            "snp_decommission_context",
            message=f"Failed to release guest context, ret {result.ret}",
        )
        return False
    vm.snp_context = 0
    return True
