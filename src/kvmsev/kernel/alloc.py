"""The kernel memory allocator, reduced to what SEV setup needs: sizes, leaks and failures.

Every allocation is named by its call site (``"sev_asid_bitmap"``, ``"sev_vmcbs[3]"``) so that a
leak shows *what* was left behind, and a failure can be injected at one site (``kmalloc``
returning NULL: the OOM paths of ``sev_hardware_setup()`` and ``svm_cpu_init()``). Memory the
allocator hands out is not zeroed unless the call says so (``kmalloc_array`` vs ``kcalloc``);
callers record that, because uninitialised memory is state the model must treat as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BITS_PER_LONG = 64
POINTER_SIZE = 8
#: the largest kmalloc on x86_64 (KMALLOC_MAX_SIZE: ``1 << (MAX_ORDER + PAGE_SHIFT - 1)`` in 5.x,
#: ``1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`` in 6.x, 4 MiB either way with the default orders)
KMALLOC_MAX_SIZE = 4 << 20


def bitmap_bytes(nbits: int) -> int:
    """``bitmap_zalloc(nbits)`` size: ``BITS_TO_LONGS(nbits) * sizeof(long)``."""
    return -(-nbits // BITS_PER_LONG) * (BITS_PER_LONG // 8)


@dataclass(slots=True)
class Allocator:
    """Live allocations by call site, with injectable failures.

    ``fail_sites`` holds call-site names whose next allocation returns NULL. A bare name like
    ``"sev_vmcbs"`` matches every CPU's ``"sev_vmcbs[N]"``; ``"sev_vmcbs[3]"`` matches one.
    """

    live: dict[str, int] = field(default_factory=dict)
    fail_sites: set[str] = field(default_factory=set)
    #: allocations a module unload left behind: still allocated, but nothing refers to them any
    #: more, so the next load allocates the same call sites afresh ("site#N": the Nth leak)
    leaked: dict[str, int] = field(default_factory=dict)

    def _should_fail(self, site: str) -> bool:
        base = site.split("[", 1)[0]
        return site in self.fail_sites or base in self.fail_sites

    def alloc(self, site: str, size: int) -> bool:
        """Allocate ``size`` bytes for ``site``; False models a NULL return."""
        if self._should_fail(site):
            return False
        if site in self.live:
            raise RuntimeError(f"model bug: {site} allocated twice")
        self.live[site] = size
        return True

    def free(self, site: str) -> None:
        """``kfree``/``bitmap_free``; freeing NULL (a site never allocated) is a no-op."""
        self.live.pop(site, None)

    def holds(self, site: str) -> bool:
        return site in self.live

    def orphan(self) -> dict[str, int]:
        """The module is gone: whatever it still held is leaked (never freed, never reused).
        Returns what was orphaned, by call site."""
        orphaned, self.live = self.live, {}
        for site, size in orphaned.items():
            self.leaked[f"{site}#{sum(k.split('#', 1)[0] == site for k in self.leaked) + 1}"] = size
        return orphaned

    @property
    def live_bytes(self) -> int:
        """Bytes allocated now, leaked allocations included (the kernel never gets them back)."""
        return sum(self.live.values()) + sum(self.leaked.values())
