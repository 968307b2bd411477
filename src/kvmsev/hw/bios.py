"""BIOS setup options and what they change in what the OS sees.

* ``smee`` (``on``/``off``): "SMEE" / "Memory Encryption" sets SYSCFG[23] MemEncryptionModEn.
  CPUID keeps advertising SME/SEV either way; the kernel reads the MSR (see
  :mod:`kvmsev.kernel.cpufeatures`) and the firmware refuses INIT without it (status 0x13).
* ``sev_es_asid_space_limit`` (integer): "SEV-ES ASID Space Limit" becomes CPUID EDX
  (MIN_SEV_ASID): ASIDs ``1..limit-1`` go to SEV-ES, ``limit..ECX`` to SEV. Real examples: EDX 5
  (AMDESE/AMDSEV#41), 100 (virtee/snphost#193). A limit of ECX+1 gives every ASID to SEV-ES (the
  case Linux 6.8's 0aa6b90ef9d7 handles as "SEV unusable").
* ``sev_asid_count`` (one of the part's choices): "SEV ASID Count" on Milan (253 or 509) becomes
  CPUID ECX (AMDESE/AMDSEV#258).

* ``snp`` (``on``/``off``): "SEV-SNP Support" sets SYSCFG[24] SNPEn and reserves the RMP table
  (only on parts whose CPUID has SEV_SNP, and only with SMEE on).
* ``smt`` (``on``/``off``): "SMT Control". Off, the OS sees one thread per core (half the
  profile's threads, unless ``--cpus`` says otherwise), and the SNP firmware accepts a guest
  policy with the SMT bit clear; on, SNP_LAUNCH_START fails such a policy with POLICY_FAILURE
  (9f4701e05fae's description of the firmware).

Options a profile does not list do not exist on that platform and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kvmsev.errors import InputError
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.hw.msr import SYSCFG_MEM_ENCRYPT, SYSCFG_SNP_EN, Msrs
from kvmsev.hw.profiles import Profile
from kvmsev.numbers import parse_int

OPTIONS = ("smee", "sev_es_asid_space_limit", "sev_asid_count", "snp", "smt")


@dataclass(frozen=True, slots=True)
class Platform:
    """What the OS sees after the BIOS ran: the leaf and the MSRs."""

    leaf: Cpuid8000001F
    msrs: Msrs
    bios: dict[str, str]

    @property
    def smt(self) -> bool:
        """SMT enabled in the BIOS (a part whose profile offers no SMT control has none)."""
        return self.bios.get("smt") == "on"


def parse_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InputError("--bios", f"{text!r} must look like KEY=VALUE (keys: {', '.join(OPTIONS)})")
    return key.strip(), value.strip()


def _int_value(key: str, value: str) -> int:
    try:
        return parse_int(value)
    except ValueError as exc:
        raise InputError(f"--bios {key}", str(exc)) from None


def apply(profile: Profile, choices: Mapping[str, str], leaf_override: Cpuid8000001F | None) -> Platform:
    """The profile with the user's BIOS choices applied; ``leaf_override`` is ``--cpuid``."""
    for key in choices:
        if key not in OPTIONS:
            raise InputError("--bios", f"unknown BIOS option {key!r} (known: {', '.join(OPTIONS)})")
        if key not in profile.bios:
            offered = ", ".join(sorted(profile.bios)) or "none"
            raise InputError(f"--bios {key}", f"profile {profile.name} does not offer it (offers: {offered})")
        if leaf_override is not None and key != "smee":
            raise InputError(f"--bios {key}", "conflicts with --cpuid, which fixes ECX and EDX")

    leaf = leaf_override if leaf_override is not None else profile.leaf
    syscfg = profile.syscfg
    effective: dict[str, str] = {}

    smee = choices.get("smee", profile.bios.get("smee", {}).get("default"))
    if smee is not None:
        smee = smee.lower()
        if smee not in ("on", "off"):
            raise InputError("--bios smee", f"{smee!r} must be on or off")
        syscfg = syscfg | SYSCFG_MEM_ENCRYPT if smee == "on" else syscfg & ~SYSCFG_MEM_ENCRYPT
        effective["smee"] = smee

    snp = choices.get("snp", profile.bios.get("snp", {}).get("default"))
    if snp is not None:
        snp = snp.lower()
        if snp not in ("on", "off"):
            raise InputError("--bios snp", f"{snp!r} must be on or off")
        if snp == "on" and smee != "on":
            raise InputError("--bios snp", "SEV-SNP needs memory encryption (smee=on)")
        syscfg = syscfg | SYSCFG_SNP_EN if snp == "on" else syscfg & ~SYSCFG_SNP_EN
        effective["snp"] = snp

    smt = choices.get("smt", profile.bios.get("smt", {}).get("default"))
    if smt is not None:
        smt = smt.lower()
        if smt not in ("on", "off"):
            raise InputError("--bios smt", f"{smt!r} must be on or off")
        effective["smt"] = smt

    if "sev_asid_count" in choices:
        count = _int_value("sev_asid_count", choices["sev_asid_count"])
        allowed = profile.bios["sev_asid_count"].get("choices", [])
        if count not in allowed:
            raise InputError("--bios sev_asid_count", f"{count} is not offered (choices: {allowed})")
        leaf = leaf.replace(ecx=count)
        effective["sev_asid_count"] = str(count)

    if "sev_es_asid_space_limit" in choices:
        limit = _int_value("sev_es_asid_space_limit", choices["sev_es_asid_space_limit"])
        low = int(profile.bios["sev_es_asid_space_limit"].get("min", 1))
        if not low <= limit <= leaf.ecx + 1:
            raise InputError(
                "--bios sev_es_asid_space_limit",
                f"{limit} is outside {low}..{leaf.ecx + 1} for this part",
            )
        leaf = leaf.replace(edx=limit)
        effective["sev_es_asid_space_limit"] = str(limit)

    return Platform(leaf, Msrs(syscfg=syscfg, hwcr=profile.hwcr), effective)
