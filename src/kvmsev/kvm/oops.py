"""A kernel oops: the modeled kernel dereferenced NULL or hit a BUG.

Raised by model code at the exact point the real kernel would crash, so that combinations of
patches the kernel never shipped (e.g. "Skip SEV cache flush" without "Free sev_asid_bitmap")
show their real consequence instead of a made-up one.
"""

from __future__ import annotations


class KernelOops(Exception):
    """The kernel crashed; ``line`` is the first line it prints."""

    def __init__(self, line: str, where: str) -> None:
        super().__init__(f"{line} (in {where})")
        self.line = line
        self.where = where


def null_deref(where: str, offset: int = 0) -> KernelOops:
    return KernelOops(f"BUG: kernel NULL pointer dereference, address: {offset:016x}", where)
