"""One test per behaviour-changing patch of the series, each on both sides of the patch, plus
the refactors shown to change nothing over a configuration matrix."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kvmsev.errors import InputError
from kvmsev.kvm import kernels, patches
from kvmsev.kvm.behaviour import V5_12, V5_13
from kvmsev.kvm.later import release_key
from tests.conftest import boot

MERGED = [p for p in patches.PATCHES if p.group == "series"]


def test_catalogue_lists_the_fifteen_merged_commits_and_the_v4_cpuid_patch() -> None:
    assert len(MERGED) == 15
    assert [p.number for p in MERGED] == [f"{n:02d}" for n in range(1, 16)]
    assert patches.BY_NAME["npt-required"].commit == "fa13680f5668"
    assert patches.BY_NAME["cpuid-mask-v4"].number == "v4 04/14"
    kinds = {p.name: p.kind for p in patches.PATCHES}
    assert {n for n, k in kinds.items() if k == "cosmetic"} == {
        "drop-x86-sev-enabled",
        "drop-flush-prototype",
    }


def test_v5_13_is_v5_12_plus_the_series_plus_the_other_5_13_fixes() -> None:
    series = [p.name for p in MERGED if p.field is not None]
    others = [p.name for p in patches.PATCHES if p.group == "5.13"]
    assert kernels.build("v5.12", series + others) == V5_13
    assert kernels.build("v5.13", [], series + others) == V5_12
    later = [p.name for p in patches.PATCHES if p.group == "5.14"]
    assert later[:3] == ["off-by-one-fix", "last-vmentry-cpu-minus-one", "migration-pin-errors"]
    assert kernels.build("v5.13", later) == kernels.PRESETS["v5.14"]


def test_each_preset_is_the_one_before_plus_its_releases_changes() -> None:
    for previous, release in itertools.pairwise(kernels.RELEASES[1:]):
        names = [p.name for p in kernels.changes_in(release)]
        assert kernels.build(f"v{previous}", names) == kernels.PRESETS[f"v{release}"], release
        if names:
            assert kernels.PRESETS[f"v{release}"] != kernels.PRESETS[f"v{previous}"], release
            # and each change can be taken back out of its release on its own
            for name in names:
                assert kernels.build(f"v{release}", [], [name]) != kernels.PRESETS[f"v{release}"]


def test_every_later_change_names_its_commit_and_release() -> None:
    for patch in patches.PATCHES:
        if patch.group in ("series", "v4", "5.13"):
            continue
        if patch.group == "stable":
            # merged after the newest preset: its mainline release is newer than every preset's
            assert release_key(patch.number) > release_key(kernels.NEWEST), patch.name
            assert all(patch is not p for name in kernels.PRESETS for p in kernels.changes_in(name[1:]))
        else:
            assert patch.group in kernels.RELEASES, patch.name
        assert len(patch.commit) >= 12 and all(c in "0123456789abcdef" for c in patch.commit), patch.name


def test_patch_requests_that_would_do_nothing_are_refused() -> None:
    with pytest.raises(InputError, match=r"already in v5\.13"):
        kernels.build("v5.13", ["zero-vmcb-array"])
    with pytest.raises(InputError, match=r"not in v5\.12"):
        kernels.build("v5.12", [], ["zero-vmcb-array"])
    with pytest.raises(InputError, match="cosmetic"):
        kernels.build("v5.12", ["drop-flush-prototype"])
    with pytest.raises(InputError, match="unknown patch"):
        kernels.build("v5.12", ["no-such-patch"])


def test_two_switches_setting_one_field_the_same_way_are_refused() -> None:
    """debug-swap (6.6) and debug-swap-default-on (6.10) both turn ``debug_swap`` on."""
    with pytest.raises(InputError, match="'debug-swap' and 'debug-swap-default-on' both set debug_swap"):
        kernels.build("v5.12", ["debug-swap-default-on", "debug-swap"])
    swapped = kernels.build("v6.6", ["debug-swap-default-off"])
    assert swapped.debug_swap == kernels.PRESETS["v6.8"].debug_swap


# -- 01 ---------------------------------------------------------------------------------------
def test_zero_vmcb_array_makes_sev_vmcbs_zeroed() -> None:
    before = boot(kernel="v5.12", params="kvm_amd.sev=1", cpus=4)
    after = boot(kernel="v5.12", params="kvm_amd.sev=1", cpus=4, apply="zero-vmcb-array")
    assert before["sev_vmcbs"] == {"cpus": 4, "entries": 510, "zeroed": False}
    assert after["sev_vmcbs"] == {"cpus": 4, "entries": 510, "zeroed": True}
    assert boot(kernel="v5.13", cpus=4, revert="zero-vmcb-array")["sev_vmcbs"]["zeroed"] is False


# -- 02 ---------------------------------------------------------------------------------------
def test_free_bitmap_on_setup_failure_releases_the_asid_bitmap_on_reclaim_oom() -> None:
    kw: dict[str, Any] = {
        "kernel": "v5.12",
        "params": "kvm_amd.sev=1",
        "cpus": 2,
        "fail_alloc": "sev_reclaim_asid_bitmap",
    }
    before = boot(**kw)
    after = boot(**kw, apply="free-bitmap-on-setup-failure")
    vmcbs = 2 * 510 * 8
    assert not before["sev_enabled"] and not after["sev_enabled"]
    assert before["allocated_bytes"] == vmcbs + 64, "ASID bitmap kept while SEV is off"
    assert after["allocated_bytes"] == vmcbs


def test_dropping_svm_sev_enabled_without_freeing_the_bitmap_leaks_it() -> None:
    """The bug f31b88b35f90's message says it prevents: once teardown keys on sev_enabled,
    a bitmap kept by a failed setup is never freed."""
    kw: dict[str, Any] = {
        "kernel": "v5.12",
        "params": "kvm_amd.sev=1",
        "cpus": 2,
        "fail_alloc": "sev_reclaim_asid_bitmap",
    }
    leaky = boot(unload=True, apply="drop-svm-sev-enabled", **kw)
    assert leaky["unload"]["leaked"] == {"sev_asid_bitmap": 64}
    fixed = boot(unload=True, apply=["drop-svm-sev-enabled", "free-bitmap-on-setup-failure"], **kw)
    assert fixed["unload"]["leaked_bytes"] == 0
    assert boot(unload=True, **kw)["unload"]["leaked_bytes"] == 0


# -- 03 ---------------------------------------------------------------------------------------
def test_npt_required_keeps_sev_off_without_npt_and_reorders_the_log() -> None:
    kw: dict[str, Any] = {"kernel": "v5.12", "params": ["kvm_amd.sev=1", "kvm_amd.npt=0"]}
    before = boot(**kw)
    after = boot(**kw, apply="npt-required")
    assert before["sev_enabled"] and not before["npt_enabled"]
    assert not after["sev_enabled"]
    assert before["dmesg"][:3] == [
        "kvm: Nested Virtualization enabled",
        "SEV supported: 509 ASIDs",
        "SVM: kvm: Nested Paging disabled",
    ]
    assert after["dmesg"][:2] == [
        "kvm: Nested Virtualization enabled",
        "SVM: kvm: Nested Paging disabled",
    ]
    assert "SEV supported: 509 ASIDs" not in after["dmesg"]
    enabled = boot(kernel="v5.12", params="kvm_amd.sev=1", apply="npt-required")
    assert enabled["dmesg"][1:3] == ["SVM: kvm: Nested Paging enabled", "SEV supported: 509 ASIDs"]


# -- 05 and the v4 version --------------------------------------------------------------------
def test_cpuid_mask_stops_advertising_what_kvm_does_not_support() -> None:
    milan_raw = {"eax": 0x0001FC3F, "ebx": 0x4173, "ecx": 509, "edx": 1}
    off = boot(kernel="v5.12")  # sev defaults to 0 on a distribution config
    assert not off["sev_enabled"]
    assert off["supported_cpuid_8000001f"] == milan_raw, "5.12 advertises SEV although KVM has it off"
    masked_off = boot(kernel="v5.12", apply="cpuid-mask")
    assert masked_off["supported_cpuid_8000001f"] == {"eax": 0, "ebx": 0, "ecx": 0, "edx": 0}
    masked_on = boot(kernel="v5.12", params="kvm_amd.sev=1", apply="cpuid-mask")
    assert masked_on["supported_cpuid_8000001f"] == {**milan_raw, "eax": 0x402}


def test_v4_cpuid_patch_masks_eax_but_ignores_the_module_parameters() -> None:
    v4_off = boot(kernel="v5.12", apply="cpuid-mask-v4")
    assert not v4_off["sev_enabled"]
    assert v4_off["supported_cpuid_8000001f"]["eax"] == 0x40A, "SEV and SEV-ES still advertised"
    merged_off = boot(kernel="v5.13", params="kvm_amd.sev=0")
    assert merged_off["supported_cpuid_8000001f"]["eax"] == 0
    v4_on_513 = boot(kernel="v5.13", revert="cpuid-mask", apply="cpuid-mask-v4", params="kvm_amd.sev=0")
    assert v4_on_513["supported_cpuid_8000001f"]["eax"] == 0x40A


# -- 07 ---------------------------------------------------------------------------------------
def test_append_enabled_turns_the_parameters_into_bools() -> None:
    before = boot(kernel="v5.12", params="kvm_amd.sev=2")
    after = boot(kernel="v5.12", params="kvm_amd.sev=2", apply="append-enabled")
    assert before["sysfs"]["sev"] == "1" and before["sev_enabled"]
    assert not after["loaded"] and after["load_error"] == "EINVAL"
    assert after["dmesg"] == ["kvm_amd: `2' invalid for parameter `sev'"]
    yes_int = boot(kernel="v5.12", params="kvm_amd.sev=yes")
    yes_bool = boot(kernel="v5.12", params="kvm_amd.sev=yes", apply="append-enabled")
    assert yes_int["load_error"] == "EINVAL"
    assert yes_bool["sysfs"]["sev"] == "Y"


# -- 08 ---------------------------------------------------------------------------------------
def test_kconfig_gated_params_disappear_without_config_kvm_amd_sev() -> None:
    kw: dict[str, Any] = {
        "kernel": "v5.12",
        "config": "CONFIG_KVM_AMD_SEV=n",
        "params": "kvm_amd.sev=1",
    }
    before = boot(**kw)
    after = boot(**kw, apply="kconfig-gated-params")
    assert before["sysfs"]["sev"] == "0"
    assert "sev" not in after["sysfs"] and "sev_es" not in after["sysfs"]
    assert after["dmesg"][0] == "kvm_amd: unknown parameter 'sev' ignored"
    assert after["loaded"] and not after["sev_enabled"]


# -- 09 ---------------------------------------------------------------------------------------
def test_enable_by_default_turns_sev_on_without_parameters() -> None:
    before = boot(kernel="v5.12")
    after = boot(kernel="v5.12", apply="enable-by-default")
    assert not before["sev_enabled"]
    assert after["sev_enabled"] and after["sysfs"]["sev"] == "1"
    sme_default = boot(kernel="v5.12", config="CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT=y")
    assert sme_default["sev_enabled"], "before 6c2c7bf5803c the SME Kconfig default decided"


# -- 13 ---------------------------------------------------------------------------------------
def test_drop_svm_sev_enabled_skips_per_cpu_arrays_and_flush_after_failed_setup() -> None:
    kw: dict[str, Any] = {
        "kernel": "v5.12",
        "params": "kvm_amd.sev=1",
        "cpus": 2,
        "fail_alloc": "sev_reclaim_asid_bitmap",
    }
    before = boot(unload=True, apply="free-bitmap-on-setup-failure", **kw)
    after = boot(unload=True, apply=["free-bitmap-on-setup-failure", "drop-svm-sev-enabled"], **kw)
    assert before["sev_vmcbs"] is not None and before["unload"]["flushed"]
    assert after["sev_vmcbs"] is None and not after["unload"]["flushed"]


def test_skip_flush_without_the_freed_bitmap_guard_dereferences_null() -> None:
    """v5.13 with a5c1c5aad6cf reverted: teardown runs on max_sev_asid, and the new
    reclaim-bitmap check of 469bb32b68d5 reads the NULL bitmap a failed setup left."""
    report = boot(
        unload=True,
        kernel="v5.13",
        revert="drop-svm-sev-enabled",
        cpus=2,
        fail_alloc="sev_reclaim_asid_bitmap",
    )
    assert report["unload"]["oops"] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert (
        boot(unload=True, kernel="v5.13", cpus=2, fail_alloc="sev_reclaim_asid_bitmap")["unload"]["oops"]
        is None
    )


# -- 15 ---------------------------------------------------------------------------------------
def test_skip_unused_flush_avoids_the_unload_flush_on_an_unused_host() -> None:
    before = boot(unload=True, kernel="v5.12", params="kvm_amd.sev=1", cpus=4)
    after = boot(unload=True, kernel="v5.12", params="kvm_amd.sev=1", cpus=4, apply="skip-unused-flush")
    assert before["unload"]["flushed"] and before["unload"]["wbinvd_cpus"] == [0, 1, 2, 3]
    assert before["unload"]["firmware"] == [{"cmd": "DF_FLUSH", "ret": 0, "status": "SUCCESS", "code": 0}]
    assert not after["unload"]["flushed"] and after["unload"]["firmware"] == []


def test_unload_without_sev_firmware_logs_the_df_flush_failure_only_before_the_series() -> None:
    before = boot(unload=True, profile="ryzen-3950x", kernel="v5.12", params="kvm_amd.sev=1", cpus=2)
    after = boot(unload=True, profile="ryzen-3950x", kernel="v5.13", cpus=2)
    assert before["unload"]["dmesg"] == ["SEV: DF_FLUSH failed, ret=-19, error=0"]
    assert after["unload"]["dmesg"] == [] and after["sev_enabled"]


# -- refactors --------------------------------------------------------------------------------
MATRIX = list(
    itertools.product(
        ["epyc-7763", "epyc-4124p", "ryzen-3950x"],
        [
            (),
            ("kvm_amd.sev=1",),
            ("kvm_amd.sev=0",),
            ("kvm_amd.sev=1", "kvm_amd.npt=0"),
            ("kvm_amd.sev=1", "kvm_amd.sev_es=1"),
        ],
        [(), ("CONFIG_KVM_AMD_SEV=n",)],
        [(), ("sev_es_asid_space_limit=100",)],
        [(), ("sev_asid_bitmap",), ("sev_reclaim_asid_bitmap",), ("sev_vmcbs[1]",)],
    )
)


def _observable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("behaviour", "patches")}


@pytest.mark.parametrize("refactor", [p.name for p in patches.PATCHES if p.kind == "refactor"])
@pytest.mark.parametrize("kernel", ["v5.12", "v5.13"])
def test_refactors_change_nothing_observable(refactor: str, kernel: str) -> None:
    toggle: dict[str, str] = {"apply": refactor} if kernel == "v5.12" else {"revert": refactor}
    other = {"v5.12": "v5.13", "v5.13": "v5.12"}[kernel]
    compared = 0
    for profile, params, config, bios, fail in MATRIX:
        if bios and profile != "epyc-7763":
            continue
        kw: dict[str, Any] = {
            "kernel": kernel,
            "profile": profile,
            "params": params,
            "config": config,
            "bios": bios,
            "fail_alloc": fail,
            "cpus": 2,
        }
        without = boot(unload=True, **kw)
        with_it = boot(unload=True, **kw, **toggle)
        assert _observable(without) == _observable(with_it), (refactor, kw)
        compared += 1
    assert compared == 160
    # the comparison can tell kernels apart, so it is not vacuous
    assert _observable(boot(kernel=kernel)) != _observable(boot(kernel=other))
