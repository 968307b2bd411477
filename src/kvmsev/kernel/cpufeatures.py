"""What the booted kernel believes about memory encryption: ``boot_cpu_has()`` for word 19.

Since 5.12 the kernel keeps CPUID 0x8000001F EAX as capability word 19 (``CPUID_8000_001F_EAX``,
filled by ``get_cpu_cap()``). ``early_detect_mem_encrypt()`` (arch/x86/kernel/cpu/amd.c, same
logic in 5.12 and 5.13) then clears bits the platform cannot use:

* SYSCFG[23] (MemEncryptionModEn, the BIOS "SMEE" switch) clear -> clear SME, SEV and SEV_ES;
* 32-bit kernel -> clear all three (not modeled: every modeled kernel is x86_64);
* HWCR.SMMLOCK clear -> clear SEV and SEV_ES, keep SME.

``mem_encrypt=off`` does not touch these bits before 5.18 (08f253ec3767 "x86/cpu: Clear SME
feature flag when not in use"); it only decides whether host SME is active (``sme_me_mask``),
which ``sme_enable()`` computes from ``mem_encrypt=on|off`` or, absent that, from
``CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT``. When SME is active the kernel prints
``"AMD Memory Encryption Features active: SME"`` (``print_mem_encrypt_feature_info``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmsev.hw import cpuid
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.hw.msr import Msrs
from kvmsev.kernel import kconfig
from kvmsev.kernel.kconfig import Kconfig


@dataclass(frozen=True, slots=True)
class BootCpuFeatures:
    """Word 19 as the kernel holds it after boot, plus host SME activation."""

    word19: int
    sme_active: bool
    #: ``cc_platform_has(CC_ATTR_HOST_SEV_SNP)`` (6.9 on): the host may run SNP guests
    host_snp: bool = False

    def has(self, mask: int) -> bool:
        """``boot_cpu_has()`` for a word-19 bit given as a mask (e.g. :data:`cpuid.SEV`)."""
        return bool(self.word19 & mask)

    @property
    def cpuinfo_flags(self) -> tuple[str, ...]:
        """The word-19 flags /proc/cpuinfo shows that the probe compares (``sme``, ``sev``, ``sev_es``)."""
        names = ((cpuid.SME, "sme"), (cpuid.SEV, "sev"), (cpuid.SEV_ES, "sev_es"))
        return tuple(name for mask, name in names if self.word19 & mask)

    def boot_dmesg(self) -> tuple[str, ...]:
        if self.sme_active:
            return ("AMD Memory Encryption Features active: SME",)
        return ()


def detect(
    leaf: Cpuid8000001F,
    msrs: Msrs,
    config: Kconfig,
    mem_encrypt: str | None,
    sme_flag_needs_active_sme: bool = False,
    snp_host_init: bool = False,
    family: int = 0x19,
) -> BootCpuFeatures:
    """``get_cpu_cap()`` + ``early_detect_mem_encrypt()`` + ``sme_enable()``; with
    ``sme_flag_needs_active_sme`` (08f253ec3767 "x86/cpu: Clear SME feature flag when not in use",
    5.18) the SME bit is cleared unless host SME is active, so /proc/cpuinfo shows ``sme`` only
    then.

    With ``snp_host_init`` (216d106c7ff7 "x86/sev: Add SEV-SNP host initialization support", 6.9)
    ``early_detect_mem_encrypt`` clears SEV_SNP along with SEV, and ``bsp_determine_snp`` keeps it
    only on family 0x19 or later with an RMP table the BIOS set up (SYSCFG SNPEn): that is
    ``CC_ATTR_HOST_SEV_SNP``. (The IOMMU must also support SNP; every modeled part's does, and
    ``amd_iommu=off`` is not modeled.)"""
    word19 = leaf.eax
    sev_bits = cpuid.SEV | cpuid.SEV_ES | (cpuid.SEV_SNP if snp_host_init else 0)
    if word19 & (cpuid.SME | cpuid.SEV):
        if not msrs.mem_encrypt_enabled:
            word19 &= ~(cpuid.SME | sev_bits)
        elif not msrs.smm_locked:
            word19 &= ~sev_bits
    host_snp = False
    if snp_host_init and word19 & cpuid.SEV_SNP:
        host_snp = family >= 0x19 and msrs.snp_enabled
        if not host_snp:
            word19 &= ~cpuid.SEV_SNP
    sme_active = False
    if config[kconfig.AMD_MEM_ENCRYPT] and word19 & cpuid.SME:
        if mem_encrypt == "on":
            sme_active = True
        elif mem_encrypt == "off":
            sme_active = False
        else:
            sme_active = config[kconfig.AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT]
    if sme_flag_needs_active_sme and not sme_active:
        word19 &= ~cpuid.SME
    return BootCpuFeatures(word19, sme_active, host_snp)
