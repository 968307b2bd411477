"""The SVM feature bits the modeled kernels test (CPUID Fn8000_000A EDX, Fn8000_0021 EAX).

Bit numbers from the AMD APM vol. 2 and ``arch/x86/include/asm/cpufeatures.h``; the values per
part come from the profiles' CPUID dumps. Every modeled part has NRIPS, FlushByAsid,
DecodeAssists, LbrVirt, TscRateMsr, VMSAVE/VMLOAD virtualization and vGIF; VNMI (bit 25) and
x2AVIC (bit 18) arrive with Zen 4; NoNestedDataBp (Fn8000_0021 EAX bit 0) with Zen 3.
"""

from __future__ import annotations

from dataclasses import dataclass

LBRV = 1 << 1
NRIPS = 1 << 3
TSC_RATE_MSR = 1 << 4
FLUSH_BY_ASID = 1 << 6
DECODE_ASSISTS = 1 << 7
V_VMSAVE_VMLOAD = 1 << 15
VGIF = 1 << 16
VNMI = 1 << 25
#: Fn8000_0021 EAX bit 0
NO_NESTED_DATA_BP = 1 << 0


@dataclass(frozen=True, slots=True)
class SvmFeatures:
    """``boot_cpu_has()`` for the SVM bits, from the two registers."""

    edx: int
    ext21_eax: int = 0

    def has(self, mask: int) -> bool:
        return bool(self.edx & mask)

    @property
    def no_nested_data_bp(self) -> bool:
        return bool(self.ext21_eax & NO_NESTED_DATA_BP)
