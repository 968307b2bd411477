"""KVM_SEV_DBG_DECRYPT / KVM_SEV_DBG_ENCRYPT (sev.c ``sev_dbg_crypt``): page by page, each piece
handed to the firmware directly when it is 16-byte aligned and through a one-page intermediate
buffer when it is not (``__sev_dbg_decrypt_user`` / ``__sev_dbg_encrypt_user``).

Two properties of the kernel code, unchanged from 5.12 to 7.1, are modeled as they are:

- A piece is as long as what is left of the *source* page; up to 78ee2d50185a "KVM: SVM: Fix page
  overflow in sev_dbg_crypt() for ENCRYPT path" (7.1, in stable) nothing bounds it by the
  destination page. The firmware then writes past the pinned destination page into whatever
  frame follows it physically, and an unaligned DBG_ENCRYPT decrypts up to 15 bytes past its
  intermediate page (a KASAN slab-out-of-bounds write). Each such write is recorded
  (``KernelEnv.out_of_bounds``, the ``writes_in_bounds`` invariant); which frame is hit is the
  model's physical layout, on a real host the page allocator's.
- An unaligned DBG_ENCRYPT re-encrypts ``round_up(len, 16)`` bytes from the destination rounded
  down to 16 (``__sev_dbg_encrypt_user``: ``len = round_up(size, 16)``), not the
  ``round_up(len + (dst & 15), 16)`` it decrypted into the intermediate page: where
  ``(dst & 15) + len`` passes ``round_up(len, 16)`` the last bytes never reach the guest.
"""

from __future__ import annotations

from kvmsev.hw.memory import PAGE_SHIFT, PAGE_SIZE
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev_cmd import (
    EBADF,
    EFAULT,
    EINVAL,
    ENOTTY,
    ULONG_MAX,
    Cmd,
    fw,
    issue_ok,
    sev_pin_memory,
    sev_unpin_memory,
)
from kvmsev.kvm.state import KvmAmd


def _round_up(n: int) -> int:
    """``round_up(n, 16)``: the firmware's DBG commands move 16-byte multiples."""
    return (n + 15) & ~15


def sev_dbg_crypt(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd, encrypt: bool) -> int:
    """-ENOTTY without SEV; -EINVAL for a zero length, a source range that wraps or no
    destination; then one piece per source page: both pages pinned (one page each), the piece
    handled, both unpinned."""
    if not vm.active:
        return ENOTTY
    if cmd.data_fault:
        return EFAULT
    src, dst, size = cmd.int("src_uaddr"), cmd.int("dst_uaddr"), cmd.int("len")
    if not size or src + size > ULONG_MAX:
        return EINVAL
    if not dst:
        return EINVAL
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
        if env.behaviour.dbg_piece_within_dst_page:
            length = min(length, PAGE_SIZE - d_off)
        src_pa = (src_frames[0] << PAGE_SHIFT) + s_off
        dst_pa = (dst_frames[0] << PAGE_SHIFT) + d_off
        if not issue_ok(env, vm):  # sev_issue_cmd's sev_fd check, before any firmware command
            ret = EBADF
        elif encrypt:
            ret = _encrypt_user(env, vm, cmd, src_pa, src, dst_pa, length)
        else:
            ret = _decrypt_user(env, vm, cmd, src_pa, dst, dst_pa, length)
        sev_unpin_memory(vm, 2)
        if ret:
            return ret
        src += length
        dst += length
        size -= length
    return 0


def _decrypt_user(env: KernelEnv, vm: Vm, cmd: Cmd, src_pa: int, dst: int, dst_pa: int, length: int) -> int:
    """``__sev_dbg_decrypt_user``: all aligned, the firmware writes the pinned destination
    page itself; otherwise it decrypts the 16-byte-aligned span into the intermediate page and
    ``copy_to_user`` copies the piece out (-EFAULT where the destination is not mapped)."""
    if not (src_pa | dst_pa | length) & 15:
        _bound_pinned(env, "DBG_DECRYPT", dst_pa, length)
        return fw(env, cmd, env.psp.dbg(False, vm.handle, src_pa, dst_pa, length)).ret
    offset = src_pa & 15
    bounce = env.bounce_paddr
    result = fw(env, cmd, env.psp.dbg(False, vm.handle, src_pa - offset, bounce, _round_up(length + offset)))
    if result.ret:
        return result.ret
    if vm.memory.copy_to_user(dst, env.psp.memory.read(bounce + offset, length)):
        return EFAULT
    return 0


def _encrypt_user(env: KernelEnv, vm: Vm, cmd: Cmd, src_pa: int, src: int, dst_pa: int, length: int) -> int:
    """``__sev_dbg_encrypt_user``: an unaligned source goes through an intermediate page; an
    unaligned destination or length is read-modify-written: the aligned span around the
    destination decrypted into an intermediate page, the piece copied in at the destination's
    offset, and ``round_up(length, 16)`` bytes of it encrypted back from the destination rounded
    down (the tail past that is lost, see the module)."""
    mem, bounce = env.psp.memory, env.bounce_paddr
    offset = dst_pa & 15
    if not (offset or length & 15):
        source = src_pa
        if src & 15:  # src_tpage: copy_from_user of the piece (inside the pinned source page)
            mem.write(bounce, mem.read(src_pa, length))
            source = bounce
        _bound_pinned(env, "DBG_ENCRYPT", dst_pa, length)
        return fw(env, cmd, env.psp.dbg(True, vm.handle, source, dst_pa, length)).ret
    span = _round_up(length + offset)
    if span > PAGE_SIZE:
        env.out_of_bounds.append(
            f"DBG_ENCRYPT decrypted {span} bytes into its one-page intermediate buffer "
            f"({span - PAGE_SIZE} past its end)"
        )
    result = fw(env, cmd, env.psp.dbg(False, vm.handle, dst_pa - offset, bounce, span))
    if result.ret:
        return result.ret
    mem.write(bounce + offset, mem.read(src_pa, length))
    encrypted = _round_up(length)
    _bound_pinned(env, "DBG_ENCRYPT", dst_pa - offset, encrypted)
    return fw(env, cmd, env.psp.dbg(True, vm.handle, bounce, dst_pa - offset, encrypted)).ret


def _bound_pinned(env: KernelEnv, command: str, dst_pa: int, length: int) -> None:
    """Record a firmware write that runs past the one destination page ``sev_dbg_crypt`` pinned
    (possible only before 78ee2d50185a bounded each piece by the destination page)."""
    past = (dst_pa & (PAGE_SIZE - 1)) + length - PAGE_SIZE
    if past > 0:
        env.out_of_bounds.append(
            f"{command} wrote {past} bytes past the pinned destination page (physical {dst_pa:#x} + {length})"
        )
