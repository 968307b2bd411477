"""CPUID Fn8000_001F, the AMD memory-encryption leaf, as a typed value.

Field layout (AMD APM vol. 3, CPUID Fn8000_001F; Linux ``tools/arch/x86/kcpuid/cpuid.csv`` and
``arch/x86/include/asm/cpufeatures.h`` word 19; KVM ``Documentation/virt/kvm/amd-memory-encryption.rst``):

* EAX: one feature bit per capability (:data:`EAX_FEATURES`).
* EBX[5:0]: position of the C-bit (encryption bit) in a page-table entry.
* EBX[11:6]: physical-address bits lost when memory encryption is on.
* EBX[15:12]: number of VM permission levels (SNP).
* ECX: number of encrypted guests supported at once, i.e. the highest SEV ASID (``max_sev_asid``).
* EDX: lowest ASID usable by an SEV guest without SEV-ES (``min_sev_asid``); ASIDs
  ``1..min_sev_asid-1`` belong to SEV-ES guests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvmsev.errors import InputError

LEAF = 0x8000001F
U32_MAX = 0xFFFF_FFFF

#: EAX bit -> name. Names follow Linux ``cpufeatures.h`` where Linux has one (SME, SEV,
#: VM_PAGE_FLUSH, SEV_ES, SEV_SNP, V_TSC_AUX, SME_COHERENT, DEBUG_SWAP), otherwise the APM-style
#: names listed in kcpuid's cpuid.csv. Bits 20 and 22 are not named by any cited source.
EAX_FEATURES: dict[int, str] = {
    0: "SME",
    1: "SEV",
    2: "VM_PAGE_FLUSH",
    3: "SEV_ES",
    4: "SEV_SNP",
    5: "VMPL",
    6: "RMPQUERY",
    7: "VMPL_SSS",
    8: "SECURE_TSC",
    9: "V_TSC_AUX",
    10: "SME_COHERENT",
    11: "REQ_64BIT_HYPERVISOR",
    12: "RESTRICTED_INJECTION",
    13: "ALTERNATE_INJECTION",
    14: "DEBUG_SWAP",
    15: "PREVENT_HOST_IBS",
    16: "VTE",
    17: "VMGEXIT_PARAMETER",
    18: "VIRTUAL_TOM_MSR",
    19: "IBS_VIRT_GUEST_CTL",
    20: "BIT20",
    21: "RMPREAD",
    22: "BIT22",
    23: "SEGMENTED_RMP",
    24: "VMSA_REG_PROT",
    25: "SMT_PROTECTION",
    26: "SECURE_AVIC",
    27: "ALLOWED_SEV_FEATURES",
    28: "SVSM_COMM_PAGE_MSR",
    29: "NESTED_VIRT_SNP_MSR",
    30: "HV_IN_USE_WR_ALLOWED",
    31: "IBPB_ON_ENTRY",
}
FEATURE_BITS: dict[str, int] = {name: bit for bit, name in EAX_FEATURES.items()}

SME = 1 << FEATURE_BITS["SME"]
SEV = 1 << FEATURE_BITS["SEV"]
VM_PAGE_FLUSH = 1 << FEATURE_BITS["VM_PAGE_FLUSH"]
SEV_ES = 1 << FEATURE_BITS["SEV_ES"]
SEV_SNP = 1 << FEATURE_BITS["SEV_SNP"]
SME_COHERENT = 1 << FEATURE_BITS["SME_COHERENT"]
DEBUG_SWAP = 1 << FEATURE_BITS["DEBUG_SWAP"]
#: X86_FEATURE_SNP_SECURE_TSC (word 19 bit 8, 7b59c73fd611)
SECURE_TSC = 1 << FEATURE_BITS["SECURE_TSC"]

_REG_NAMES = ("eax", "ebx", "ecx", "edx")
_DUMP_HEX = re.compile(r"[0-9a-fA-F]{8}")


@dataclass(frozen=True, slots=True)
class Cpuid8000001F:
    """The four registers of leaf 0x8000001F, with decoders for every named field."""

    eax: int
    ebx: int
    ecx: int
    edx: int

    def __post_init__(self) -> None:
        for name in _REG_NAMES:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U32_MAX:
                raise InputError(f"cpuid {name}", f"{value!r} is not a 32-bit unsigned integer")

    # -- EAX --------------------------------------------------------------------------------
    def has(self, feature: str) -> bool:
        """True when EAX has the named feature bit set."""
        return bool(self.eax >> FEATURE_BITS[feature] & 1)

    @property
    def features(self) -> tuple[str, ...]:
        """Names of the set EAX bits, lowest bit first."""
        return tuple(EAX_FEATURES[b] for b in range(32) if self.eax >> b & 1)

    # -- EBX --------------------------------------------------------------------------------
    @property
    def c_bit(self) -> int:
        """EBX[5:0]: the C-bit position (KVM's ``sev_enc_bit``)."""
        return self.ebx & 0x3F

    @property
    def phys_addr_reduction(self) -> int:
        """EBX[11:6]: physical-address bits lost with encryption on."""
        return (self.ebx >> 6) & 0x3F

    @property
    def num_vmpls(self) -> int:
        """EBX[15:12]: number of VM permission levels."""
        return (self.ebx >> 12) & 0xF

    # -- ECX / EDX --------------------------------------------------------------------------
    @property
    def max_sev_asid(self) -> int:
        """ECX: highest ASID an SEV guest may use."""
        return self.ecx

    @property
    def min_sev_asid(self) -> int:
        """EDX: lowest ASID a plain (non-ES) SEV guest may use."""
        return self.edx

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def encode(
        cls,
        *,
        features: tuple[str, ...] | list[str] = (),
        c_bit: int = 0,
        phys_addr_reduction: int = 0,
        num_vmpls: int = 0,
        ebx_reserved: int = 0,
        max_sev_asid: int = 0,
        min_sev_asid: int = 0,
    ) -> Cpuid8000001F:
        """Build the leaf from named fields; the inverse of the decoders above."""
        eax = 0
        for name in features:
            if name not in FEATURE_BITS:
                raise InputError("features", f"unknown feature {name!r}")
            eax |= 1 << FEATURE_BITS[name]
        for field, value, width in (
            ("c_bit", c_bit, 6),
            ("phys_addr_reduction", phys_addr_reduction, 6),
            ("num_vmpls", num_vmpls, 4),
            ("ebx_reserved", ebx_reserved, 16),
        ):
            if not 0 <= value < 1 << width:
                raise InputError(field, f"{value} does not fit in {width} bits")
        ebx = c_bit | phys_addr_reduction << 6 | num_vmpls << 12 | ebx_reserved << 16
        return cls(eax, ebx, max_sev_asid, min_sev_asid)

    def replace(self, **regs: int) -> Cpuid8000001F:
        """A copy with some registers replaced."""
        values = {name: getattr(self, name) for name in _REG_NAMES}
        values.update(regs)
        return Cpuid8000001F(**values)

    def as_dict(self) -> dict[str, int]:
        """``{"eax", "ebx", "ecx", "edx"}`` as integers (the JSON contract's form)."""
        return {name: getattr(self, name) for name in _REG_NAMES}

    def hex(self) -> str:
        """The register quadruple as CPUID dumps print it: ``EAX-EBX-ECX-EDX`` in hex."""
        return "-".join(f"{getattr(self, name):08X}" for name in _REG_NAMES)

    def decode(self) -> dict[str, object]:
        """Every named field, for reports and ``kvmsev cpuid decode``."""
        min_asid, max_asid = self.min_sev_asid, self.max_sev_asid
        return {
            "eax": self.eax,
            "ebx": self.ebx,
            "ecx": self.ecx,
            "edx": self.edx,
            "features": list(self.features),
            "c_bit": self.c_bit,
            "phys_addr_reduction": self.phys_addr_reduction,
            "num_vmpls": self.num_vmpls,
            "ebx_reserved": self.ebx >> 16,
            "max_sev_asid": max_asid,
            "min_sev_asid": min_asid,
            "sev_asid_range": [min_asid, max_asid] if 1 <= min_asid <= max_asid else None,
            "sev_es_asid_range": [1, min_asid - 1] if min_asid > 1 else None,
        }


def parse_register(text: str, field: str) -> int:
    """Parse one register value as a user types it: ``0x``-prefixed hex (``0x1FD``) or decimal
    (``509``). The result must fit in 32 bits."""
    s = text.strip()
    try:
        if s.lower().startswith("0x"):
            value = int(s[2:], 16)
        elif s.isascii() and s.isdigit() and len(s) <= 20:
            value = int(s, 10)
        else:
            raise ValueError(s)
    except ValueError:
        raise InputError(
            field, f"{text!r} is not a register value (use 0x-prefixed hex like 0x1FD, or decimal like 509)"
        ) from None
    if value > U32_MAX:
        raise InputError(field, f"{text!r} does not fit in 32 bits")
    return value


def parse_leaf(text: str, field: str = "--cpuid") -> Cpuid8000001F:
    """Parse ``EAX:EBX:ECX:EDX`` (each 0x-hex or decimal), or a CPUID dump's ``EAX-EBX-ECX-EDX``
    (four groups of eight hex digits, as AIDA64/InstLatx64 dumps print them)."""
    stripped = text.strip()
    dump = stripped.split("-")
    if len(dump) == 4 and all(_DUMP_HEX.fullmatch(p) for p in dump):
        return Cpuid8000001F(*(int(p, 16) for p in dump))
    parts = stripped.split(":")
    if len(parts) != 4:
        raise InputError(
            field, f"{text!r} must be four registers EAX:EBX:ECX:EDX (or a dump's EAX-EBX-ECX-EDX)"
        )
    regs = [parse_register(p, f"{field} {name.upper()}") for p, name in zip(parts, _REG_NAMES, strict=True)]
    return Cpuid8000001F(*regs)


def has_wbnoinvd(family: int, model: int) -> bool:
    """X86_FEATURE_WBNOINVD (CPUID Fn8000_0008_EBX bit 9), which profiles do not record: AMD
    added it with Zen 2 (family 0x17 from model 0x30) and kept it since. The InstLatx64 dumps the
    profiles come from agree: EBX bit 9 clear on Naples (0x00000007), set on Rome, Matisse,
    Milan, Genoa, Bergamo, Raphael and Turin."""
    return family > 0x17 or (family == 0x17 and model >= 0x30)
