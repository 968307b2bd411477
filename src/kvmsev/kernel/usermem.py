"""A user process's address space, as far as SEV's page pinning sees it.

``sev_pin_memory()`` pins ``[uaddr, uaddr + len)`` with ``pin_user_pages_fast()``; a page that is
not mapped stops the pin short ("SEV: Failure locking %lu pages.", -ENOMEM). Each mapping is
backed by physically contiguous frames (as with huge pages), so a buffer inside one mapping is
one physically contiguous run -- which decides how many firmware calls LAUNCH_UPDATE_DATA makes
and whether LAUNCH_SECRET accepts it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from kvmsev.hw.memory import PAGE_SHIFT, PAGE_SIZE, PhysicalMemory

USER_BASE = 0x7F00_0000_0000
FIRST_USER_PFN = 0x4000_0000


@dataclass(slots=True)
class Mapping:
    start: int
    npages: int
    first_pfn: int

    @property
    def end(self) -> int:
        return self.start + (self.npages << PAGE_SHIFT)


@dataclass(slots=True)
class AddressSpace:
    memory: PhysicalMemory
    #: sorted by start address (``starts`` holds the same order, for bisection)
    mappings: list[Mapping] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    next_addr: int = USER_BASE
    next_pfn: int = FIRST_USER_PFN
    buffers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def map(self, length: int, at: int | None = None) -> int:
        """``mmap`` ``length`` bytes (rounded up to pages), at a page-aligned ``at`` if given."""
        npages = max(1, -(-length // PAGE_SIZE))
        start = self.next_addr if at is None else at & ~(PAGE_SIZE - 1)
        where = bisect.bisect_right(self.starts, start)
        self.starts.insert(where, start)
        self.mappings.insert(where, Mapping(start, npages, self.next_pfn))
        self.next_pfn += npages + 1  # a gap keeps separate mappings physically discontiguous
        self.next_addr = max(self.next_addr, start + ((npages + 1) << PAGE_SHIFT))
        return start

    def buffer(self, key: str, length: int) -> int:
        """A buffer the VMM keeps for one purpose (e.g. receiving measurements): mapped on first
        use and reused after, as a VMM reuses its buffers."""
        found = self.buffers.get(key)
        if found is None or found[1] < length:
            found = (self.map(length), length)
            self.buffers[key] = found
        return found[0]

    def translate(self, uaddr: int) -> int | None:
        """The frame backing ``uaddr``, or None when unmapped. Mappings never overlap (``ensure``
        maps only what is unmapped), so only the last one starting at or below ``uaddr`` can hold
        it."""
        where = bisect.bisect_right(self.starts, uaddr)
        if not where:
            return None
        m = self.mappings[where - 1]
        return m.first_pfn + ((uaddr - m.start) >> PAGE_SHIFT) if uaddr < m.end else None

    def paddr(self, uaddr: int) -> int:
        pfn = self.translate(uaddr)
        if pfn is None:
            raise ValueError(f"unmapped user address {uaddr:#x}")
        return (pfn << PAGE_SHIFT) | (uaddr & (PAGE_SIZE - 1))

    def ensure(self, uaddr: int, length: int) -> None:
        """Map whatever of ``[uaddr, uaddr+length)`` is not mapped yet."""
        page = uaddr & ~(PAGE_SIZE - 1)
        end = uaddr + max(length, 1)
        while page < end:
            if self.translate(page) is None:
                run = page
                while run < end and self.translate(run) is None:
                    run += PAGE_SIZE
                self.map(run - page, at=page)
                page = run
            else:
                page += PAGE_SIZE

    def write(self, uaddr: int, data: bytes) -> None:
        self.ensure(uaddr, len(data))
        pos = 0
        while pos < len(data):
            take = min(len(data) - pos, PAGE_SIZE - ((uaddr + pos) & (PAGE_SIZE - 1)))
            self.memory.write(self.paddr(uaddr + pos), data[pos : pos + take])
            pos += take

    def read(self, uaddr: int, length: int) -> bytes:
        """``length`` bytes of the process's memory (zeros where unmapped), held to the write
        budget as a whole, as :meth:`PhysicalMemory.read` is."""
        if self.memory.budget is not None:
            self.memory.budget.check(length)
        out = bytearray()
        pos = 0
        while pos < length:
            take = min(length - pos, PAGE_SIZE - ((uaddr + pos) & (PAGE_SIZE - 1)))
            pfn = self.translate(uaddr + pos)
            if pfn is None:
                out += bytes(take)
            else:
                out += self.memory.read((pfn << PAGE_SHIFT) | ((uaddr + pos) & (PAGE_SIZE - 1)), take)
            pos += take
        return bytes(out)

    def mapped(self, uaddr: int, length: int) -> bool:
        """Every byte of ``[uaddr, uaddr + length)`` is mapped (a user copy would not fault)."""
        return self._mapped_end(uaddr & ~(PAGE_SIZE - 1), uaddr + length) >= uaddr + length

    def _mapped_runs(self, page: int, end: int) -> Iterator[tuple[Mapping, int, int]]:
        """The mapped pieces of ``[page, end)`` from page-aligned ``page``, as ``(mapping, start,
        stop)``, one per mapping, ending at the first page that is not mapped. Pinning and the
        fault checks all walk this way: one bisection per mapping, never one per page, so a
        4 GiB buffer costs what a 4 KiB one does."""
        while page < end:
            where = bisect.bisect_right(self.starts, page)
            if not where or page >= self.mappings[where - 1].end:
                return
            m = self.mappings[where - 1]
            stop = min(end, m.end)
            yield m, page, stop
            page = stop

    def _mapped_end(self, page: int, end: int) -> int:
        """Where the mapped run from page-aligned ``page`` stops, looking no further than
        ``end``."""
        for _, _, stop in self._mapped_runs(page, end):
            page = stop
        return page

    def copy_from_user(self, uaddr: int, length: int) -> bytes | None:
        """The kernel's ``copy_from_user``: None when the range is not mapped (-EFAULT)."""
        return self.read(uaddr, length) if self.mapped(uaddr, length) else None

    def copy_to_user(self, uaddr: int, data: bytes) -> int:
        """The kernel's ``copy_to_user``: how many bytes were NOT copied (0: all were). The copy
        runs up to the first page that is not mapped, and what comes before it is written (x86's
        ``copy_user_generic`` faults there and reports the exact remainder)."""
        end = uaddr + len(data)
        done = max(0, min(self._mapped_end(uaddr & ~(PAGE_SIZE - 1), end), end) - uaddr)
        if done:
            self.write(uaddr, data[:done])
        return len(data) - done

    def pinnable(self, uaddr: int, npages: int) -> int:
        """How many of the ``npages`` pages from ``uaddr``'s page are mapped before the first
        that is not (what :meth:`pin` would list, counted)."""
        page = uaddr & ~(PAGE_SIZE - 1)
        end = page + (npages << PAGE_SHIFT)
        return (self._mapped_end(page, end) - page) >> PAGE_SHIFT

    def pin(self, uaddr: int, npages: int) -> list[int]:
        """``pin_user_pages_fast``: frames of the mapped prefix (short when a page is unmapped),
        taken a mapping at a time."""
        frames: list[int] = []
        page = uaddr & ~(PAGE_SIZE - 1)
        for m, start, stop in self._mapped_runs(page, page + (npages << PAGE_SHIFT)):
            first = m.first_pfn + ((start - m.start) >> PAGE_SHIFT)
            frames.extend(range(first, first + ((stop - start) >> PAGE_SHIFT)))
        return frames


def contiguous_run(frames: list[int], start: int) -> int:
    """``get_num_contig_pages()``: how many frames from ``start`` are physically consecutive."""
    n = 1
    while start + n < len(frames) and frames[start + n] == frames[start + n - 1] + 1:
        n += 1
    return n
