"""The VM save area (VMSA) of an SEV-ES guest: the 4 KiB page that holds a vCPU's register
state once the hypervisor may no longer read it, laid out byte for byte.

Layout: AMD APM vol. 2, appendix B, table B-4 ("VMSA layout, state save area for SEV-ES"), the
same fields Linux declares as ``struct sev_es_save_area`` (``arch/x86/include/asm/svm.h``). Only
the fields a vCPU's reset state sets are named here; every other byte of the page is zero, which
is what KVM leaves in them for a vCPU that has not run (the page is allocated zeroed by
``svm_create_vcpu`` and only the synced fields are written).

The page is what LAUNCH_UPDATE_VMSA measures (SEV API §6.6), so its exact bytes are part of the
launch digest a guest owner must predict.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VMSA_SIZE = 4096

#: segment registers in save-area order, each a 16-byte record at 0x10 * index
SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs", "gdtr", "ldtr", "idtr", "tr")

#: byte offset and width of each scalar field (APM table B-4)
FIELDS: dict[str, tuple[int, int]] = {
    "efer": (0x0D0, 8),
    "cr4": (0x148, 8),
    "cr3": (0x150, 8),
    "cr0": (0x158, 8),
    "dr7": (0x160, 8),
    "dr6": (0x168, 8),
    "rflags": (0x170, 8),
    "rip": (0x178, 8),
    "rsp": (0x1D8, 8),
    "rax": (0x1F8, 8),
    "g_pat": (0x268, 8),
    "rdx": (0x310, 8),
    "sev_features": (0x3B0, 8),
    "xcr0": (0x3E8, 8),
    "mxcsr": (0x408, 4),
    "x87_fcw": (0x410, 2),
}


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment register as the save area stores it: selector, attributes (the descriptor's
    type, S, DPL and P in bits 0-7, AVL, L, D/B and G in bits 8-11), limit, base."""

    selector: int = 0
    attrib: int = 0
    limit: int = 0
    base: int = 0

    def encode(self) -> bytes:
        return struct.pack("<HHIQ", self.selector, self.attrib, self.limit, self.base)


@dataclass(frozen=True, slots=True)
class SaveArea:
    """The register state one VMSA page carries; unnamed registers are zero."""

    es: Segment = Segment()
    cs: Segment = Segment()
    ss: Segment = Segment()
    ds: Segment = Segment()
    fs: Segment = Segment()
    gs: Segment = Segment()
    gdtr: Segment = Segment()
    ldtr: Segment = Segment()
    idtr: Segment = Segment()
    tr: Segment = Segment()
    efer: int = 0
    cr4: int = 0
    cr3: int = 0
    cr0: int = 0
    dr7: int = 0
    dr6: int = 0
    rflags: int = 0
    rip: int = 0
    rsp: int = 0
    rax: int = 0
    g_pat: int = 0
    rdx: int = 0
    sev_features: int = 0
    xcr0: int = 0
    mxcsr: int = 0
    x87_fcw: int = 0

    def encode(self) -> bytes:
        """The 4096-byte page, little-endian, every byte not named above zero."""
        page = bytearray(VMSA_SIZE)
        for index, name in enumerate(SEGMENTS):
            segment: Segment = getattr(self, name)
            page[0x10 * index : 0x10 * (index + 1)] = segment.encode()
        for name, (offset, width) in FIELDS.items():
            page[offset : offset + width] = int(getattr(self, name)).to_bytes(width, "little")
        return bytes(page)
