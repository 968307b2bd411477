"""Model-specific registers the SEV enablement chain reads.

* SYSCFG (``MSR_AMD64_SYSCFG``, 0xC0010010): bit 23 MemEncryptionModEn is set by the BIOS when
  memory encryption ("SMEE") is enabled; bits 24 SNPEn and 25 VMPLEn belong to SEV-SNP.
  Source: Linux ``arch/x86/include/asm/msr-index.h`` (``MSR_AMD64_SYSCFG_MEM_ENCRYPT_BIT 23``);
  sevctl and snphost read the same bit.
* HWCR (``MSR_K7_HWCR``, 0xC0010015): bit 0 SMMLOCK. Linux's ``early_detect_mem_encrypt()``
  keeps SEV only when SMM is locked (see :mod:`kvmsev.kernel.cpufeatures`).
"""

from __future__ import annotations

from dataclasses import dataclass

MSR_AMD64_SYSCFG = 0xC0010010
SYSCFG_MEM_ENCRYPT = 1 << 23
SYSCFG_SNP_EN = 1 << 24
SYSCFG_VMPL_EN = 1 << 25

MSR_K7_HWCR = 0xC0010015
HWCR_SMMLOCK = 1 << 0


@dataclass(frozen=True, slots=True)
class Msrs:
    """The MSR values the boot-time feature detection reads."""

    syscfg: int
    hwcr: int

    @property
    def mem_encrypt_enabled(self) -> bool:
        """SYSCFG[23] MemEncryptionModEn: the BIOS enabled memory encryption (SMEE)."""
        return bool(self.syscfg & SYSCFG_MEM_ENCRYPT)

    @property
    def snp_enabled(self) -> bool:
        """SYSCFG[24] SNPEn: the BIOS enabled SEV-SNP (and with it set up the RMP table, whose
        bounds ``snp_probe_rmptable_info`` reads from RMP_BASE / RMP_END)."""
        return bool(self.syscfg & SYSCFG_SNP_EN)

    @property
    def smm_locked(self) -> bool:
        """HWCR[0] SMMLOCK."""
        return bool(self.hwcr & HWCR_SMMLOCK)
