"""The enablement matrix: parameters x NPT x Kconfig x BIOS x CPUID x kernel.

Expected results are an independent restatement of the dependency rules in the kernel
reference (§1.1, §1.2, §2.2, §2.3, §6), not a call into the model:

v5.12: SEV iff CONFIG_KVM_AMD_SEV, ``sev`` non-zero, the host kernel has X86_FEATURE_SEV (CPUID
bit and SMEE on) and ECX != 0 -- NPT is not consulted. SEV-ES additionally needs ``sev_es``,
X86_FEATURE_SEV_ES and EDX != 1. Parameters are ints defaulting to
CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT; the CPUID leaf is the raw host leaf whenever the host
has SEV.
v5.13: the same plus NPT; bool parameters defaulting to true, absent without
CONFIG_KVM_AMD_SEV; the CPUID leaf is zero unless SEV is enabled and EAX is masked.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import boot

LEAVES = {
    "milan": "0x0001FC3F:0x00004173:0x1FD:1",
    "milan-es100": "0x0001FC3F:0x00004173:0x1FD:100",
    "no-sev": "0x00000001:0x000000B3:0:0",
    "sev-bit-no-asids": "0x0001780F:0:0:1",
    "edx0-no-es-bit": "0x00000007:0x0000016F:0xF:0",
}
SEV_VALUES = [None, "0", "1", "2", "yes"]
SEV_ES_VALUES = [None, "0", "1"]


def _eax(leaf: str) -> int:
    return int(leaf.split(":")[0], 16)


def _int_param(value: str | None, default: bool) -> bool | None:
    """v5.12 int parameter: None means the load fails."""
    if value is None:
        return default
    return {"0": False, "1": True, "2": True}.get(value)


def _bool_param(value: str | None) -> bool | None:
    if value is None:
        return True
    return {"0": False, "1": True, "yes": True}.get(value)


def expected(
    kernel: str,
    sev: str | None,
    sev_es: str | None,
    npt_off: bool,
    kvm_amd_sev: bool,
    active_by_default: bool,
    smee: bool,
    leaf_name: str,
) -> dict[str, Any]:
    leaf = LEAVES[leaf_name]
    eax, _, ecx, edx = leaf.split(":")
    eax_v, ecx_v, edx_v = int(eax, 16), int(ecx, 0), int(edx, 0)
    host_sev = bool(eax_v & 2) and smee
    host_es = bool(eax_v & 8) and smee
    if kernel == "v5.12":
        p_sev, p_es = _int_param(sev, active_by_default), _int_param(sev_es, active_by_default)
        if p_sev is None or p_es is None:
            return {"loaded": False}
        on = kvm_amd_sev and p_sev and host_sev and ecx_v != 0
        es = on and p_es and host_es and edx_v != 1
        sysfs = {"sev": "1" if on else "0", "sev_es": "1" if es else "0"}
        advertised = eax_v if host_sev else 0
    else:
        if kvm_amd_sev:
            p_sev, p_es = _bool_param(sev), _bool_param(sev_es)
            if p_sev is None or p_es is None:
                return {"loaded": False}
        else:
            p_sev = p_es = False
        on = bool(kvm_amd_sev and p_sev and not npt_off and host_sev and ecx_v != 0)
        es = bool(on and p_es and host_es and edx_v != 1)
        sysfs = {"sev": "Y" if on else "N", "sev_es": "Y" if es else "N"} if kvm_amd_sev else {}
        advertised = (eax_v & (0x2 | (0x8 if es else 0) | 0x400)) if on else 0
    return {"loaded": True, "sev": bool(on), "sev_es": bool(es), "sysfs": sysfs, "eax": advertised}


CASES = list(
    itertools.product(
        ["v5.12", "v5.13"],
        SEV_VALUES,
        SEV_ES_VALUES,
        [False, True],
        [True, False],
        [False, True],
        [True, False],
        list(LEAVES),
    )
)


@pytest.mark.parametrize("kernel", ["v5.12", "v5.13"])
def test_enablement_matrix(kernel: str) -> None:
    mismatches = []
    for case in (c for c in CASES if c[0] == kernel):
        _, sev, sev_es, npt_off, kvm_amd_sev, abd, smee, leaf_name = case
        params = [f"kvm_amd.{n}={v}" for n, v in (("sev", sev), ("sev_es", sev_es)) if v is not None]
        if npt_off:
            params.append("kvm_amd.npt=0")
        config = [
            f"CONFIG_KVM_AMD_SEV={'y' if kvm_amd_sev else 'n'}",
            f"CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT={'y' if abd else 'n'}",
        ]
        report = boot(
            kernel=kernel,
            cpuid=LEAVES[leaf_name],
            params=params,
            config=config,
            bios=[f"smee={'on' if smee else 'off'}"],
            cpus=2,
        )
        want = expected(*case)
        got: dict[str, Any] = {"loaded": report["loaded"]}
        if report["loaded"]:
            sysfs = {k: v for k, v in report["sysfs"].items() if k in ("sev", "sev_es")}
            got.update(
                sev=report["sev_enabled"],
                sev_es=report["sev_es_enabled"],
                sysfs=sysfs,
                eax=report["supported_cpuid_8000001f"]["eax"],
            )
        if got != want:
            mismatches.append((case, want, got))
    assert mismatches == [], mismatches[:3]
    assert len([c for c in CASES if c[0] == kernel]) == 1200


def test_sev_es_needs_edx_above_one_even_when_everything_else_is_on() -> None:
    report = boot(profile="epyc-9654", kernel="v5.13")
    assert report["sev_enabled"] and not report["sev_es_enabled"]
    split = boot(profile="epyc-9654", kernel="v5.13", bios="sev_es_asid_space_limit=100")
    assert split["sev_es_enabled"]
    assert split["sev_asid_range"] == [100, 1006]
    assert split["sev_es_asid_range"] == [1, 99]
    assert split["dmesg"][-4:-2] == ["SEV supported: 907 ASIDs", "SEV-ES supported: 99 ASIDs"]


def test_smee_off_clears_the_cpu_flags_and_5_12_tries_init_anyway() -> None:
    report = boot(profile="epyc-7763", kernel="v5.12", bios="smee=off")
    assert report["host_cpu_flags"] == []
    assert report["host_cpuid_8000001f"]["eax"] & 0x2, "CPUID still advertises SEV"
    assert [c["cmd"] + ":" + str(c["status"]) for c in report["firmware"]["boot_commands"]] == [
        "PLATFORM_STATUS:SUCCESS",
        "INIT:HWSEV_RET_PLATFORM",
    ]
    assert report["boot_dmesg"][-1] == "ccp 0000:22:00.1: SEV: failed to INIT error 0x13"


def test_smee_off_ccp_sets_up_no_sev_device_from_5_13() -> None:
    """1877c73b7c03: without X86_FEATURE_SEV the ccp driver neither INITs nor creates /dev/sev."""
    report = boot(profile="epyc-7763", kernel="v5.13", bios="smee=off")
    assert report["firmware"]["boot_commands"] == []
    assert report["boot_dmesg"] == [
        "ccp 0000:22:00.1: SEV: memory encryption not enabled by BIOS",
        "ccp 0000:22:00.1: psp enabled",
    ]


def test_mem_encrypt_on_activates_host_sme_without_touching_kvm() -> None:
    off = boot(profile="epyc-7763")
    on = boot(profile="epyc-7763", cmdline="mem_encrypt=on")
    assert on["boot_dmesg"][0] == "AMD Memory Encryption Features active: SME"
    assert "AMD Memory Encryption Features active: SME" not in off["boot_dmesg"]
    assert on["sev_enabled"] == off["sev_enabled"]
    assert on["sysfs"] == off["sysfs"]


def test_milan_asid_count_253_is_what_the_kernel_prints() -> None:
    report = boot(profile="epyc-7763", kernel="v5.13", bios="sev_asid_count=253")
    assert "SEV supported: 253 ASIDs" in report["dmesg"]
    assert report["misc_capacity"] == {"sev": 253, "sev_es": 0}
    assert report["misc_capacity_file"] == "sev 253\n"


def test_every_asid_given_to_sev_es_wraps_nothing_in_5_13_but_gives_zero_sev() -> None:
    report = boot(profile="lab", kernel="v5.13", bios="sev_es_asid_space_limit=5")
    assert report["sev_enabled"], "5.13 calls SEV supported with zero SEV ASIDs"
    assert "SEV supported: 0 ASIDs" in report["dmesg"]
    assert report["misc_capacity"] == {"sev": 0, "sev_es": 4}
    assert report["misc_capacity_file"] == "sev_es 4\n"


def test_edx_zero_wraps_the_unsigned_sev_es_count() -> None:
    report = boot(kernel="v5.13", cpuid="0xF:0x16F:15:0", cpus=2)
    assert report["sev_es_enabled"]
    assert "SEV supported: 16 ASIDs" in report["dmesg"]
    assert "SEV-ES supported: 4294967295 ASIDs" in report["dmesg"]


def test_params_on_the_command_line_and_modprobe_merge_in_order() -> None:
    report = boot(kernel="v5.12", cmdline='quiet kvm-amd.sev=1 kvm_amd.sev_es="1"', params="sev_es=0")
    assert report["sysfs"]["sev"] == "1"
    assert report["sysfs"]["sev_es"] == "0"


def test_npt_parameter_reads_back_as_the_final_npt_decision() -> None:
    report = boot(kernel="v5.13", params="kvm_amd.npt=0")
    assert report["sysfs"]["npt"] == "N"
    assert "SVM: kvm: Nested Paging disabled" in report["dmesg"]
    assert "SVM: Virtual VMLOAD VMSAVE supported" not in report["dmesg"]
