"""The kernel's bit-search helpers (lib/find_bit.c) and C integer conversions, with the types
their callers use: offsets and sizes are ``unsigned long``, so a negative ``int`` passed in lands
past the end of any bitmap."""

from __future__ import annotations

ULONG = 2**64 - 1


def c_int(value: int) -> int:
    """An ``unsigned int`` expression stored in an ``int`` (two's complement, 32 bits)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def find_next_zero_bit(bitmap: int, size: int, offset: int) -> int:
    """``find_next_zero_bit(addr, size, offset)``: the lowest clear bit in ``[offset, size)``, or
    ``size``. ``offset`` is an ``unsigned long``: a negative ``int`` passed in is past the end."""
    offset &= ULONG
    if offset >= size:
        return size
    inverted = ~bitmap >> offset
    return min(offset + (inverted & -inverted).bit_length() - 1, size)


def find_next_bit(bitmap: int, size: int, offset: int) -> int:
    """``find_next_bit(addr, size, offset)``: the lowest set bit in ``[offset, size)``, or ``size``.

    A ``size`` past the end of the bitmap (5.13 with CPUID EDX = 0 passes ``(unsigned long)-1``)
    makes the kernel read on into whatever memory follows; callers compare the result with a
    bound of -1 that any result meets, so the model scans only the bitmap.
    """
    offset &= ULONG
    size &= ULONG
    window = bitmap >> offset if offset < size else 0
    if not window:
        return size
    return min(offset + (window & -window).bit_length() - 1, size)


def set_bits(bitmap: int) -> list[int]:
    """The set bits of ``bitmap``, lowest first, in time proportional to their number (ASIDs can
    be in the millions on a host whose CPUID says so)."""
    out = []
    while bitmap:
        low = bitmap & -bitmap
        out.append(low.bit_length() - 1)
        bitmap ^= low
    return out
