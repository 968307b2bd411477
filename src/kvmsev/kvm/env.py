"""What ``kvm_amd`` runs on: the booted kernel, the CPUs and the PSP, plus a trace of effects.

The trace records, in order, everything a user could observe on a real host: firmware commands
with their status, WBINVD broadcasts, and kernel log lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from kvmsev.firmware.psp import Psp
from kvmsev.firmware.result import CommandResult
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.hw.svm_features import SvmFeatures
from kvmsev.kernel.alloc import KMALLOC_MAX_SIZE, Allocator
from kvmsev.kernel.ccp import SevDriver
from kvmsev.kernel.cpufeatures import BootCpuFeatures
from kvmsev.kernel.kconfig import Kconfig
from kvmsev.kernel.misc_cgroup import MiscCgroup
from kvmsev.kernel.pages import PageAllocator
from kvmsev.kvm.behaviour import Behaviour


def c_hex_alt(value: int) -> str:
    """C's ``%#x``: ``0`` for zero, ``0x..`` otherwise (the ``#`` flag adds nothing to zero)."""
    return "0" if value == 0 else f"{value:#x}"


@dataclass(slots=True)
class Garbage:
    """Initial content of memory the kernel does not initialise (pre-fix ``sev_vmcbs``).

    ``fixed`` pins entries to values (a scenario's ``sev_vmcbs_garbage``); anything else is a
    deterministic function of the seed -- arbitrary 64-bit values, as stale heap memory is.
    """

    seed: int = 0
    fixed: dict[tuple[int, int], int] = field(default_factory=dict)
    #: values the checker chose for entries of the current arrays (cleared when new arrays are
    #: allocated: a new kmalloc holds new garbage)
    resolved: dict[tuple[int, int], int] = field(default_factory=dict)

    def __call__(self, cpu: int, index: int) -> int:
        value = self.resolved.get((cpu, index))
        if value is None:
            value = self.fixed.get((cpu, index))
        if value is not None:
            return value
        digest = hashlib.blake2b(f"{self.seed}:{cpu}:{index}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


@dataclass(slots=True)
class Trace:
    """Observable effects in order, as the JSON contract's ``events`` spell them.

    With ``on`` False nothing is recorded (the simulator's and benchmarks' fast path); callers
    test ``trace.on`` before building an event.
    """

    events: list[dict[str, object]] = field(default_factory=list)
    on: bool = True

    def dmesg(self, text: str) -> None:
        if self.on:
            self.events.append({"kind": "dmesg", "text": text})

    def fw(self, result: CommandResult) -> None:
        if self.on:
            self.events.append({"kind": "fw", **result.as_dict()})

    def wbinvd(self, cpus: list[int]) -> None:
        if self.on:
            self.events.append({"kind": "wbinvd", "cpus": cpus})

    def wbnoinvd(self, cpus: list[int]) -> None:
        if self.on:
            self.events.append({"kind": "wbnoinvd", "cpus": cpus})

    def tlb_flush(self, cpu: int, asid: int | None, by: tuple[str, ...], performed: bool) -> None:
        """A VMRUN carried a flush request for ``asid`` (None: every ASID on the CPU; ``by``: who
        set ``tlb_ctl``); ``performed`` False when that VMRUN failed and the request was lost."""
        if self.on:
            self.events.append(
                {"kind": "tlb_flush", "cpu": cpu, "asid": asid, "by": list(by), "performed": performed}
            )

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int, kind: str | None = None) -> list[dict[str, object]]:
        return [e for e in self.events[mark:] if kind is None or e["kind"] == kind]


@dataclass(slots=True)
class KernelEnv:
    """The host as ``kvm_amd`` sees it."""

    behaviour: Behaviour
    leaf: Cpuid8000001F
    features: BootCpuFeatures
    kconfig: Kconfig
    alloc: Allocator
    psp: Psp
    misc: MiscCgroup
    nr_cpus: int
    online: int
    npt_supported: bool = True
    #: CPUID Fn8000_000A EBX (NASID): svm_hardware_enable sets each CPU's ``max_asid`` to this - 1
    svm_nasid: int = 0x8000
    #: the SVM feature bits (CPUID Fn8000_000A EDX, Fn8000_0021 EAX)
    svm: SvmFeatures = field(default_factory=lambda: SvmFeatures(0x0013BCFF))
    #: X86_FEATURE_WBNOINVD (CPUID Fn8000_0008_EBX[9]): Zen 2 and later (:func:`hw.cpuid.has_wbnoinvd`)
    wbnoinvd_supported: bool = True
    trace: Trace = field(default_factory=Trace)
    garbage: Garbage = field(default_factory=Garbage)
    #: per-CPU TLB: cpu -> {asid: serial of the vCPU whose entries may be cached}
    tlb: dict[int, dict[int, int]] = field(default_factory=dict)
    ccp: SevDriver = field(default_factory=SevDriver)
    pages: PageAllocator = field(default_factory=PageAllocator)
    #: RLIMIT_MEMLOCK of the VMM process (64 KiB: the kernel default before 5.16) and CAP_IPC_LOCK
    memlock_limit: int = 64 * 1024
    cap_ipc_lock: bool = False
    #: the ``*_ONCE`` sites (WARN_ON_ONCE, WARN_ONCE, pr_*_once) that have fired, with their
    #: module (None: built into the kernel). Each fires once, until its module is loaded afresh:
    #: the flag lives in the module's own data
    fired_once: frozenset[tuple[str | None, str]] = frozenset()
    #: physical address of a kernel page used as the DBG bounce buffer
    bounce_paddr: int = 0
    next_vcpu_serial: int = 1
    #: (cpu, asid, stale owner serial, entering serial) for every VMRUN that kept another
    #: vCPU's TLB entries
    breaches: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: how often an allocation found its range full, and how often recycling freed ASIDs
    #: (observations for the checker's "sometimes" properties; not kernel state)
    exhausted: int = 0
    recycles: int = 0
    df_flush_failures: int = 0
    #: kvm_amd unloads whose teardown left allocations behind or issued a failing firmware command
    unclean_teardowns: list[str] = field(default_factory=list)
    #: writes of the kernel, or of the firmware on its behalf, past the page or buffer they were
    #: meant for (memory corruption; a KASAN kernel reports each one, any other is silent)
    out_of_bounds: list[str] = field(default_factory=list)

    def online_cpus(self) -> list[int]:
        return [c for c in range(self.nr_cpus) if self.online >> c & 1]

    def warn_on_once(
        self, file: str, function: str, module: str | None = "kvm_amd", message: str | None = None
    ) -> None:
        """A ``WARN_ON_ONCE()`` that fires: the first time per boot the kernel log gets the splat,
        here its first line without what the model cannot know (CPU, PID, line number, offsets):
        ``WARNING: at arch/x86/kvm/svm/sev.c sev_pin_memory [kvm_amd]``. A ``WARN_ONCE()`` prints
        its ``message`` (without the module's ``pr_fmt`` prefix) just before that line."""
        site = f"{file} {function}"
        if not self.first_time(module, site):
            return
        if message is not None:
            self.trace.dmesg(message)
        self.trace.dmesg(f"WARNING: at {site}" + (f" [{module}]" if module else ""))

    def first_time(self, module: str | None, site: str) -> bool:
        """A ``*_ONCE`` site of ``module`` fires: True only the first time."""
        if (module, site) in self.fired_once:
            return False
        self.fired_once = self.fired_once | {(module, site)}
        return True

    def module_loaded(self, module: str) -> None:
        """A fresh copy of ``module`` is loaded: its ``*_ONCE`` flags are clear again."""
        self.fired_once = frozenset(entry for entry in self.fired_once if entry[0] != module)

    def kmalloc(self, site: str, size: int) -> bool:
        """``kmalloc`` / ``kcalloc`` / ``bitmap_zalloc`` of ``size`` bytes for ``site``; False
        for NULL. Above KMALLOC_MAX_SIZE (4 MiB) the request reaches the page allocator with an
        order above its largest, which warns once and fails (``__alloc_pages``: WARN_ON_ONCE for
        an order >= MAX_ORDER; named ``__alloc_pages_nodemask`` before 5.13 and
        ``__alloc_pages_noprof`` from 6.10, the model prints one name): a CPUID 0x8000001F
        claiming millions of ASIDs gets bitmaps and ``sev_vmcbs`` arrays no kernel can allocate."""
        if size > KMALLOC_MAX_SIZE:
            self.warn_on_once("mm/page_alloc.c", "__alloc_pages", module=None)
            return False
        return self.alloc.alloc(site, size)

    def wbnoinvd_on_cpus(self, cpus: int) -> None:
        """``wbnoinvd_on_cpus_mask()`` (6.17): an IPI to the online CPUs in mask ``cpus``; each
        writes its caches back with WBNOINVD, or with WBINVD where the CPU lacks WBNOINVD (the
        ``wbnoinvd()`` alternative), which then sets its WBINVD_DONE. WBNOINVD does not count as
        the WBINVD DF_FLUSH needs (Tom Lendacky's review of a77896eea33d: the ASID flush keeps
        WBINVD for the firmware); whether it sets the flag in hardware is not documented, and no
        kernel path lets it matter: every DF_FLUSH comes right after a ``wbinvd_on_all_cpus()``."""
        reached = cpus & self.online
        listed = [c for c in range(self.nr_cpus) if reached >> c & 1]
        if not listed:  # an empty mask sends no IPI
            return
        if not self.wbnoinvd_supported:
            self.psp.wbinvd(reached)
            if self.trace.on:
                self.trace.wbinvd(listed)
        elif self.trace.on:
            self.trace.wbnoinvd(listed)

    def wbinvd_on_all_cpus(self) -> None:
        """``wbinvd_on_all_cpus()``: an IPI to every *online* CPU; each sets its WBINVD_DONE."""
        self.psp.wbinvd(self.online)
        if self.trace.on:
            self.trace.wbinvd(self.online_cpus())
