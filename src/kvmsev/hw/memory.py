"""Host physical memory: 4 KiB frames holding bytes, read and written by physical address.

Frames are created on first write (a frame never written reads as zeros). The memory
controller's encryption is applied by whoever writes through a guest key (the firmware model) with
:func:`transform`; frames store bytes as they are in DRAM.

The model holds guest memory in Python objects, so the scenario runner bounds what a run may
write (:data:`WRITE_BUDGET`): a real host pins and encrypts gigabytes for one ioctl, the model
would spend minutes and gigabytes of its own memory on a line of scenario. Going over the budget
raises :class:`WriteBudgetExceeded`, which the runner reports as an input error; a read the
budget could not write back is refused the same way, before its bytes are gathered. Without a budget
(the default; the checker's moves write a few pages each) writes are not counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PAGE_SIZE = 4096
PAGE_SHIFT = 12
#: Linux x86_64 direct map base: kernel virtual address of physical address 0.
PAGE_OFFSET = 0xFFFF_8880_0000_0000
#: the most bytes a scenario run writes to guest memory, over all its hosts (VMM copies and
#: firmware encryption alike): four times the 64 MiB of data a scenario may spell out, which every
#: launch, debug and migration flow in the model writes at most a few times over
WRITE_BUDGET = 256 << 20


class WriteBudgetExceeded(Exception):
    """A write would take a run past its :class:`WriteBudget`: a limit of the model, not of the
    modeled kernel."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the run writes more than {limit >> 20} MiB of guest memory, the most the model holds "
            "(each pinned and encrypted page is a Python object here)"
        )


@dataclass(slots=True)
class WriteBudget:
    """Bytes a run may still write, shared by the memories of all its hosts (a migration
    scenario has up to 16)."""

    limit: int
    used: int = 0

    def spend(self, size: int) -> None:
        self.check(size)
        self.used += size

    def check(self, size: int) -> None:
        """Refuse, before any work, ``size`` bytes the run could not write any more."""
        if self.used + size > self.limit:
            raise WriteBudgetExceeded(self.limit)


@dataclass(slots=True)
class PhysicalMemory:
    frames: dict[int, bytearray] = field(default_factory=dict)
    #: what writes are counted against, or None for no bound
    budget: WriteBudget | None = None

    def frame(self, pfn: int) -> bytearray:
        page = self.frames.get(pfn)
        if page is None:
            page = self.frames[pfn] = bytearray(PAGE_SIZE)
        return page

    def read(self, paddr: int, length: int) -> bytes:
        """``length`` bytes from ``paddr``. Every read of guest memory in the model is copied or
        transformed and then written, so one that the budget could not write back is refused
        before its bytes are gathered (a 4 GiB LAUNCH_UPDATE_DATA would otherwise hold 4 GiB of
        plaintext before its first write is counted)."""
        if self.budget is not None:
            self.budget.check(length)
        out = bytearray()
        while length > 0:
            pfn, offset = divmod(paddr, PAGE_SIZE)
            take = min(length, PAGE_SIZE - offset)
            page = self.frames.get(pfn)
            out += page[offset : offset + take] if page is not None else bytes(take)
            paddr += take
            length -= take
        return bytes(out)

    def write(self, paddr: int, data: bytes) -> None:
        if self.budget is not None:
            self.budget.spend(len(data))
        pos = 0
        while pos < len(data):
            pfn, offset = divmod(paddr + pos, PAGE_SIZE)
            take = min(len(data) - pos, PAGE_SIZE - offset)
            self.frame(pfn)[offset : offset + take] = data[pos : pos + take]
            pos += take


def keystream(vek: bytes, pfn: int) -> bytes:
    """The memory controller's per-page transform under a guest key.

    Real hardware uses AES with a physical-address tweak; the model needs only that the same
    key and page give the same bytes, and different ones do not.
    """
    return hashlib.shake_256(vek + pfn.to_bytes(8, "little")).digest(PAGE_SIZE)


def transform(vek: bytes, paddr: int, data: bytes) -> bytes:
    """``data`` as the memory controller turns it at ``paddr`` under ``vek`` (encrypting and
    decrypting are the same operation)."""
    length = len(data)
    out = bytearray(length)
    pos = 0
    while pos < length:
        pfn, offset = divmod(paddr + pos, PAGE_SIZE)
        take = min(length - pos, PAGE_SIZE - offset)
        stream = keystream(vek, pfn)[offset : offset + take]
        mixed = int.from_bytes(data[pos : pos + take], "little") ^ int.from_bytes(stream, "little")
        out[pos : pos + take] = mixed.to_bytes(take, "little")
        pos += take
    return bytes(out)
