"""KVM's live-migration commands (sev.c, 5.13-rc1; absent in 5.12, whose dispatcher answers
-EINVAL): SEND_START, SEND_UPDATE_DATA, SEND_FINISH, SEND_CANCEL, RECEIVE_START,
RECEIVE_UPDATE_DATA, RECEIVE_FINISH. Check order, errno values and copy-backs follow v5.13's
sev.c (git blob 8d36f0c73071).

5.13 quirks kept as they are:

* A guest page that cannot be pinned is not caught: ``sev_pin_memory`` returns an error pointer
  and the NULL test misses it, so SEND/RECEIVE_UPDATE_DATA dereference it and the host oopses
  (fixed by c7a1b2b678c5, 5.14).
* SEND_UPDATE_DATA returns the number of header bytes it could not copy to userspace, a positive
  value, instead of -EFAULT (fixed by b4a693924aab, 5.14).
* RECEIVE_START does not DECOMMISSION the context whose ACTIVATE failed: it leaks (fixed by
  f1815e0aa770, 5.15).
* RECEIVE_UPDATE_DATA on a VM that is not an SEV guest returns -EINVAL, not -ENOTTY.

Guest addresses passed to the firmware carry the C-bit (``sev_me_mask``).
"""

from __future__ import annotations

from kvmsev.hw.memory import PAGE_SHIFT, PAGE_SIZE
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.launch import bind_new_context
from kvmsev.kvm.oops import KernelOops
from kvmsev.kvm.sev_cmd import (
    EBADF,
    EFAULT,
    EINVAL,
    ENOMEM,
    ENOTTY,
    SEV_FW_BLOB_MAX_SIZE,
    Cmd,
    copy_blobs,
    copy_to_user,
    dev_sev,
    fw,
    issue_ok,
    sev_pin_memory,
    sev_unpin_memory,
)
from kvmsev.kvm.state import KvmAmd


def _me_mask(kvm: KvmAmd) -> int:
    """``sev_me_mask = 1UL << (CPUID 0x8000001F EBX & 0x3f)``, set by sev_hardware_setup."""
    return 1 << kvm.sev_enc_bit


def _guest_page(env: KernelEnv, vm: Vm, cmd: Cmd) -> list[int] | int:
    """Pin the one page the guest data sits in; a failure is an error pointer KVM then
    dereferences (5.13) or returns (from c7a1b2b678c5)."""
    frames = sev_pin_memory(env, vm, cmd.int("guest_uaddr") & ~(PAGE_SIZE - 1), PAGE_SIZE)
    if isinstance(frames, int) and not env.behaviour.migration_pin_error_checked:
        raise KernelOops(
            f"BUG: unable to handle page fault for address: {frames & 0xFFFF_FFFF_FFFF_FFFF:016x}",
            "sev_send/receive_update_data: guest_page[0] of an error pointer",
        )
    return frames


def _crosses_page(env: KernelEnv, cmd: Cmd) -> bool:
    """``guest_len + offset > PAGE_SIZE`` in 32-bit unsigned arithmetic (``__u32`` plus ``int``: a
    huge length wraps), with ``guest_len > PAGE_SIZE`` checked first from f94f053aa3a5 (6.3)."""
    offset = cmd.int("guest_uaddr") & (PAGE_SIZE - 1)
    if env.behaviour.update_data_len_checked and cmd.int("guest_len") > PAGE_SIZE:
        return True
    return (cmd.int("guest_len") + offset) & 0xFFFF_FFFF > PAGE_SIZE


def sev_send_start(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """SEND_START: ``session_len`` 0 queries the session length (params written back whatever the
    firmware says); else the PDH certificate, the session buffer and a session length of at most
    16 KiB are required (-EINVAL), and the PDH, platform and AMD certificates are copied as blobs.
    On success the session goes to the caller's buffer (-EFAULT, params not written back); the
    policy and session length are written back in any case: after a firmware error (or -EBADF)
    the policy as 0 and the session length as the caller passed it, unless the firmware wrote
    one."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    if not cmd.int("session_len"):
        if not issue_ok(env, vm):
            return EBADF
        result = fw(env, cmd, env.psp.send_start(vm.handle, b"", b"", 0))
        out = result.out if isinstance(result.out, dict) else {}
        cmd.params["session_len"] = out.get("session_len", 0)
        return result.ret
    if (
        not cmd.int("pdh_cert_uaddr")
        or not cmd.int("pdh_cert_len")
        or not cmd.int("session_uaddr")
        or cmd.int("session_len") > SEV_FW_BLOB_MAX_SIZE
    ):
        return EINVAL
    blobs = copy_blobs(
        vm,
        cmd,
        (
            ("pdh_cert_uaddr", "pdh_cert_len"),
            ("plat_certs_uaddr", "plat_certs_len"),
            ("amd_certs_uaddr", "amd_certs_len"),
        ),
        optional=False,
    )
    if isinstance(blobs, int):
        return blobs
    pdh, plat, amd = blobs
    assert pdh is not None and plat is not None and amd is not None
    if not issue_ok(env, vm):
        # sev_issue_cmd refuses the fd, and the write-back still runs: data.policy as zeroed,
        # data.session_len as KVM filled it in from the caller's
        cmd.params["policy"] = 0
        return EBADF
    result = fw(env, cmd, env.psp.send_start(vm.handle, pdh, plat, cmd.int("session_len")))
    out = result.out if isinstance(result.out, dict) else {}
    if result.ok:
        session = out["session"]
        assert isinstance(session, bytes)
        data = session.ljust(cmd.int("session_len"), b"\0")[: cmd.int("session_len")]
        if copy_to_user(vm, cmd.int("session_uaddr"), data):
            return EFAULT
        cmd.params["session"] = session.hex()
    cmd.params["policy"] = out.get("policy", 0)
    # data.session_len: what the firmware wrote (the needed length, or on success the session's),
    # else the caller's own, which KVM put there
    session = out.get("session")
    written = len(session) if isinstance(session, bytes) else cmd.int("session_len")
    cmd.params["session_len"] = out.get("session_len", written)
    return result.ret


#: SEND_UPDATE_DATA's header and transport buffers (allocated and freed within the call)
_SEND_HDR, _SEND_TRANS = "sev_send_update_data:hdr", "sev_send_update_data:trans"


def sev_send_update_data(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """SEND_UPDATE_DATA: a zero ``hdr_len`` or ``trans_len`` queries both lengths (written back
    even when the fd is refused); else all four addresses and the guest length are required
    (-EINVAL), the guest data must not cross a page (-EINVAL), the guest page is pinned, header
    and transport buffers allocated (-ENOMEM past KMALLOC_MAX_SIZE, with the page allocator's
    one warning), and the packet copied out: transport (-EFAULT), then header (5.13 returns the
    count of bytes not copied)."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    if not cmd.int("trans_len") or not cmd.int("hdr_len"):
        if not issue_ok(env, vm):  # the write-back still runs, with the zeroed lengths
            cmd.params["hdr_len"] = cmd.params["trans_len"] = 0
            return EBADF
        result = fw(env, cmd, env.psp.send_update_data(vm.handle, 0, 0, 0, 0))
        out = result.out if isinstance(result.out, dict) else {}
        cmd.params["hdr_len"] = out.get("hdr_len", 0)
        cmd.params["trans_len"] = out.get("trans_len", 0)
        return result.ret
    if (
        not cmd.int("trans_uaddr")
        or not cmd.int("guest_uaddr")
        or not cmd.int("guest_len")
        or not cmd.int("hdr_uaddr")
    ):
        return EINVAL
    if _crosses_page(env, cmd):
        return EINVAL
    frames = _guest_page(env, vm, cmd)
    if isinstance(frames, int):
        return frames
    try:
        # kzalloc of each buffer: over KMALLOC_MAX_SIZE the page allocator warns once and fails
        if not env.kmalloc(_SEND_HDR, cmd.int("hdr_len")):
            return ENOMEM
        if not env.kmalloc(_SEND_TRANS, cmd.int("trans_len")):
            return ENOMEM
        paddr = (frames[0] << PAGE_SHIFT) + (cmd.int("guest_uaddr") & (PAGE_SIZE - 1))
        if not issue_ok(env, vm):
            return EBADF
        result = fw(
            env,
            cmd,
            env.psp.send_update_data(
                vm.handle,
                paddr | _me_mask(kvm),
                cmd.int("guest_len"),
                cmd.int("hdr_len"),
                cmd.int("trans_len"),
            ),
        )
        if result.ret:
            return result.ret
        packet = result.out
        assert isinstance(packet, dict)
        header, trans = packet["header"], packet["trans"]
        assert isinstance(header, bytes) and isinstance(trans, bytes)
        if copy_to_user(vm, cmd.int("trans_uaddr"), trans.ljust(cmd.int("trans_len"), b"\0")):
            return EFAULT
        left = copy_to_user(vm, cmd.int("hdr_uaddr"), header.ljust(cmd.int("hdr_len"), b"\0"))
        if left:
            return EFAULT if env.behaviour.migration_pin_error_checked else left
        cmd.params["header"] = header.hex()
        cmd.params["trans"] = trans.hex()
        return 0
    finally:
        env.alloc.free(_SEND_TRANS)
        env.alloc.free(_SEND_HDR)
        sev_unpin_memory(vm, 1)


def _handle_only(env: KernelEnv, vm: Vm, cmd: Cmd, call: str) -> int:
    if not vm.active:
        return ENOTTY
    if not issue_ok(env, vm):
        return EBADF
    return fw(env, cmd, getattr(env.psp, call)(vm.handle)).ret


def sev_send_finish(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    return _handle_only(env, vm, cmd, "send_finish")


def sev_send_cancel(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    return _handle_only(env, vm, cmd, "send_cancel")


def sev_receive_finish(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    return _handle_only(env, vm, cmd, "receive_finish")


def sev_receive_start(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """RECEIVE_START: the PDH certificate and the session are required (-EINVAL) and copied as
    blobs; the firmware context is made through the caller's ``sev_fd`` and the VM's ASID bound
    to it, as at LAUNCH_START -- but a failing ACTIVATE leaves the context behind (5.13)."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    if (
        not cmd.int("pdh_uaddr")
        or not cmd.int("pdh_len")
        or not cmd.int("session_uaddr")
        or not cmd.int("session_len")
    ):
        return EINVAL
    blobs = copy_blobs(vm, cmd, (("pdh_uaddr", "pdh_len"), ("session_uaddr", "session_len")), optional=False)
    if isinstance(blobs, int):
        return blobs
    pdh, session = blobs
    assert pdh is not None and session is not None
    if not dev_sev(env, cmd.sev_fd):
        return EBADF
    start = fw(env, cmd, env.psp.receive_start(cmd.int("handle"), cmd.int("policy"), pdh, session))
    return bind_new_context(env, vm, cmd, start, env.behaviour.receive_start_decommission_on_bind_failure)


def sev_receive_update_data(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> int:
    """RECEIVE_UPDATE_DATA: -EINVAL (not -ENOTTY) without SEV; every address and length is
    required (-EINVAL); the guest data must not cross a page; header and transport are copied as
    blobs; the guest page is pinned and the packet handed to the firmware."""
    if not vm.active:
        return EINVAL
    if cmd.data_fault:
        return EFAULT
    keys = ("hdr_uaddr", "hdr_len", "guest_uaddr", "guest_len", "trans_uaddr", "trans_len")
    if not all(cmd.int(key) for key in keys):
        return EINVAL
    if _crosses_page(env, cmd):
        return EINVAL
    blobs = copy_blobs(vm, cmd, (("hdr_uaddr", "hdr_len"), ("trans_uaddr", "trans_len")), optional=False)
    if isinstance(blobs, int):
        return blobs
    header, trans = blobs
    assert header is not None and trans is not None
    frames = _guest_page(env, vm, cmd)
    if isinstance(frames, int):
        return frames
    try:
        paddr = (frames[0] << PAGE_SHIFT) + (cmd.int("guest_uaddr") & (PAGE_SIZE - 1))
        if not issue_ok(env, vm):
            return EBADF
        return fw(
            env,
            cmd,
            env.psp.receive_update_data(
                vm.handle, header, paddr | _me_mask(kvm), cmd.int("guest_len"), trans
            ),
        ).ret
    finally:
        sev_unpin_memory(vm, 1)
