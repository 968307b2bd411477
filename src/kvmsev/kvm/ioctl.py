"""The VM ioctls of SEV: ``KVM_MEMORY_ENCRYPT_OP`` (``svm_mem_enc_op``) and
``KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION`` (sev.c, 5.12/5.13).

Dispatcher order (``svm_mem_enc_op``): KVM's SEV off -> -ENOTTY; NULL argument -> 0; copy-in
fault -> -EFAULT; take ``kvm->lock``; unknown or unimplemented id -> -EINVAL (no copy-back);
otherwise run the handler and copy the whole ``kvm_sev_cmd`` back, so ``error`` carries the
firmware status even on failure.

Every handler but INIT checks ``sev_guest()`` first (-ENOTTY). Firmware commands other than
LAUNCH_START and the driver-internal ones go through ``sev_issue_cmd()``, which uses the
``sev_fd`` saved by LAUNCH_START: before a successful LAUNCH_START that is fd 0, not /dev/sev,
so the driver answers -EBADF without reaching the firmware.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmsev.errors import Errno
from kvmsev.firmware.guest import Session
from kvmsev.firmware.psp import VMSA_SIZE, CommandResult
from kvmsev.hw.memory import PAGE_SHIFT, PAGE_SIZE
from kvmsev.kernel import ccp
from kvmsev.kernel.usermem import contiguous_run
from kvmsev.kvm.asid import sev_asid_free, sev_asid_new
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import EncRegion, Vm
from kvmsev.kvm.oops import null_deref
from kvmsev.kvm.sev import svm_sev_enabled
from kvmsev.kvm.state import KvmAmd

SEV_FW_BLOB_MAX_SIZE = 0x4000
ULONG_MAX = 2**64 - 1
#: the fd number the modeled userspace gets for /dev/sev (any non-zero number would do)
DEV_SEV_FD = 3


class SevCmd(enum.IntEnum):
    """``enum sev_cmd_id`` (include/uapi/linux/kvm.h)."""

    INIT = 0
    ES_INIT = 1
    LAUNCH_START = 2
    LAUNCH_UPDATE_DATA = 3
    LAUNCH_UPDATE_VMSA = 4
    LAUNCH_SECRET = 5
    LAUNCH_MEASURE = 6
    LAUNCH_FINISH = 7
    SEND_START = 8
    SEND_UPDATE_DATA = 9
    SEND_UPDATE_VMSA = 10
    SEND_FINISH = 11
    RECEIVE_START = 12
    RECEIVE_UPDATE_DATA = 13
    RECEIVE_UPDATE_VMSA = 14
    RECEIVE_FINISH = 15
    GUEST_STATUS = 16
    DBG_DECRYPT = 17
    DBG_ENCRYPT = 18
    CERT_EXPORT = 19
    GET_ATTESTATION_REPORT = 20
    SEND_CANCEL = 21


@dataclass(slots=True)
class IoctlResult:
    """``ret`` as the ioctl returns it; ``error`` is ``kvm_sev_cmd.error`` after copy-back."""

    ret: int
    error: int = 0
    result: object = None


_ENOTTY = -int(Errno.ENOTTY)
_EINVAL = -int(Errno.EINVAL)
_EBUSY = -int(Errno.EBUSY)
_EBADF = -int(Errno.EBADF)
_ENOMEM = -int(Errno.ENOMEM)


@dataclass(slots=True)
class Cmd:
    """One ``kvm_sev_cmd`` being processed: the firmware error it accumulates."""

    id: int
    params: dict[str, object]
    sev_fd: int
    error: int = 0


def _fw(env: KernelEnv, cmd: Cmd | None, result: CommandResult) -> CommandResult:
    env.trace.fw(result)
    if cmd is not None and result.status is not None:
        cmd.error = result.code
    return result


def _dev_sev(env: KernelEnv, fd: int) -> bool:
    """``sev_issue_cmd_external_user``: the file must be /dev/sev (which exists with SEV firmware)."""
    return env.psp.present and fd == DEV_SEV_FD


def _int(params: dict[str, object], key: str, default: int = 0) -> int:
    value = params.get(key, default)
    assert isinstance(value, int)
    return value


# -- pinning --------------------------------------------------------------------------------
def sev_pin_memory(env: KernelEnv, vm: Vm, uaddr: int, ulen: int) -> list[int] | int:
    """``sev_pin_memory``: frames, or -errno; counts against RLIMIT_MEMLOCK per VM."""
    if ulen == 0 or uaddr + ulen > ULONG_MAX:
        return _EINVAL
    first = uaddr >> PAGE_SHIFT
    last = (uaddr + ulen - 1) >> PAGE_SHIFT
    npages = last - first + 1
    locked = vm.pages_locked + npages
    lock_limit = env.memlock_limit >> PAGE_SHIFT
    if locked > lock_limit and not env.cap_ipc_lock:
        env.trace.dmesg(f"SEV: {locked} locked pages exceed the lock limit of {lock_limit}.")
        return _ENOMEM
    frames = vm.memory.pin(uaddr, npages)
    if len(frames) != npages:
        env.trace.dmesg(f"SEV: Failure locking {npages} pages.")
        return _ENOMEM
    vm.pages_locked = locked
    return frames


def sev_unpin_memory(vm: Vm, npages: int) -> None:
    vm.pages_locked -= npages


# -- handlers -------------------------------------------------------------------------------
def sev_guest_init(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """KVM_SEV_INIT / KVM_SEV_ES_INIT (``sev_guest_init``).

    5.13: no vCPUs yet (-EINVAL, 8727906fde6e); not already active (-EBUSY); ``es_active`` set
    from the command before the ASID is chosen and reset on failure (9fa1521daafb); every ASID
    failure is reported as -EBUSY (the preset ``ret``); a failing ``sev_platform_init`` returns
    its error and leaves the ASID awaiting reclaim. 5.12 lacks both fixes: ES_INIT marks the VM
    ES first and nothing clears it.
    """
    fixed = env.behaviour.es_active_set_on_success_only
    if not fixed and cmd.id == SevCmd.ES_INIT:
        vm.es_active = True  # 5.12's sev_es_guest_init, before any check
    if env.behaviour.created_vcpus_check and vm.created_vcpus:
        return _EINVAL
    if vm.active:
        return _EBUSY
    if fixed:
        vm.es_active = cmd.id == SevCmd.ES_INIT
    asid = sev_asid_new(env, kvm, vm)
    if asid < 0:
        if fixed:
            vm.es_active = False
        return _EBUSY
    vm.asid = asid
    ret, error = ccp.sev_platform_init(env.psp, env.ccp, env.wbinvd_on_all_cpus, env.trace.fw)
    if ret:
        cmd.error = error
        sev_asid_free(env, kvm, vm, env.behaviour.sev_vmcbs_clear_real_asid)
        vm.asid = 0
        if fixed:
            vm.es_active = False
        return ret
    vm.active = True
    vm.regions = []
    return 0


def _bind_asid(env: KernelEnv, vm: Vm, handle: int, cmd: Cmd) -> int:
    return _fw(env, cmd, env.psp.activate(handle, vm.asid)).ret


def sev_unbind_asid(env: KernelEnv, vm: Vm, handle: int) -> None:
    """DEACTIVATE (under ``sev_deactivate_lock`` for read), then DECOMMISSION; errors ignored."""
    if not handle:
        return
    _fw(env, None, env.psp.deactivate(handle))
    _fw(env, None, env.psp.decommission(handle))


def _blob(params: dict[str, object], addr_key: str, len_key: str) -> int | None:
    """``psp_copy_user_blob``: -EINVAL for a zero address or length, or one over 16 KiB."""
    uaddr, length = _int(params, addr_key), _int(params, len_key)
    if not uaddr or not length or length > SEV_FW_BLOB_MAX_SIZE:
        return _EINVAL
    return None


def sev_launch_start(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_START: firmware context via the caller's ``sev_fd``, then ACTIVATE the ASID.

    If ACTIVATE fails the new context is DECOMMISSIONed when the behaviour has 934002cd660b
    ("KVM: SVM: Call SEV Guest Decommission if ASID binding fails"); before it, the context
    leaks in the firmware.
    """
    if not vm.active:
        return _ENOTTY
    p = cmd.params
    session = p.get("session")
    if _int(p, "dh_uaddr"):
        err = _blob(p, "dh_uaddr", "dh_len")
        if err is not None:
            return err
        err = _blob(p, "session_uaddr", "session_len")
        if err is not None:
            return err
    if not _dev_sev(env, cmd.sev_fd):
        return _EBADF
    fw_session = session if isinstance(session, Session) else None
    start = _fw(env, cmd, env.psp.launch_start(_int(p, "handle"), _int(p, "policy"), fw_session))
    if start.ret:
        return start.ret
    handle = start.out
    assert isinstance(handle, int)
    ret = _bind_asid(env, vm, handle, cmd)
    if ret:
        if env.behaviour.decommission_on_bind_failure:
            _fw(env, None, env.psp.decommission(handle))
        return ret
    vm.handle = handle
    vm.fd = cmd.sev_fd
    cmd.params["handle"] = handle
    return 0


def _issue_ok(env: KernelEnv, vm: Vm) -> bool:
    """``sev_issue_cmd(kvm, ...)`` goes through ``sev->fd``, saved by LAUNCH_START: False means
    the driver answers -EBADF without reaching the firmware (before that it is fd 0)."""
    return _dev_sev(env, vm.fd)


def sev_launch_update_data(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_UPDATE_DATA: pin, then one firmware call per physically contiguous run."""
    if not vm.active:
        return _ENOTTY
    vaddr, size = _int(cmd.params, "uaddr"), _int(cmd.params, "len")
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
        if not _issue_ok(env, vm):
            ret = _EBADF
            break
        paddr = (frames[i] << PAGE_SHIFT) + offset
        result = _fw(env, cmd, env.psp.launch_update_data(vm.handle, paddr, length))
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
    """
    if not (vm.active and vm.es_active):
        return _ENOTTY
    for vcpu in vm.vcpus:
        if vcpu.vmsa_pfn is None:
            raise null_deref("sev_es_sync_vmsa: memcpy to svm->vmsa")
        if not _issue_ok(env, vm):
            return _EBADF
        result = _fw(env, cmd, env.psp.launch_update_vmsa(vm.handle, vcpu.vmsa_pfn << PAGE_SHIFT, VMSA_SIZE))
        if result.ret:
            return result.ret
        vcpu.guest_state_protected = True
    return 0


def sev_launch_measure(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_MEASURE: ``len`` 0 queries the size (the firmware answers INVALID_LEN, so the
    ioctl returns -EIO with ``len`` = 48 written back); over 16 KiB -> -EINVAL."""
    if not vm.active:
        return _ENOTTY
    length = _int(cmd.params, "len")
    uaddr = _int(cmd.params, "uaddr")
    fw_len = 0
    if length and uaddr:
        if length > SEV_FW_BLOB_MAX_SIZE:
            return _EINVAL
        fw_len = length
    if not _issue_ok(env, vm):
        return _EBADF
    result = _fw(env, cmd, env.psp.launch_measure(vm.handle, fw_len))
    if isinstance(result.out, bytes):
        cmd.params["len"] = len(result.out)
        if uaddr and length:
            vm.memory.write(uaddr, result.out)
        cmd.params["measurement"] = result.out.hex()
    elif isinstance(result.out, int):
        cmd.params["len"] = result.out
    return result.ret


def sev_launch_secret(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """LAUNCH_SECRET: pin the guest range; it must be one physically contiguous run (-EINVAL)."""
    if not vm.active:
        return _ENOTTY
    p = cmd.params
    guest_uaddr, guest_len = _int(p, "guest_uaddr"), _int(p, "guest_len")
    frames = sev_pin_memory(env, vm, guest_uaddr, guest_len)
    if isinstance(frames, int):
        return frames
    try:
        if contiguous_run(frames, 0) != len(frames):
            return _EINVAL
        for addr_key, len_key in (("trans_uaddr", "trans_len"), ("hdr_uaddr", "hdr_len")):
            err = _blob(p, addr_key, len_key)
            if err is not None:
                return err
        trans = vm.memory.read(_int(p, "trans_uaddr"), _int(p, "trans_len"))
        header = vm.memory.read(_int(p, "hdr_uaddr"), _int(p, "hdr_len"))
        if not _issue_ok(env, vm):
            return _EBADF
        paddr = (frames[0] << PAGE_SHIFT) + (guest_uaddr & (PAGE_SIZE - 1))
        return _fw(env, cmd, env.psp.launch_secret(vm.handle, header, paddr, guest_len, trans)).ret
    finally:
        sev_unpin_memory(vm, len(frames))


def sev_launch_finish(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    if not vm.active:
        return _ENOTTY
    if not _issue_ok(env, vm):
        return _EBADF
    return _fw(env, cmd, env.psp.launch_finish(vm.handle)).ret


def sev_guest_status(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """GUEST_STATUS: policy, state and the handle KVM asked about."""
    if not vm.active:
        return _ENOTTY
    if not _issue_ok(env, vm):
        return _EBADF
    result = _fw(env, cmd, env.psp.guest_status(vm.handle))
    if result.ret:
        return result.ret
    out = result.out
    assert isinstance(out, dict)
    cmd.params.update(policy=out["policy"], state=out["state"], handle=vm.handle)
    return 0


def sev_dbg_crypt(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd, encrypt: bool) -> int:
    """DBG_DECRYPT / DBG_ENCRYPT, page by page; unaligned pieces go through 16-byte-aligned
    bounce buffers (``__sev_dbg_decrypt_user`` / ``__sev_dbg_encrypt_user``)."""
    if not vm.active:
        return _ENOTTY
    src, dst, size = _int(cmd.params, "src_uaddr"), _int(cmd.params, "dst_uaddr"), _int(cmd.params, "len")
    if not size or src + size > ULONG_MAX:
        return _EINVAL
    if not dst:
        return _EINVAL
    end = src + size
    while src < end:
        src_frames = sev_pin_memory(env, vm, src & ~(PAGE_SIZE - 1), PAGE_SIZE)
        if isinstance(src_frames, int):
            return src_frames
        dst_frames = sev_pin_memory(env, vm, dst & ~(PAGE_SIZE - 1), PAGE_SIZE)
        if isinstance(dst_frames, int):
            sev_unpin_memory(vm, 1)
            return dst_frames
        s_off, d_off = src & (PAGE_SIZE - 1), dst & (PAGE_SIZE - 1)
        length = min(PAGE_SIZE - s_off, size)
        src_pa = (src_frames[0] << PAGE_SHIFT) + s_off
        dst_pa = (dst_frames[0] << PAGE_SHIFT) + d_off
        ret = _dbg_chunk(env, vm, cmd, encrypt, src_pa, dst_pa, length)
        sev_unpin_memory(vm, 2)
        if ret:
            return ret
        src += length
        dst += length
        size -= length
    return 0


def _dbg_chunk(env: KernelEnv, vm: Vm, cmd: Cmd, encrypt: bool, src_pa: int, dst_pa: int, length: int) -> int:
    """One page's worth, rounded out to 16-byte alignment through a bounce buffer."""
    mem = env.psp.memory
    if not _issue_ok(env, vm):
        return _EBADF
    if not encrypt:
        start = src_pa & ~15
        span = ((src_pa + length + 15) & ~15) - start
        bounce = env.bounce_paddr
        result = _fw(env, cmd, env.psp.dbg(False, vm.handle, start, bounce, span))
        if result.ret:
            return result.ret
        plain = mem.read(bounce + (src_pa - start), length)
        mem.write(dst_pa, plain)
        return 0
    # encrypt: read-modify-write the aligned destination span
    start = dst_pa & ~15
    span = ((dst_pa + length + 15) & ~15) - start
    bounce = env.bounce_paddr
    if start != dst_pa or span != length:
        result = _fw(env, cmd, env.psp.dbg(False, vm.handle, start, bounce, span))
        if result.ret:
            return result.ret
    mem.write(bounce + (dst_pa - start), mem.read(src_pa, length))
    return _fw(env, cmd, env.psp.dbg(True, vm.handle, bounce, start, span)).ret


HANDLERS = {
    SevCmd.INIT: sev_guest_init,
    SevCmd.ES_INIT: sev_guest_init,
    SevCmd.LAUNCH_START: sev_launch_start,
    SevCmd.LAUNCH_UPDATE_DATA: sev_launch_update_data,
    SevCmd.LAUNCH_UPDATE_VMSA: sev_launch_update_vmsa,
    SevCmd.LAUNCH_SECRET: sev_launch_secret,
    SevCmd.LAUNCH_MEASURE: sev_launch_measure,
    SevCmd.LAUNCH_FINISH: sev_launch_finish,
    SevCmd.GUEST_STATUS: sev_guest_status,
}


def mem_enc_op(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> IoctlResult:
    """``svm_mem_enc_op``: the dispatcher, in its check order."""
    if env.behaviour.gates_on_sev_enabled:
        enabled = kvm.sev_enabled
    else:
        enabled = svm_sev_enabled(env, kvm) and kvm.sev_enabled
    if not enabled:
        return IoctlResult(_ENOTTY)
    if cmd.id == SevCmd.ES_INIT and not kvm.sev_es_enabled:
        return IoctlResult(_ENOTTY, cmd.error)
    if cmd.id in (SevCmd.DBG_DECRYPT, SevCmd.DBG_ENCRYPT):
        ret = sev_dbg_crypt(env, kvm, vm, cmd, cmd.id == SevCmd.DBG_ENCRYPT)
    else:
        handler = HANDLERS.get(SevCmd(cmd.id)) if cmd.id in SevCmd._value2member_map_ else None
        if handler is None:
            return IoctlResult(_EINVAL)
        ret = handler(env, kvm, vm, cmd)
    return IoctlResult(ret, cmd.error, cmd.params)


# -- regions --------------------------------------------------------------------------------
def register_region(env: KernelEnv, vm: Vm, addr: int, size: int) -> int:
    """KVM_MEMORY_ENCRYPT_REG_REGION (``svm_register_enc_region``)."""
    if not vm.active:
        return _ENOTTY
    if addr > ULONG_MAX or size > ULONG_MAX:
        return _EINVAL
    frames = sev_pin_memory(env, vm, addr, size)
    if isinstance(frames, int):
        return frames
    vm.regions.append(EncRegion(addr, size, len(frames)))
    return 0


def unregister_region(env: KernelEnv, vm: Vm, addr: int, size: int) -> int:
    """KVM_MEMORY_ENCRYPT_UNREG_REGION: exact match required; WBINVD on all CPUs, then unpin."""
    if not vm.active:
        return _ENOTTY
    region = next((r for r in vm.regions if r.uaddr == addr and r.size == size), None)
    if region is None:
        return _EINVAL
    env.wbinvd_on_all_cpus()
    vm.regions.remove(region)
    sev_unpin_memory(vm, region.npages)
    return 0
