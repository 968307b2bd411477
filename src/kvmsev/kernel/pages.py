"""The page allocator for order-0 kernel pages (VMCBs, VMSAs), with LIFO reuse.

The buddy allocator's per-CPU lists hand out the most recently freed page first ("hot" pages),
so a vCPU created right after another was destroyed usually gets the same VMCB page. That reuse
is what makes a stale ``sev_vmcbs`` entry dangerous, so the model keeps it: freed frames go on
a stack, and allocation pops it before taking a fresh frame. One list for the whole machine is
a simplification of the per-CPU lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.hw.memory import PAGE_OFFSET, PAGE_SHIFT

#: First frame handed out for kernel pages (arbitrary, away from 0 so no page has address 0).
FIRST_KERNEL_PFN = 0x100000


@dataclass(slots=True)
class PageAllocator:
    next_pfn: int = FIRST_KERNEL_PFN
    free_list: list[int] = field(default_factory=list)
    live: set[int] = field(default_factory=set)

    def alloc(self) -> int:
        """``alloc_page()``: a frame number."""
        pfn = self.free_list.pop() if self.free_list else self._fresh()
        self.live.add(pfn)
        return pfn

    def _fresh(self) -> int:
        pfn = self.next_pfn
        self.next_pfn += 1
        return pfn

    def free(self, pfn: int) -> None:
        """``__free_page()``."""
        self.live.discard(pfn)
        self.free_list.append(pfn)


def page_address(pfn: int) -> int:
    """Kernel virtual address of a frame (``page_address()`` on the direct map)."""
    return PAGE_OFFSET + (pfn << PAGE_SHIFT)
