"""What every ``KVM_MEMORY_ENCRYPT_OP`` handler shares (sev.c, drivers/crypto/ccp/sev-dev.c,
5.12/5.13): the command and result records, the firmware call through ``/dev/sev``, user-memory
copies that can fault, ``psp_copy_user_blob`` and page pinning.

Firmware commands other than LAUNCH_START / RECEIVE_START go through ``sev_issue_cmd()``, which
uses the ``sev_fd`` saved by a successful LAUNCH_START or RECEIVE_START: before one that is fd 0,
not /dev/sev, so the driver answers -EBADF without reaching the firmware.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmsev.errors import Errno
from kvmsev.firmware.result import CommandResult
from kvmsev.hw.memory import PAGE_SHIFT
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm

#: SEV_FW_BLOB_MAX_SIZE (include/linux/psp-sev.h): the largest blob KVM copies for the firmware
SEV_FW_BLOB_MAX_SIZE = 0x4000
ULONG_MAX = 2**64 - 1
INT_MAX = 2**31 - 1
#: the fd number the modeled userspace gets for /dev/sev (any non-zero number would do)
DEV_SEV_FD = 3

ENOTTY = -int(Errno.ENOTTY)
EINVAL = -int(Errno.EINVAL)
EPERM = -int(Errno.EPERM)
EBUSY = -int(Errno.EBUSY)
EBADF = -int(Errno.EBADF)
ENOMEM = -int(Errno.ENOMEM)
EFAULT = -int(Errno.EFAULT)
EIO = -int(Errno.EIO)


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
    #: 4f5defae7089 "KVM: SEV: introduce KVM_SEV_INIT2 operation" (6.10)
    INIT2 = 22
    #: 136d8bc931c8, dee5a47cc7a4, ad27ce155566 (6.11)
    SNP_LAUNCH_START = 100
    SNP_LAUNCH_UPDATE = 101
    SNP_LAUNCH_FINISH = 102
    #: 20c3c4108d58 (7.0)
    SNP_ENABLE_REQ_CERTS = 103


@dataclass(slots=True)
class IoctlResult:
    """``ret`` as the ioctl returns it; ``error`` is ``kvm_sev_cmd.error`` after copy-back."""

    ret: int
    error: int = 0
    result: object = None


@dataclass(slots=True)
class Cmd:
    """One ``kvm_sev_cmd`` being processed: the parameters struct as fields, and the firmware
    error it accumulates. Handlers write back into ``params`` what KVM copies to userspace."""

    id: int
    params: dict[str, object]
    sev_fd: int
    error: int = 0
    #: the parameters struct (``kvm_sev_cmd.data``) is not mapped in the VMM: copying it faults
    data_fault: bool = False

    def int(self, key: str, default: int = 0) -> int:
        value = self.params.get(key, default)
        assert isinstance(value, int)
        return value


def fw(env: KernelEnv, cmd: Cmd | None, result: CommandResult) -> CommandResult:
    """Trace a firmware command; its status becomes ``kvm_sev_cmd.error`` when it was reached."""
    env.trace.fw(result)
    if cmd is not None and result.status is not None:
        cmd.error = result.code
    return result


def dev_sev(env: KernelEnv, fd: int) -> bool:
    """``sev_issue_cmd_external_user``: the file must be /dev/sev, which the ccp driver registers
    when the PSP offers SEV (and, from 1877c73b7c03 in 5.13, the CPU has X86_FEATURE_SEV)."""
    return env.ccp.dev_sev and fd == DEV_SEV_FD


def issue_ok(env: KernelEnv, vm: Vm) -> bool:
    """``sev_issue_cmd(kvm, ...)`` goes through ``sev->fd``: False means -EBADF before the
    firmware is reached."""
    return dev_sev(env, vm.fd)


def copy_from_user(vm: Vm, uaddr: int, length: int) -> bytes | None:
    """``copy_from_user``: None (-EFAULT) when any byte is not mapped in the VMM."""
    return vm.memory.copy_from_user(uaddr, length)


def copy_to_user(vm: Vm, uaddr: int, data: bytes) -> int:
    """``copy_to_user``: the bytes not copied, where the VMM's mapping ends (callers answer any
    with -EFAULT, except 5.13's SEND_UPDATE_DATA, which returns the count)."""
    return vm.memory.copy_to_user(uaddr, data)


def copy_user_blob(vm: Vm, uaddr: int, length: int) -> bytes | int:
    """``psp_copy_user_blob``: -EINVAL for a zero address or length or one over 16 KiB, -EFAULT
    when the copy faults; else the bytes."""
    if not uaddr or not length or length > SEV_FW_BLOB_MAX_SIZE:
        return EINVAL
    data = copy_from_user(vm, uaddr, length)
    return EFAULT if data is None else data


def copy_blobs(
    vm: Vm, cmd: Cmd, pairs: tuple[tuple[str, str], ...], optional: bool = True
) -> list[bytes | None] | int:
    """Each ``(address, length)`` parameter pair copied with ``psp_copy_user_blob``, in order;
    the first error stops. ``optional``: a pair with a zero address is skipped (None), as
    LAUNCH_START does for its DH certificate and session; otherwise it is -EINVAL."""
    out: list[bytes | None] = []
    for addr_key, len_key in pairs:
        if optional and not cmd.int(addr_key):
            out.append(None)
            continue
        blob = copy_user_blob(vm, cmd.int(addr_key), cmd.int(len_key))
        if isinstance(blob, int):
            return blob
        out.append(blob)
    return out


def sev_pin_memory(env: KernelEnv, vm: Vm, uaddr: int, ulen: int) -> list[int] | int:
    """``sev_pin_memory``: frames, or -errno; counts against RLIMIT_MEMLOCK per VM.

    A range of more than INT_MAX pages (only KVM_MEMORY_ENCRYPT_REG_REGION's 64-bit size can ask
    for one) is -EINVAL, because ``pin_user_pages_fast()`` takes an int: after the RLIMIT_MEMLOCK
    check and with a WARN_ON_ONCE splat (5.12 on), before it and silently from 8acffeef5ef7
    (7.1). Where a smaller range's page array cannot be allocated (``__vmalloc`` of up to 16 GiB)
    depends on the host's memory, which is not modeled (nor 7.1's check against
    ``totalram_pages()``): the model goes on to the pin, which fails on any page not mapped
    (-ENOMEM)."""
    npages = _pin_checks(env, vm, uaddr, ulen)
    if npages < 0:
        return npages
    frames = vm.memory.pin(uaddr, npages)
    return _pinned(env, vm, npages, len(frames)) or frames


def sev_pin_count(env: KernelEnv, vm: Vm, uaddr: int, ulen: int) -> int:
    """:func:`sev_pin_memory` for a caller that keeps only how many pages it pinned
    (KVM_MEMORY_ENCRYPT_REG_REGION): the same checks and messages, the pages or -errno, without
    listing a frame per page (a 4 GiB region is a million of them)."""
    npages = _pin_checks(env, vm, uaddr, ulen)
    if npages < 0:
        return npages
    return _pinned(env, vm, npages, vm.memory.pinnable(uaddr, npages)) or npages


def _pin_checks(env: KernelEnv, vm: Vm, uaddr: int, ulen: int) -> int:
    """Everything ``sev_pin_memory`` checks before ``pin_user_pages_fast``: the pages to pin,
    or -errno."""
    if ulen == 0 or uaddr + ulen > ULONG_MAX:
        return EINVAL
    first = uaddr >> PAGE_SHIFT
    last = (uaddr + ulen - 1) >> PAGE_SHIFT
    npages = last - first + 1
    b = env.behaviour
    if b.pin_int_max_first and npages > INT_MAX:
        return EINVAL
    locked = vm.pages_locked + npages
    lock_limit = env.memlock_limit >> PAGE_SHIFT
    if locked > lock_limit and not env.cap_ipc_lock:
        if b.pin_total_pages_message:
            env.trace.dmesg(f"SEV: {locked} total pages would exceed the lock limit of {lock_limit}.")
        else:
            env.trace.dmesg(f"SEV: {locked} locked pages exceed the lock limit of {lock_limit}.")
        return ENOMEM
    if npages > INT_MAX:
        env.warn_on_once("arch/x86/kvm/svm/sev.c", "sev_pin_memory")
        return EINVAL
    return npages


def _pinned(env: KernelEnv, vm: Vm, npages: int, got: int) -> int:
    """After the pin: -ENOMEM with the kernel's message when a page was not mapped, else 0
    with the pages counted as locked."""
    if got != npages:
        env.trace.dmesg(f"SEV: Failure locking {npages} pages.")
        return ENOMEM
    vm.pages_locked += npages
    return 0


def sev_unpin_memory(vm: Vm, npages: int) -> None:
    vm.pages_locked -= npages
