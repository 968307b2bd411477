"""KVM's launch commands (sev.c, 5.12/5.13): KVM_SEV_INIT / ES_INIT, LAUNCH_START,
LAUNCH_UPDATE_DATA / VMSA, LAUNCH_MEASURE, LAUNCH_SECRET, LAUNCH_FINISH, GUEST_STATUS and
GET_ATTESTATION_REPORT; and binding / unbinding an ASID to a firmware context.

Every handler but INIT checks ``sev_guest()`` first (-ENOTTY).
"""

from __future__ import annotations

from kvmsev.firmware.psp import VMSA_SIZE
from kvmsev.firmware.result import CommandResult
from kvmsev.hw import cpuid
from kvmsev.hw.memory import PAGE_SHIFT, PAGE_SIZE
from kvmsev.kernel.usermem import contiguous_run
from kvmsev.kvm.asid import sev_asid_free, sev_asid_new
from kvmsev.kvm.behaviour import DebugSwap
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.psp_calls import platform_init
from kvmsev.kvm.sev_cmd import (
    EBADF,
    EBUSY,
    EFAULT,
    EINVAL,
    ENOTTY,
    SEV_FW_BLOB_MAX_SIZE,
    Cmd,
    SevCmd,
    copy_blobs,
    copy_to_user,
    dev_sev,
    fw,
    issue_ok,
    sev_pin_memory,
    sev_unpin_memory,
)
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import DEFAULT_VM, SEV_ES_VM, SEV_VM, SNP_VM
from kvmsev.kvm.vmsa import refuse_guest_debug, sev_es_sync_vmsa


def sev_guest_init(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_INIT / KVM_SEV_ES_INIT (``sev_guest_init``).

    5.13: no vCPUs yet (-EINVAL, 8727906fde6e); not already active (-EBUSY; -EINVAL from
    fdd58834d132, 6.9); ``es_active`` set from the command before the ASID is chosen and reset on
    failure (9fa1521daafb); every ASID failure is reported as -EBUSY (the preset ``ret``; from
    cc4ce37bed85, 6.9, the allocator's own errno: -ENOTTY for an empty range, the misc cgroup's
    -EINVAL or -EBUSY, -EBUSY when no ASID is free); a failing ``sev_platform_init`` returns its
    error and leaves the ASID awaiting reclaim. 5.12 lacks both 5.13 fixes: ES_INIT marks the VM
    ES first and nothing clears it.
    """
    if env.behaviour.vm_types:
        if vm.vm_type != DEFAULT_VM:
            return EINVAL
        return _sev_guest_init_typed(
            env, kvm, vm, cmd, SEV_ES_VM if cmd.id == SevCmd.ES_INIT else SEV_VM, 0, 0
        )
    fixed = env.behaviour.es_active_set_on_success_only
    if not fixed and cmd.id == SevCmd.ES_INIT:
        vm.es_active = True  # 5.12's sev_es_guest_init, before any check
    if env.behaviour.created_vcpus_check and vm.created_vcpus:
        return EINVAL
    if vm.active:
        return EINVAL if env.behaviour.reinit_einval else EBUSY
    if fixed:
        vm.es_active = cmd.id == SevCmd.ES_INIT
    asid = sev_asid_new(env, kvm, vm)
    if asid < 0:
        if fixed:
            vm.es_active = False
        return asid if env.behaviour.asid_errno_propagated else EBUSY
    vm.asid = asid
    ret, error = platform_init(env)
    if ret:
        cmd.error = error
        sev_asid_free(env, kvm, vm)
        vm.asid = 0
        if fixed:
            vm.es_active = False
        return ret
    vm.active = True
    kvm.track(vm)
    vm.regions = []
    return 0


def sev_guest_init2(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_INIT2 (4f5defae7089, 6.10; ``sev_guest_init2``): only on an SEV or SEV-ES typed VM
    still waiting for it (-EINVAL otherwise), with ``struct kvm_sev_init`` copied in (-EFAULT)."""
    types = (SEV_VM, SEV_ES_VM, SNP_VM) if env.behaviour.sev_snp else (SEV_VM, SEV_ES_VM)
    if not vm.need_init or vm.vm_type not in types:
        return EINVAL
    if cmd.data_fault:
        return EFAULT
    return _sev_guest_init_typed(
        env, kvm, vm, cmd, vm.vm_type, cmd.int("vmsa_features"), cmd.int("flags"), cmd.int("ghcb_version")
    )


def _sev_guest_init_typed(
    env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd, vm_type: int, vmsa_features: int, flags: int, ghcb: int = 0
) -> int:
    """``__sev_guest_init`` (6.10): -EINVAL for vCPUs already created, non-zero ``flags``, VMSA
    features beyond what KVM offers SEV-ES guests (none for SEV: ``sev_supported_vmsa_features``,
    DebugSwap when the ``debug_swap`` parameter stayed on; Secure TSC for SNP guests only), a
    GHCB version above 2 (or any for SEV; from 6.18 version 1 for SNP), or an SEV guest already;
    then ASID and platform init as before, and ``need_init`` cleared. The legacy KVM_SEV_INIT /
    ES_INIT come here with no features and GHCB version 0 (ES_INIT: 1, the minimum)."""
    es = vm_type != SEV_VM
    valid = supported_vmsa_features(env, kvm) if es else 0
    if vm_type != SNP_VM:
        valid &= ~SEV_FEAT_SECURE_TSC
    if vm.created_vcpus or flags or vmsa_features & ~valid:
        return EINVAL
    if ghcb > GHCB_VERSION_MAX or (not es and ghcb):
        return EINVAL
    # 0 means the default, 2, for SEV-ES and SNP types; from 00f0b959ffb0 (6.18) SNP needs 2
    if env.behaviour.snp_min_ghcb_v2 and vm_type == SNP_VM and 0 < ghcb < GHCB_VERSION_MAX:
        return EINVAL
    if vm.active:
        return EINVAL
    vm.es_active = es
    asid = sev_asid_new(env, kvm, vm)
    if asid < 0:
        vm.es_active = False
        return asid
    vm.asid = asid
    ret, error = platform_init(env)
    if ret:
        cmd.error = error
        sev_asid_free(env, kvm, vm)
        vm.asid = 0
        vm.es_active = False
        return ret
    vm.active = True
    kvm.track(vm)
    # an SNP guest's VMSAs also carry SNP_ACTIVE (bit 0; 1dfe571c12cf)
    vm.vmsa_features = vmsa_features | (SEV_FEAT_SNP_ACTIVE if vm_type == SNP_VM else 0)
    vm.regions = []
    vm.need_init = False
    return 0


#: GHCB_VERSION_MAX: the GHCB protocol versions KVM supports (6.10)
GHCB_VERSION_MAX = 2
#: SVM_SEV_FEAT_DEBUG_SWAP, bit 5 of the VMSA's SEV_FEATURES; SNP_ACTIVE, bit 0
SEV_FEAT_DEBUG_SWAP = 1 << 5
SEV_FEAT_SNP_ACTIVE = 1 << 0
#: SVM_SEV_FEAT_SECURE_TSC, bit 9 (a311fce2b694, 6.18): for SNP guests only
SEV_FEAT_SECURE_TSC = 1 << 9


def supported_vmsa_features(env: KernelEnv, kvm: KvmAmd) -> int:
    """``sev_supported_vmsa_features`` (ac5c48027bac, 6.10): DebugSwap when the ``debug_swap``
    parameter survived setup (7.0: when SEV-ES is on and the CPU allows it); from a311fce2b694
    (6.18) Secure TSC too when SNP is enabled and the CPU has it (and ``tsc_khz`` is known,
    which the model takes for granted)."""
    if not env.behaviour.vm_types:
        return 0
    if env.behaviour.debug_swap is DebugSwap.NO_PARAM:
        offered = kvm.sev_es_enabled and env.features.has(cpuid.DEBUG_SWAP) and env.svm.no_nested_data_bp
    else:
        offered = bool(kvm.params.get("debug_swap", False))
    features = SEV_FEAT_DEBUG_SWAP if offered else 0
    snp = bool(kvm.params.get("sev_snp", False))
    if env.behaviour.snp_secure_tsc and snp and env.features.has(cpuid.SECURE_TSC):
        features |= SEV_FEAT_SECURE_TSC
    return features


def sev_bind_asid(env: KernelEnv, vm: Vm, handle: int, cmd: Cmd) -> int:
    """ACTIVATE the VM's ASID for firmware context ``handle``."""
    return fw(env, cmd, env.psp.activate(handle, vm.asid)).ret


def bind_new_context(env: KernelEnv, vm: Vm, cmd: Cmd, start: CommandResult, decommission: bool) -> int:
    """The common tail of LAUNCH_START and RECEIVE_START once the firmware has answered: ACTIVATE
    the VM's ASID for the new context and keep its handle and ``sev_fd``. When ACTIVATE fails the
    context is DECOMMISSIONed only if ``decommission`` (934002cd660b for LAUNCH_START,
    f1815e0aa770 for RECEIVE_START); otherwise the firmware keeps it with no owner.

    The kernel also unbinds and returns -EFAULT when the handle cannot be copied back to a
    parameters block it could read; the model has no memory readable but not writable, so that
    path is not reached.
    """
    if start.ret:
        return start.ret
    handle = start.out
    assert isinstance(handle, int)
    ret = sev_bind_asid(env, vm, handle, cmd)
    if ret:
        if decommission:
            fw(env, None, env.psp.decommission(handle))
        return ret
    vm.handle = handle
    vm.fd = cmd.sev_fd
    cmd.params["handle"] = handle
    return 0


def sev_unbind_asid(env: KernelEnv, handle: int) -> None:
    """DEACTIVATE (under ``sev_deactivate_lock`` for read), then DECOMMISSION; errors ignored."""
    if not handle:
        return
    fw(env, None, env.psp.deactivate(handle))
    fw(env, None, env.psp.decommission(handle))


def sev_launch_start(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_START: firmware context via the caller's ``sev_fd``, then ACTIVATE the ASID.

    The DH certificate is copied only when ``dh_uaddr`` is non-zero and the session blob only when
    ``session_uaddr`` is, each on its own (``psp_copy_user_blob``: -EINVAL for a zero length or one
    over 16 KiB, -EFAULT for an unmapped buffer). If ACTIVATE fails the new context is
    DECOMMISSIONed when the behaviour has 934002cd660b ("KVM: SVM: Call SEV Guest Decommission if
    ASID binding fails"); before it, the context leaks in the firmware (:func:`bind_new_context`).
    """
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    blobs = copy_blobs(vm, cmd, (("dh_uaddr", "dh_len"), ("session_uaddr", "session_len")))
    if isinstance(blobs, int):
        return blobs
    dh_cert, session = blobs
    if not dev_sev(env, cmd.sev_fd):
        return EBADF
    start = fw(env, cmd, env.psp.launch_start(cmd.int("handle"), cmd.int("policy"), dh_cert, session))
    return bind_new_context(env, vm, cmd, start, env.behaviour.decommission_on_bind_failure)


def sev_launch_update_data(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_UPDATE_DATA: pin, then one firmware call per physically contiguous run."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    vaddr, size = cmd.int("uaddr"), cmd.int("len")
    frames = sev_pin_memory(env, vm, vaddr, size)
    if isinstance(frames, int):
        return frames
    ret = 0
    end = vaddr + size
    i = 0
    while vaddr < end:
        offset = vaddr & (PAGE_SIZE - 1)
        pages = contiguous_run(frames, i)
        length = min(pages * PAGE_SIZE - offset, size)
        if not issue_ok(env, vm):
            ret = EBADF
            break
        paddr = (frames[i] << PAGE_SHIFT) + offset
        result = fw(env, cmd, env.psp.launch_update_data(vm.handle, paddr, length))
        if result.ret:
            ret = result.ret
            break
        size -= length
        vaddr += length
        i += pages
    sev_unpin_memory(vm, len(frames))
    return ret


def sev_launch_update_vmsa(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_UPDATE_VMSA: for every vCPU in index order, sync its VMSA page and encrypt it.

    A vCPU created before KVM_SEV_ES_INIT has no VMSA page (``svm_create_vcpu`` allocates one only
    for an SEV-ES VM; the vCPU is zero-allocated, so ``svm->vmsa`` is NULL): ``sev_es_sync_vmsa``
    copies the register state to address 0 and the host oopses. Only kernels without
    8727906fde6e let such a vCPU exist (5.12 before 5.12.4); its changelog names this crash.

    A vCPU already encrypted by an earlier call is synced and encrypted again (the guest's state
    clobbered, harmless to the host), until 9b9f7962e3e8 (7.1) refuses it with -EINVAL. A vCPU
    with guest debugging on or a DR7 other than its fixed bit is refused with -EINVAL
    (:mod:`kvmsev.kvm.vmsa`); the vCPUs before it stay encrypted.
    """
    if not (vm.active and vm.es_active):
        return ENOTTY
    for vcpu in vm.vcpus:
        if refuse_guest_debug(env, vcpu):
            return EINVAL
        synced = sev_es_sync_vmsa(env, vm, vcpu)
        if synced:
            return synced
        assert vcpu.vmsa_pfn is not None  # sev_es_sync_vmsa oopses first
        if not issue_ok(env, vm):
            return EBADF
        result = fw(env, cmd, env.psp.launch_update_vmsa(vm.handle, vcpu.vmsa_pfn << PAGE_SHIFT, VMSA_SIZE))
        if result.ret:
            return result.ret
        vcpu.guest_state_protected = True
    return 0


def sev_launch_measure(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_MEASURE (``sev_launch_measure``). ``len`` 0 queries the size: the firmware answers
    INVALID_LEN, the ioctl returns -EIO, and ``len`` = 48 is written back. Any other ``len`` is
    written back only when the firmware succeeds; after a failure it stays what the caller passed.
    This includes a ``len`` with no ``uaddr``, which the firmware sees as 0.

    A ``len`` over 16 KiB with a buffer is -EINVAL. On success the kernel copies all ``len``
    bytes of its blob to ``uaddr``: the 48-byte measurement, then the rest of the blob. If the
    buffer is not mapped the ioctl is -EFAULT, after the firmware call and after ``len`` is
    written back.

    The rest of the blob is zeros from d22d2474e3953 "KVM: SVM: Use kzalloc for sev ioctl
    interfaces to prevent kernel data leak" (5.19, in stable), which made it a ``kzalloc``. Before
    that it was a ``kmalloc`` and the bytes were stale kernel heap; the model writes zeros there
    too, since it cannot know what the heap held."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    length = cmd.int("len")
    uaddr = cmd.int("uaddr")
    fw_len = 0
    if length and uaddr:
        if length > SEV_FW_BLOB_MAX_SIZE:
            return EINVAL
        fw_len = length
    if not issue_ok(env, vm):
        return EBADF
    result = fw(env, cmd, env.psp.launch_measure(vm.handle, fw_len))
    if not length:  # the query: params.len = data.len, as the firmware left it
        cmd.params["len"] = result.out if isinstance(result.out, int) else 0
        return result.ret
    if result.ret:  # e_free_blob: nothing is written back
        return result.ret
    measurement = result.out
    assert isinstance(measurement, bytes)
    cmd.params["len"] = len(measurement)
    if uaddr and copy_to_user(vm, uaddr, measurement.ljust(length, b"\0")):
        return EFAULT
    cmd.params["measurement"] = measurement.hex()
    return 0


def sev_launch_secret(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_SECRET: pin the guest range; it must be one physically contiguous run (-EINVAL);
    the transport data and the header are copied with ``psp_copy_user_blob``."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    guest_uaddr, guest_len = cmd.int("guest_uaddr"), cmd.int("guest_len")
    frames = sev_pin_memory(env, vm, guest_uaddr, guest_len)
    if isinstance(frames, int):
        return frames
    try:
        if contiguous_run(frames, 0) != len(frames):
            return EINVAL
        blobs = copy_blobs(vm, cmd, (("trans_uaddr", "trans_len"), ("hdr_uaddr", "hdr_len")), optional=False)
        if isinstance(blobs, int):
            return blobs
        trans, header = blobs
        assert trans is not None and header is not None
        if not issue_ok(env, vm):
            return EBADF
        paddr = (frames[0] << PAGE_SHIFT) + (guest_uaddr & (PAGE_SIZE - 1))
        return fw(env, cmd, env.psp.launch_secret(vm.handle, header, paddr, guest_len, trans)).ret
    finally:
        sev_unpin_memory(vm, len(frames))


def sev_launch_finish(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    if not vm.active:
        return ENOTTY
    if not issue_ok(env, vm):
        return EBADF
    return fw(env, cmd, env.psp.launch_finish(vm.handle)).ret


def sev_guest_status(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """GUEST_STATUS: policy, state and the handle KVM asked about."""
    if not vm.active:
        return ENOTTY
    if not issue_ok(env, vm):
        return EBADF
    result = fw(env, cmd, env.psp.guest_status(vm.handle))
    if result.ret:
        return result.ret
    out = result.out
    assert isinstance(out, dict)
    if cmd.data_fault:
        return EFAULT  # the result cannot be copied to params
    cmd.params.update(policy=out["policy"], state=out["state"], handle=vm.handle)
    return 0


def sev_get_attestation_report(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_GET_ATTESTATION_REPORT (2c07ded06427, 5.12; sev.c ``sev_get_attestation_report``).

    ``len`` 0 is the size query: the firmware gets no buffer and no nonce, and whatever it answers
    (normally INVALID_LEN, so -EIO) ``len`` is written back. Otherwise, with a buffer address,
    ``len`` over 16 KiB is -EINVAL and the 16-byte ``mnonce`` goes to the firmware (with ``len``
    but no address, neither the buffer nor the nonce does). A firmware error returns without
    writing ``len`` back; on success ``len`` bytes are copied to the buffer (-EFAULT when unmapped)
    and the firmware's length is written back.
    """
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    length, uaddr = cmd.int("len"), cmd.int("uaddr")
    mnonce = cmd.params.get("mnonce", bytes(16))
    assert isinstance(mnonce, bytes)
    fw_len = 0
    nonce = bytes(16)
    if length and uaddr:
        if length > SEV_FW_BLOB_MAX_SIZE:
            return EINVAL
        fw_len, nonce = length, mnonce
    if not issue_ok(env, vm):
        return EBADF
    result = fw(env, cmd, env.psp.attestation(vm.handle, nonce, fw_len))
    if not length:
        if isinstance(result.out, int):
            cmd.params["len"] = result.out
        return result.ret
    if result.ret:
        return result.ret
    report = result.out
    assert isinstance(report, bytes)
    ret = 0
    if uaddr and copy_to_user(vm, uaddr, report[:length].ljust(length, b"\0")):
        ret = EFAULT
    cmd.params["len"] = len(report)
    cmd.params["report"] = report.hex()
    return ret
