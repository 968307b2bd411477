"""KVM_SEV_DBG_DECRYPT / KVM_SEV_DBG_ENCRYPT (sev.c ``sev_dbg_crypt``, 5.12/5.13): page by page,
unaligned pieces through 16-byte-aligned bounce buffers (``__sev_dbg_decrypt_user`` /
``__sev_dbg_encrypt_user``)."""

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


def sev_dbg_crypt(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd, encrypt: bool) -> int:
    """-ENOTTY without SEV; -EINVAL for a zero length, a source range that wraps or no
    destination; then each page of the range is pinned (source and destination) and handled."""
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
    if not issue_ok(env, vm):
        return EBADF
    bounce = env.bounce_paddr
    if not encrypt:
        start = src_pa & ~15
        span = ((src_pa + length + 15) & ~15) - start
        result = fw(env, cmd, env.psp.dbg(False, vm.handle, start, bounce, span))
        if result.ret:
            return result.ret
        mem.write(dst_pa, mem.read(bounce + (src_pa - start), length))
        return 0
    # encrypt: read-modify-write the aligned destination span
    start = dst_pa & ~15
    span = ((dst_pa + length + 15) & ~15) - start
    if start != dst_pa or span != length:
        result = fw(env, cmd, env.psp.dbg(False, vm.handle, start, bounce, span))
        if result.ret:
            return result.ret
    mem.write(bounce + (dst_pa - start), mem.read(src_pa, length))
    return fw(env, cmd, env.psp.dbg(True, vm.handle, bounce, start, span)).ret
