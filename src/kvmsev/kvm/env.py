"""What ``kvm_amd`` runs on: the booted kernel, the CPUs and the PSP, plus a trace of effects.

The trace records, in order, everything a user could observe on a real host: firmware commands
with their status, WBINVD broadcasts, and kernel log lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.firmware.psp import CommandResult, Psp
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.kernel.alloc import Allocator
from kvmsev.kernel.cpufeatures import BootCpuFeatures
from kvmsev.kernel.kconfig import Kconfig
from kvmsev.kernel.misc_cgroup import MiscCgroup
from kvmsev.kvm.behaviour import Behaviour


def c_hex_alt(value: int) -> str:
    """C's ``%#x``: ``0`` for zero, ``0x..`` otherwise (the ``#`` flag adds nothing to zero)."""
    return "0" if value == 0 else f"{value:#x}"


@dataclass(slots=True)
class Trace:
    """Observable effects in order, as the JSON contract's ``events`` spell them."""

    events: list[dict[str, object]] = field(default_factory=list)

    def dmesg(self, text: str) -> None:
        self.events.append({"kind": "dmesg", "text": text})

    def fw(self, result: CommandResult) -> None:
        self.events.append({"kind": "fw", **result.as_dict()})

    def wbinvd(self, cpus: list[int]) -> None:
        self.events.append({"kind": "wbinvd", "cpus": cpus})

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
    trace: Trace = field(default_factory=Trace)

    def online_cpus(self) -> list[int]:
        return [c for c in range(self.nr_cpus) if self.online >> c & 1]

    def wbinvd_on_all_cpus(self) -> None:
        """``wbinvd_on_all_cpus()``: an IPI to every *online* CPU; each sets its WBINVD_DONE."""
        self.psp.wbinvd(self.online)
        self.trace.wbinvd(self.online_cpus())
