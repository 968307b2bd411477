"""Kernels after 5.13: what each preset's changes do, as a user sees them (KVM selftests ported where
they exist: sev_init2_tests, sev_migrate_tests, sev_smoke_test)."""

from __future__ import annotations

from typing import Any

import pytest

from kvmsev.errors import InputError
from kvmsev.scenario import runner, schema
from tests.conftest import boot

GENOA_ES = ["sev_es_asid_space_limit=100"]


def run(kernel: str, steps: list[dict[str, Any]], profile: str = "epyc-9654", **host: Any) -> dict[str, Any]:
    host = {"profile": profile, "kernel": kernel, "cpus": 4, "bios": GENOA_ES, **host}
    return runner.run(schema.parse({"host": host, "steps": steps}))


def errnos(report: dict[str, Any]) -> list[str | None]:
    return [s["errno"] for s in report["steps"]]


# -- boot -----------------------------------------------------------------------------------------


def test_a_6_12_genoa_host_logs_what_6_12_logs() -> None:
    report = boot(profile="epyc-9654", kernel="v6.12", bios=GENOA_ES)
    assert report["dmesg"] == [
        "kvm_amd: TSC scaling supported",
        "kvm_amd: Nested Virtualization enabled",
        "kvm_amd: Nested Paging enabled",
        "kvm_amd: LBR virtualization supported",
        "kvm_amd: SEV enabled (ASIDs 100 - 1006)",
        "kvm_amd: SEV-ES enabled (ASIDs 1 - 99)",
        "kvm_amd: Virtual VMLOAD VMSAVE supported",
        "kvm_amd: Virtual GIF supported",
        "kvm_amd: Virtual NMI enabled",
    ]
    assert report["misc_capacity_file"] == "sev 907\nsev_es 99\n"
    assert report["sysfs"]["debug_swap"] == "Y" and report["sysfs"]["sev_snp"] == "N"
    assert report["vm_types"] == 0b1101  # default, SEV, SEV-ES
    assert report["sev_vmsa_features"] == 0x20
    # KVM_GET_SUPPORTED_CPUID: EBX keeps only the C-bit (6.1), EAX what KVM enables
    assert report["supported_cpuid_8000001f"] == {"eax": 0x40A, "ebx": 0x33, "ecx": 1006, "edx": 100}


def test_the_log_format_follows_the_kernel() -> None:
    lines = {k: boot(profile="epyc-7763", kernel=k)["dmesg"] for k in ("v5.13", "v6.3", "v6.5")}
    assert "SEV supported: 509 ASIDs" in lines["v5.13"]
    assert "kvm_amd: SEV supported: 509 ASIDs" in lines["v6.3"]
    assert "kvm_amd: SEV enabled (ASIDs 1 - 509)" in lines["v6.5"]
    assert "kvm_amd: SEV-ES disabled (ASIDs 0 - 0)" in lines["v6.5"]


def test_an_empty_sev_range_is_unusable_from_6_9() -> None:
    bios = ["sev_es_asid_space_limit=1007"]
    old, new = (boot(profile="epyc-9654", kernel=k, bios=bios) for k in ("v6.8", "v6.9"))
    assert "kvm_amd: SEV enabled (ASIDs 1007 - 1006)" in old["dmesg"]
    assert "kvm_amd: SEV unusable (ASIDs 1007 - 1006)" in new["dmesg"]
    assert "sev " not in new["misc_capacity_file"] and new["sysfs"]["sev"] == "Y"
    steps = [{"op": "vm_create", "vm": "a"}, {"op": "sev_init", "vm": "a"}]
    assert errnos(run("v6.8", steps, bios=bios))[1] == "EBUSY"
    assert errnos(run("v6.9", steps, bios=bios))[1] == "ENOTTY"


def test_nrips_off_turns_sev_off_from_6_6() -> None:
    for kernel, sev in (("v6.5", "Y"), ("v6.6", "N")):
        report = boot(profile="epyc-7763", kernel=kernel, params=["kvm_amd.nrips=0"])
        assert report["sysfs"]["sev"] == sev, kernel


def test_edx_0_hands_out_the_hosts_asid_0_from_5_14() -> None:
    steps = [{"op": "vm_create", "vm": "a"}, {"op": "sev_init", "vm": "a"}, {"op": "launch_start", "vm": "a"}]
    cpuid = "0x0001FC3F:0x00004173:0x000001FD:0x00000000"
    old = run("v5.13", steps, profile="epyc-7763", cpuid=cpuid, bios=[])
    new = run("v5.14", steps, profile="epyc-7763", cpuid=cpuid, bios=[])
    assert errnos(old)[1] == "EBUSY"
    assert new["steps"][1]["result"]["asid"] == 0
    assert new["steps"][2]["fw_error"]["name"] == "INVALID_ASID"
    assert any(v["invariant"] == "asid_ranges" for v in new["invariants"]["violations"])


# -- KVM_SEV_INIT2 (sev_init2_tests) ---------------------------------------------------------------


def test_init2_accepts_sev_and_sev_es_vm_types_only() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "sev", "type": 2},
        {"op": "sev_init2", "vm": "sev"},
        {"op": "vm_create", "vm": "es", "type": 3},
        {"op": "sev_init2", "vm": "es"},
        {"op": "vm_create", "vm": "plain"},
        {"op": "sev_init2", "vm": "plain"},
        {"op": "sev_init", "vm": "sev"},
    ]
    assert errnos(run("v6.12", steps)) == [None, None, None, None, None, "EINVAL", "EINVAL"]


@pytest.mark.parametrize("bit", [0, 1, 17, 31])
def test_init2_refuses_any_flag(bit: int) -> None:
    steps = [{"op": "vm_create", "vm": "es", "type": 3}, {"op": "sev_init2", "vm": "es", "flags": 1 << bit}]
    assert errnos(run("v6.12", steps))[1] == "EINVAL"


def test_init2_takes_only_the_vmsa_features_kvm_offers() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "sev", "type": 2},
        {"op": "sev_init2", "vm": "sev", "vmsa_features": 0x20},
        {"op": "vm_create", "vm": "es", "type": 3},
        {"op": "sev_init2", "vm": "es", "vmsa_features": 0x1},
        {"op": "sev_init2", "vm": "es", "vmsa_features": 0x20},
    ]
    assert errnos(run("v6.12", steps)) == [None, "EINVAL", None, "EINVAL", None]


def test_an_sev_typed_vm_cannot_run_before_init2() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "es", "type": 3},
        {"op": "vcpu_create", "vm": "es"},
        {"op": "vcpu_run", "vm": "es", "vcpu": 0, "cpu": 0},
    ]
    assert errnos(run("v6.12", steps))[2] == "EINVAL"
    assert errnos(run("v6.9", steps[:1]))[0] == "EINVAL"  # no VM types before 6.10


# -- intra-host migration (sev_migrate_tests) -------------------------------------------------------


def launched(name: str, es: bool = False) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": name},
        {"op": "sev_es_init" if es else "sev_init", "vm": name},
        {"op": "launch_start", "vm": name, "policy": 4 if es else 0},
    ]
    return steps


def test_a_guest_moves_along_a_chain_and_the_dead_source_answers_eio() -> None:
    steps: list[dict[str, Any]] = [
        *launched("src"),
        {"op": "vm_create", "vm": "dst0"},
        {"op": "move_enc_context_from", "vm": "dst0", "source": "src"},
        {"op": "vm_create", "vm": "dst1"},
        {"op": "move_enc_context_from", "vm": "dst1", "source": "dst0"},
        {"op": "move_enc_context_from", "vm": "src", "source": "dst1"},
        {"op": "guest_status", "vm": "dst0"},
    ]
    report = run("v6.12", steps)
    assert errnos(report)[3:] == [None, None, None, None, "EIO", "EIO"]
    assert report["steps"][6]["result"]["asid"] == report["steps"][1]["result"]["asid"]
    assert errnos(run("v5.15", steps))[4] == "EINVAL"  # no KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM yet


def test_moving_needs_an_sev_source_and_a_plain_destination() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "plain"},
        {"op": "vm_create", "vm": "dst"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "plain"},
        *launched("a"),
        *launched("b"),
        {"op": "move_enc_context_from", "vm": "b", "source": "a"},
        {"op": "move_enc_context_from", "vm": "a", "source": "a"},
    ]
    assert errnos(run("v6.12", steps))[2::1][0] == "EINVAL"
    assert errnos(run("v6.12", steps))[-2:] == ["EINVAL", "EINVAL"]


def test_an_sev_es_source_needs_the_same_vcpus_all_launched() -> None:
    steps: list[dict[str, Any]] = [
        *launched("src", es=True),
        {"op": "vcpu_create", "vm": "src"},
        {"op": "vm_create", "vm": "dst"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
        {"op": "vcpu_create", "vm": "dst"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
        {"op": "launch_update_vmsa", "vm": "src"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
    ]
    assert errnos(run("v6.12", steps))[5:] == ["EINVAL", None, "EINVAL", None, None]


def test_a_source_with_mirrors_moves_only_from_5_18() -> None:
    steps: list[dict[str, Any]] = [
        *launched("src"),
        {"op": "vm_create", "vm": "m"},
        {"op": "copy_enc_context_from", "vm": "m", "source": "src"},
        {"op": "vm_create", "vm": "dst"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
    ]
    assert errnos(run("v5.16", steps))[-1] == "EBUSY"
    assert errnos(run("v5.18", steps))[-1] is None


def test_moving_an_sev_es_guest_across_cgroups_charges_the_wrong_resource() -> None:
    """sev_misc_cg_try_charge / _uncharge read ``es_active`` of a VM that has none at that moment
    (the destination before the move, the source after it): the destination's cgroup is charged
    ``sev`` and the source's uncharged ``sev``, so the source keeps its ``sev_es`` unit; when the
    guest goes, its ``sev_es`` is uncharged from a cgroup that never had one."""
    steps: list[dict[str, Any]] = [
        {"op": "cgroup_create", "cgroup": "/a"},
        {"op": "cgroup_create", "cgroup": "/b"},
        {"op": "vm_create", "vm": "src", "cgroup": "/a"},
        {"op": "sev_es_init", "vm": "src"},
        {"op": "launch_start", "vm": "src", "policy": 4},
        {"op": "launch_update_vmsa", "vm": "src"},
        {"op": "vm_create", "vm": "dst", "cgroup": "/b"},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
        {"op": "vm_destroy", "vm": "dst"},
    ]
    report = run("v6.12", steps)
    move, destroy = report["steps"][-2:]
    assert move["ret"] == 0
    assert {"kind": "dmesg", "text": "misc cgroup resource sev became less than 0"} in move["events"]
    assert not [e for e in destroy["events"] if e["kind"] == "dmesg"]  # the WARN_ONCE has fired
    usage = report["final"]["misc_cgroup"]
    assert usage["/a"]["usage"] == {"sev": -1, "sev_es": 1}
    assert usage["/b"]["usage"] == {"sev": 1, "sev_es": -1}
    assert {v["invariant"] for v in report["invariants"]["violations"]} == {"misc_usage"}


# -- SEV-SNP (6.11) ------------------------------------------------------------------------------


SNP_HOST = {"profile": "epyc-9124", "bios": [*GENOA_ES, "snp=on"]}


def test_snp_needs_the_bios_and_rides_on_sev_es() -> None:
    on = boot(profile="epyc-9124", kernel="v6.12", bios=[*GENOA_ES, "snp=on"])
    off = boot(profile="epyc-9124", kernel="v6.12", bios=GENOA_ES)
    assert "kvm_amd: SEV-SNP enabled (ASIDs 1 - 99)" in on["dmesg"] and on["sysfs"]["sev_snp"] == "Y"
    assert not any("SEV-SNP" in line for line in off["dmesg"]) and off["sysfs"]["sev_snp"] == "N"
    assert on["supported_cpuid_8000001f"]["eax"] & 0x10 and not off["supported_cpuid_8000001f"]["eax"] & 0x10
    assert "ccp 0000:22:00.1: SEV-SNP API:1.55 build:24" in on["boot_dmesg"]
    assert on["vm_types"] == 0b11101


def test_an_snp_vm_asking_for_ghcb_version_1_is_refused_from_6_18() -> None:
    """00f0b959ffb0: version 1 is EINVAL for SNP from 6.18; 0 (the default, 2) and 2 pass."""
    steps: list[dict[str, Any]] = []
    for n, version in enumerate((1, 0, 2)):
        steps += [
            {"op": "vm_create", "vm": f"g{n}", "type": 4},
            {"op": "sev_init2", "vm": f"g{n}", "ghcb_version": version},
        ]
    for kernel, first in (("v6.17", None), ("v6.18", "EINVAL"), ("v7.1", "EINVAL")):
        report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **SNP_HOST}, "steps": steps}))
        assert errnos(report)[1::2] == [first, None, None], kernel


def test_an_snp_launch_update_from_an_unaligned_source_is_refused_from_7_0() -> None:
    """dcbcc2323c80: the source must sit on a page boundary (ZERO pages have none)."""
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g", "type": 4},
        {"op": "sev_init2", "vm": "g"},
        {"op": "snp_launch_start", "vm": "g"},
        {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"pattern": "ab", "len": 12288}},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "uaddr": 0x7F0000000010, "len": 4096},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x101, "uaddr": 0x7F0000001000, "len": 4096},
        {
            "op": "snp_launch_update",
            "vm": "g",
            "gfn_start": 0x102,
            "uaddr": 0x7F0000000010,
            "len": 4096,
            "type": 3,
        },
    ]
    for kernel, unaligned in (("v6.19", None), ("v7.0", "EINVAL"), ("v7.1", "EINVAL")):
        report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **SNP_HOST}, "steps": steps}))
        assert errnos(report)[4:] == [unaligned, None, None], kernel


def test_an_snp_launch_update_of_no_bytes_is_refused_from_6_18() -> None:
    """5b66e335ead6: len 0 populated nothing and returned 0 before 6.18; from 6.18 it is -EINVAL.
    A page-sized update after it still succeeds either way."""
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g", "type": 4},
        {"op": "sev_init2", "vm": "g"},
        {"op": "snp_launch_start", "vm": "g"},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "len": 0, "type": 3},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "len": 4096, "type": 3},
    ]
    for kernel, empty in (("v6.17", None), ("v6.18", "EINVAL"), ("v7.1", "EINVAL")):
        report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **SNP_HOST}, "steps": steps}))
        assert errnos(report)[3:] == [empty, None], kernel
        assert not [e for e in report["steps"][3]["events"] if e["kind"] == "fw"], kernel


def test_an_snp_guest_launches_and_runs_only_after_finish() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g", "type": 4},
        {"op": "sev_init2", "vm": "g"},
        {"op": "vcpu_create", "vm": "g"},
        {"op": "launch_start", "vm": "g"},
        {"op": "snp_launch_start", "vm": "g", "policy": 0x10000},
        {"op": "snp_launch_start", "vm": "g"},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "data": {"zero": 8192}},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x101, "data": {"zero": 4096}},
        {"op": "vcpu_run", "vm": "g", "vcpu": 0, "cpu": 0},
        {"op": "snp_launch_finish", "vm": "g"},
        {"op": "vcpu_run", "vm": "g", "vcpu": 0, "cpu": 0},
        {"op": "vm_destroy", "vm": "g"},
    ]
    report = runner.run(schema.parse({"host": {"kernel": "v6.12", "cpus": 4, **SNP_HOST}, "steps": steps}))
    steps_out = report["steps"]
    assert errnos(report) == [None, None, None, "EPERM", "EINVAL", None, None, "EIO", None, None, None, None]
    assert steps_out[1]["result"]["asid"] < 100  # an SEV-ES ASID
    assert [r["result"]["entered"] for r in (steps_out[8], steps_out[10])] == [False, True]
    destroy = [e.get("cmd") for e in steps_out[11]["events"] if e["kind"] == "fw"]
    assert destroy == ["SNP_DECOMMISSION"]
    assert report["invariants"]["violations"] == []


def _step_dmesg(step: dict[str, Any]) -> list[str]:
    return [e["text"] for e in step["events"] if e["kind"] == "dmesg"]


def _snp_started(*starts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "vm_create", "vm": "g", "type": 4},
        {"op": "sev_init2", "vm": "g"},
        *({"op": "snp_launch_start", "vm": "g", **start} for start in starts),
    ]


def test_a_refused_snp_launch_start_keeps_its_context_in_6_11_only() -> None:
    """6.11 checks flags and policy after snp_context_create, and nothing frees the context, so a
    good start after a bad one fails the one-context check; 6.12 checks them first."""
    steps = _snp_started({"flags": 1}, {})
    for kernel, second in (("v6.11", "EINVAL"), ("v6.12", None), ("v7.1", None)):
        report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **SNP_HOST}, "steps": steps}))
        first_fw = [e.get("cmd") for e in report["steps"][2]["events"] if e["kind"] == "fw"]
        assert errnos(report)[2:] == ["EINVAL", second], kernel
        assert first_fw == (["SNP_GCTX_CREATE"] if kernel == "v6.11" else []), kernel


def test_a_refused_snp_start_context_is_decommissioned_with_the_vm_in_6_11() -> None:
    steps = [*_snp_started({"policy": 0x10000}), {"op": "vm_destroy", "vm": "g"}]
    report = runner.run(schema.parse({"host": {"kernel": "v6.11", "cpus": 4, **SNP_HOST}, "steps": steps}))
    destroy = [e.get("cmd") for e in report["steps"][3]["events"] if e["kind"] == "fw"]
    assert destroy == ["SNP_DECOMMISSION"]
    assert report["invariants"]["violations"] == []


def test_an_snp_launch_start_through_a_file_other_than_dev_sev_is_enotty_with_a_warning() -> None:
    """__sev_issue_cmd's -EBADF reaches snp_context_create, which logs it and returns NULL."""
    report = runner.run(
        schema.parse(
            {"host": {"kernel": "v6.12", "cpus": 4, **SNP_HOST}, "steps": _snp_started({"sev_fd": 7})}
        )
    )
    assert errnos(report)[2] == "ENOTTY"
    assert "kvm_amd: Failed to create SEV-SNP context, rc -9 fw_error 0" in _step_dmesg(report["steps"][2])


def test_an_snp_launch_update_through_a_file_other_than_dev_sev_is_eio_with_no_firmware_error() -> None:
    """sev_gmem_post_populate issues SNP_LAUNCH_UPDATE through the caller's fd: -EBADF on the
    first page, so nothing is populated and kvm_gmem_populate's failure is -EIO, error 0."""
    steps = [
        *_snp_started({}),
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "len": 4096, "type": 3, "sev_fd": 7},
        {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "len": 4096, "type": 3},
    ]
    report = runner.run(schema.parse({"host": {"kernel": "v6.12", "cpus": 4, **SNP_HOST}, "steps": steps}))
    assert errnos(report)[3:] == ["EIO", None]
    assert report["steps"][3]["fw_error"] is None
    assert not [e for e in report["steps"][3]["events"] if e["kind"] == "fw"]


def test_a_failed_snp_decommission_warns_once_and_leaks_the_asid() -> None:
    steps = [
        *_snp_started({}),
        {"op": "fw_fault", "cmd": "SNP_DECOMMISSION"},
        {"op": "vm_destroy", "vm": "g"},
        *_snp_started({}),
        {"op": "fw_fault", "cmd": "SNP_DECOMMISSION"},
        {"op": "vm_destroy", "vm": "g"},
    ]
    report = runner.run(schema.parse({"host": {"kernel": "v6.12", "cpus": 4, **SNP_HOST}, "steps": steps}))
    first, second = _step_dmesg(report["steps"][4]), _step_dmesg(report["steps"][9])
    assert first[:2] == [
        "Failed to release guest context, ret -5",
        "WARNING: at arch/x86/kvm/svm/sev.c snp_decommission_context [kvm_amd]",
    ]
    assert not any("guest context" in line or "WARNING" in line for line in second)
    assert report["steps"][6]["result"]["asid"] != report["steps"][1]["result"]["asid"]


def test_an_snp_page_that_needs_a_source_and_has_none_warns_and_populates_nothing() -> None:
    """snp_launch_update passes a NULL source for uaddr 0: sev_gmem_post_populate's
    WARN_ON_ONCE and -EINVAL on the first page, so kvm_gmem_populate fails (-EIO, error 0)."""
    steps = [*_snp_started({}), {"op": "snp_launch_update", "vm": "g", "gfn_start": 0x100, "len": 4096}]
    report = runner.run(schema.parse({"host": {"kernel": "v6.12", "cpus": 4, **SNP_HOST}, "steps": steps}))
    assert errnos(report)[3] == "EIO" and report["steps"][3]["fw_error"] is None
    assert _step_dmesg(report["steps"][3]) == [
        "WARNING: at arch/x86/kvm/svm/sev.c sev_gmem_post_populate [kvm_amd]"
    ]


def _snp_start_errno(kernel: str, policy: int, bios: list[str] | None = None) -> tuple[str | None, list[str]]:
    host = {"kernel": kernel, "cpus": 4, **SNP_HOST}
    if bios:
        host["bios"] = [*SNP_HOST["bios"], *bios]
    report = runner.run(schema.parse({"host": host, "steps": _snp_started({"policy": policy})}))
    step = report["steps"][2]
    return step["errno"], [f"{e['cmd']}:{e['status']}" for e in step["events"] if e["kind"] == "fw"]


def test_a_policy_without_smt_is_left_to_the_firmware_from_6_17() -> None:
    """9f4701e05fae: KVM stops refusing SMT=0; the firmware fails SNP_LAUNCH_START with
    POLICY_FAILURE while SMT is on in the BIOS and takes it with SMT off."""
    no_smt = 0x20000
    assert _snp_start_errno("v6.16", no_smt) == ("EINVAL", [])
    errno, fw = _snp_start_errno("v6.17", no_smt)
    assert errno == "EIO"
    assert fw[:2] == ["SNP_GCTX_CREATE:SUCCESS", "SNP_LAUNCH_START:POLICY_FAILURE"]
    assert fw[-1] == "SNP_DECOMMISSION:SUCCESS"
    assert _snp_start_errno("v6.17", no_smt, ["smt=off"])[0] is None
    assert _snp_start_errno("v6.16", no_smt, ["smt=off"])[0] == "EINVAL"


def test_a_single_socket_policy_is_left_to_the_firmware_from_6_17() -> None:
    """24be2b7956a5: KVM stops refusing SINGLE_SOCKET; the firmware's SNP_ACTIVATE fails it
    (POLICY_FAILURE) on a two-socket board, and KVM decommissions the context."""
    single_socket = 0x130000
    assert _snp_start_errno("v6.16", single_socket)[0] == "EINVAL"
    assert _snp_start_errno("v6.17", single_socket)[0] is None
    host = {"kernel": "v6.17", "cpus": 4, "sockets": 2, **SNP_HOST}
    report = runner.run(schema.parse({"host": host, "steps": _snp_started({"policy": single_socket})}))
    step = report["steps"][2]
    assert (step["errno"], step["fw_error"]["name"]) == ("EIO", "POLICY_FAILURE")
    assert [f"{e['cmd']}:{e['status']}" for e in step["events"] if e["kind"] == "fw"] == [
        "SNP_GCTX_CREATE:SUCCESS",
        "SNP_LAUNCH_START:SUCCESS",
        "SNP_ACTIVATE:POLICY_FAILURE",
        "SNP_DECOMMISSION:SUCCESS",
    ]


def test_a_second_socket_doubles_the_cpus_only_on_parts_made_for_two() -> None:
    assert boot(profile="epyc-9124", kernel="v6.12", sockets=2)["cpus"] == 64
    with pytest.raises(InputError, match=r"host\.sockets: 2 is outside 1\.\.1 for epyc-4124p"):
        schema.parse({"host": {"profile": "epyc-4124p", "sockets": 2}, "steps": []})


def test_smt_off_in_the_bios_leaves_one_thread_per_core() -> None:
    on = boot(profile="epyc-9124", kernel="v6.12")
    off = boot(profile="epyc-9124", kernel="v6.12", bios=["smt=off"])
    assert (on["cpus"], off["cpus"]) == (32, 16)
    assert off["bios"]["smt"] == "off"


def _init2(kernel: str, vm_type: int, features: int, profile_host: dict[str, Any]) -> str | None:
    steps = [
        {"op": "vm_create", "vm": "g", "type": vm_type},
        {"op": "sev_init2", "vm": "g", "vmsa_features": features},
    ]
    report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **profile_host}, "steps": steps}))
    return errnos(report)[1]


def test_secure_tsc_is_offered_to_snp_guests_from_6_18_on_cpus_that_have_it() -> None:
    """a311fce2b694: VMSA feature bit 9 with SNP enabled and CPUID 0x8000001F EAX bit 8 (Genoa
    has it, Milan does not), for KVM_X86_SNP_VM only."""
    secure_tsc = 0x200
    assert _init2("v6.17", 4, secure_tsc, SNP_HOST) == "EINVAL"
    assert _init2("v6.18", 4, secure_tsc, SNP_HOST) is None
    assert _init2("v6.18", 3, secure_tsc, SNP_HOST) == "EINVAL"
    milan = {"profile": "epyc-7763", "bios": ["sev_es_asid_space_limit=100", "snp=on"]}
    assert _init2("v6.18", 4, secure_tsc, milan) == "EINVAL"
    assert _init2("v6.18", 4, 0, milan) is None


def _attr(
    kernel: str, attr: int, host: dict[str, Any] | None = None, has: bool = False
) -> tuple[str | None, Any]:
    step = {"op": "sev_device_attr", "attr": attr, "has": has}
    report = runner.run(
        schema.parse({"host": {"kernel": kernel, "cpus": 4, **(host or SNP_HOST)}, "steps": [step]})
    )
    out = report["steps"][0]
    return out["errno"], (out["result"] or {}).get("value")


def test_sev_device_attributes_follow_the_release_that_added_each() -> None:
    assert _attr("v5.16", 0) == ("EINVAL", None)
    assert _attr("v5.17", 0) == ("ENXIO", None)
    assert _attr("v6.9", 0) == ("ENXIO", None)
    assert _attr("v6.10", 0) == (None, 0x20)  # DebugSwap: Genoa has it and NoNestedDataBp
    assert _attr("v6.10", 1) == ("ENXIO", None)
    assert _attr("v6.18", 0) == (None, 0x220)  # and Secure TSC, with SNP on
    assert _attr("v6.19", 1) == (None, 0x1BFFFF)
    assert _attr("v6.19", 2) == ("ENXIO", None)
    assert _attr("v7.0", 2) == (None, 1)
    assert _attr("v7.0", 3) == ("ENXIO", None)
    assert _attr("v7.0", 0, has=True) == (None, None)


def test_sev_device_attributes_read_zero_without_snp_and_enxio_without_kvm_amd_sev() -> None:
    no_snp = {"profile": "epyc-9124", "bios": ["sev_es_asid_space_limit=100"]}
    assert _attr("v7.0", 1, no_snp) == (None, 0)
    assert _attr("v7.0", 2, no_snp) == (None, 0)
    assert _attr("v7.0", 0, {**no_snp, "config": ["CONFIG_KVM_AMD_SEV=n"]}) == ("ENXIO", None)


def test_snp_certificate_requests_are_enabled_only_before_vcpus_and_only_on_snp_guests() -> None:
    def enable(kernel: str, prelude: list[dict[str, Any]]) -> str | None:
        steps = [*prelude, {"op": "snp_enable_req_certs", "vm": "g"}]
        report = runner.run(schema.parse({"host": {"kernel": kernel, "cpus": 4, **SNP_HOST}, "steps": steps}))
        return errnos(report)[-1]

    snp = _snp_started()
    assert enable("v6.19", snp) == "EINVAL"  # no such command yet
    assert enable("v7.0", snp) is None
    assert enable("v7.0", [*snp, {"op": "vcpu_create", "vm": "g"}]) == "EINVAL"
    sev_es: list[dict[str, Any]] = [{"op": "vm_create", "vm": "g", "type": 3}, {"op": "sev_init2", "vm": "g"}]
    assert enable("v7.0", sev_es) == "EINVAL"


# -- 6.16 and later ------------------------------------------------------------------------------


def test_the_psp_is_initialised_by_kvm_amd_from_6_16() -> None:
    old, new = (boot(unload=True, profile="epyc-9654", kernel=k) for k in ("v6.15", "v6.16"))
    assert [c["cmd"] for c in old["firmware"]["boot_commands"]][-2:] == ["INIT", "DF_FLUSH"]
    assert "INIT" not in [c["cmd"] for c in new["firmware"]["boot_commands"]]
    assert [e["cmd"] for e in new["load_events"] if e.get("kind") == "fw"] == ["INIT", "DF_FLUSH"]
    assert [c["cmd"] for c in new["unload"]["firmware"]] == ["SHUTDOWN"]
    assert new["dmesg"][4] == "ccp 0000:22:00.1: SEV API:1.55 build:24"


def test_a_failed_psp_init_at_load_leaks_the_bitmaps_from_6_16() -> None:
    path = "examples/kernels/psp-init-fails-at-load.yaml"
    for kernel, leaked in (("v6.15", []), ("v6.16", ["teardown_clean"]), ("v7.1", ["teardown_clean"])):
        given = schema.HostOverride(kernel=kernel)
        report = runner.run(schema.override(schema.load(path), given))
        assert [v["invariant"] for v in report["invariants"]["violations"]] == leaked, kernel


def test_a_reload_after_a_leaking_unload_allocates_the_bitmaps_afresh() -> None:
    """The leaked bitmaps stay allocated; the next load allocates its own and unloads cleanly."""
    steps: list[dict[str, Any]] = [
        {"op": "module_unload"},
        {"op": "cpu_offline", "cpu": 1},
        {"op": "module_load"},
        {"op": "module_unload"},
        {"op": "cpu_online", "cpu": 1},
        {"op": "module_load"},
        {"op": "module_unload"},
    ]
    host = {"profile": "lab", "kernel": "v6.16", "bios": ["sev_asid_count=2", "sev_es_asid_space_limit=2"]}
    report = runner.run(schema.parse({"host": host, "steps": steps}))
    assert [s["result"]["leaked_bytes"] for s in report["steps"] if s["op"] == "module_unload"] == [0, 16, 0]
    assert [v["step"] for v in report["invariants"]["violations"]] == [3]


def test_vm_destroy_stops_flushing_caches_in_6_17() -> None:
    steps = [*launched("a"), {"op": "vm_destroy", "vm": "a"}]
    kinds = {k: [e["kind"] for e in run(k, steps)["steps"][-1]["events"]] for k in ("v6.16", "v6.17")}
    assert "wbinvd" in kinds["v6.16"] and "wbinvd" not in kinds["v6.17"]


# -- 6.18: split SEV-ES / SNP bounds and ciphertext_hiding_asids ---------------------------------


def test_a_disabled_sev_es_logs_zero_bounds_from_6_18() -> None:
    """d7fc7d9833f6: the SEV-ES and SNP bounds are set only once setup reaches SEV-ES."""
    logs = {
        k: boot(profile="epyc-9124", kernel=k, bios=[*GENOA_ES, "snp=on"], params=["sev_es=0"])["dmesg"]
        for k in ("v6.17", "v6.18")
    }
    assert "kvm_amd: SEV-ES disabled (ASIDs 1 - 99)" in logs["v6.17"]
    assert "kvm_amd: SEV-ES disabled (ASIDs 0 - 0)" in logs["v6.18"]
    assert "kvm_amd: SEV-SNP disabled (ASIDs 0 - 0)" in logs["v6.18"]


def test_ciphertext_hiding_asids_is_an_unsigned_parameter_from_6_18() -> None:
    old = boot(profile="epyc-9124", kernel="v6.17", params=["ciphertext_hiding_asids=8"])
    assert "kvm_amd: unknown parameter 'ciphertext_hiding_asids' ignored" in old["dmesg"]
    bad = boot(profile="epyc-9124", kernel="v6.18", params=["ciphertext_hiding_asids=-1"])
    assert not bad["loaded"] and bad["load_error"] == "EINVAL"
    assert "kvm_amd: `-1' invalid for parameter `ciphertext_hiding_asids'" in bad["dmesg"]
    assert boot(profile="epyc-9124", kernel="v6.18")["sysfs"]["ciphertext_hiding_asids"] == "0"


def test_ciphertext_hiding_asids_splits_the_sev_es_range_even_with_snp_off() -> None:
    """With SNP not up, the parameter keeps the user's value and still partitions the range."""
    report = boot(profile="epyc-9124", kernel="v6.18", bios=GENOA_ES, params=["ciphertext_hiding_asids=40"])
    assert report["sysfs"]["sev_snp"] == "N" and report["sysfs"]["ciphertext_hiding_asids"] == "40"
    start = report["dmesg"].index("kvm_amd: SEV-SNP ciphertext hiding enabled")
    assert report["dmesg"][start + 1 : start + 3] == [
        "kvm_amd: SEV enabled (ASIDs 100 - 1006)",
        "kvm_amd: SEV-ES enabled (ASIDs 41 - 99)",
    ]
    assert report["sev_es_asid_range"] == [41, 99]
    assert report["misc_capacity"]["sev_es"] == 99  # the capacity is not reduced
    steps = [*launched("a", es=True)]
    first = run("v6.18", steps, profile="epyc-9124", params=["ciphertext_hiding_asids=40"])
    assert first["steps"][1]["result"]["asid"] == 41


def test_ciphertext_hiding_example_loses_sev_es_asids_only_from_6_18() -> None:
    """Q1's example: the first SEV-ES guest gets ASID 41 on 6.18 and 7.1, ASID 1 on 6.17."""
    path = "examples/kernels/ciphertext-hiding-without-snp.yaml"
    for kernel, asid in (("v6.17", 1), ("v6.18", 41), ("v7.1", 41)):
        report = runner.run(schema.override(schema.load(path), schema.HostOverride(kernel=kernel)))
        assert report["steps"][1]["result"]["asid"] == asid, kernel
        assert report["steps"][2]["result"]["handle"] == 1, kernel


def test_ciphertext_hiding_asids_past_the_range_leaves_sev_es_unusable() -> None:
    report = boot(profile="epyc-9124", kernel="v6.18", bios=GENOA_ES, params=["ciphertext_hiding_asids=99"])
    assert "kvm_amd: SEV-ES unusable (ASIDs 100 - 99)" in report["dmesg"]
    assert report["sev_es_asid_range"] is None
    out = run("v6.18", launched("a", es=True), profile="epyc-9124", params=["ciphertext_hiding_asids=99"])
    assert errnos(out)[1] == "ENOTTY"


def test_ciphertext_hiding_asids_reads_zero_once_snp_is_up_without_firmware_support() -> None:
    """SNP up: the parameter takes ``init_args.max_snp_asid``, 0 on firmware without the feature."""
    report = boot(
        profile="epyc-9124", kernel="v6.18", bios=[*GENOA_ES, "snp=on"], params=["ciphertext_hiding_asids=40"]
    )
    assert report["sysfs"]["sev_snp"] == "Y" and report["sysfs"]["ciphertext_hiding_asids"] == "0"
    assert not any("ciphertext" in line for line in report["dmesg"])
    assert report["sev_es_asid_range"] == report["snp_asid_range"] == [1, 99]


# -- kstrtobool's letters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "word", "sev"),
    [
        ("v5.18", "true", None),
        ("v5.19", "true", "Y"),
        ("v5.19", "false", "N"),
        ("v6.15", "disabled", None),
        ("v6.16", "disabled", "N"),
        ("v6.16", "enabled", "Y"),
    ],
)
def test_bool_parameters_take_the_words_of_the_kernels_kstrtobool(
    kernel: str, word: str, sev: str | None
) -> None:
    report = boot(profile="epyc-9654", kernel=kernel, params=[f"sev={word}"])
    if sev is None:
        assert report["load_error"] == "EINVAL"
        assert f"kvm_amd: `{word}' invalid for parameter `sev'" in report["dmesg"]
    else:
        assert report["loaded"] and report["sysfs"]["sev"] == sev


# -- SNP sources of a move or a mirror --------------------------------------------------------------


def snp_guest(name: str) -> list[dict[str, Any]]:
    return [{"op": "vm_create", "vm": name, "type": 4}, {"op": "sev_init2", "vm": name}]


def test_an_snp_source_is_refused_only_with_the_stable_fix() -> None:
    steps: list[dict[str, Any]] = [
        *snp_guest("src"),
        {"op": "vm_create", "vm": "m"},
        {"op": "copy_enc_context_from", "vm": "m", "source": "src"},
        {"op": "vm_create", "vm": "dst", "type": 4},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
    ]
    plain = runner.run(schema.parse({"host": {"kernel": "v7.1", "cpus": 4, **SNP_HOST}, "steps": steps}))
    fixed_host = {"kernel": "v7.1", "cpus": 4, "apply": ["snp-move-mirror-rejected"], **SNP_HOST}
    fixed = runner.run(schema.parse({"host": fixed_host, "steps": steps}))
    assert errnos(plain)[-3:] == [None, None, None]
    assert errnos(fixed)[-3:] == ["EINVAL", None, "EINVAL"]


def test_a_move_needs_vms_of_one_type_from_6_10() -> None:
    steps: list[dict[str, Any]] = [
        *launched("src"),
        {"op": "vm_create", "vm": "dst", "type": 2},
        {"op": "move_enc_context_from", "vm": "dst", "source": "src"},
    ]
    assert errnos(run("v6.12", steps))[-1] == "EINVAL"
    assert errnos(run("v6.9", [*steps[:3], {"op": "vm_create", "vm": "dst"}, steps[-1]]))[-1] is None


# -- 6.17: cache write-back at UNREG_REGION ------------------------------------------------------


def _unreg_after_runs(cpus: list[int]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g"},
        {"op": "sev_init", "vm": "g"},
        {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"zero": 8192}},
        {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 8192},
        {"op": "vcpu_create", "vm": "g"},
        {"op": "launch_start", "vm": "g"},
    ]
    steps += [{"op": "vcpu_run", "vm": "g", "vcpu": 0, "cpu": cpu} for cpu in cpus]
    return [*steps, {"op": "unreg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 8192}]


def _writebacks(report: dict[str, Any]) -> list[dict[str, Any]]:
    unreg = report["steps"][-1]
    assert [e for e in errnos(report) if e is not None] == []
    return [e for e in unreg["events"] if e["kind"] in ("wbinvd", "wbnoinvd")]


def test_unreg_region_writes_back_with_wbnoinvd_only_where_the_vm_ran_from_6_17() -> None:
    """a77896eea33d and 6f38f8c57464 (6.17): WBNOINVD on the CPUs in have_run_cpus, which
    keeps every CPU a vCPU entered on (here 1 and 3), instead of WBINVD on every online CPU."""
    steps = _unreg_after_runs([1, 3, 1])
    assert _writebacks(run("v6.16", steps)) == [{"kind": "wbinvd", "cpus": [0, 1, 2, 3]}]
    assert _writebacks(run("v6.17", steps)) == [{"kind": "wbnoinvd", "cpus": [1, 3]}]
    assert _writebacks(run("v6.17", steps, revert=["writeback-have-run-cpus"])) == [
        {"kind": "wbnoinvd", "cpus": [0, 1, 2, 3]}
    ]


def test_unreg_region_on_zen_1_falls_back_to_wbinvd_and_a_vm_never_run_flushes_nothing() -> None:
    """``wbnoinvd()`` is WBINVD on a CPU without X86_FEATURE_WBNOINVD (Naples); a VM no vCPU
    entered has an empty have_run_cpus, so no CPU is interrupted."""
    naples = run("v6.17", _unreg_after_runs([2]), profile="epyc-7551p", bios=[])
    assert _writebacks(naples) == [{"kind": "wbinvd", "cpus": [2]}]
    assert _writebacks(run("v6.17", _unreg_after_runs([]))) == []


def test_unreg_region_write_back_reaches_only_online_cpus_that_ran_the_vm() -> None:
    steps = _unreg_after_runs([1, 2])
    steps.insert(-1, {"op": "cpu_offline", "cpu": 2})
    assert _writebacks(run("v6.17", steps)) == [{"kind": "wbnoinvd", "cpus": [1]}]


# -- 7.1: a launched vCPU's VMSA is not synced again ----------------------------------------------


def _snp_finish_twice() -> list[dict[str, Any]]:
    return [
        {"op": "vm_create", "vm": "g", "type": 4},
        {"op": "sev_init2", "vm": "g"},
        {"op": "vcpu_create", "vm": "g"},
        {"op": "snp_launch_start", "vm": "g"},
        {"op": "snp_launch_finish", "vm": "g"},
        {"op": "snp_launch_finish", "vm": "g"},
    ]


def test_a_second_snp_launch_finish_panics_the_host_until_7_1_refuses_it() -> None:
    """9b9f7962e3e8: syncing an encrypted VMSA wrote guest-owned memory, an RMP violation."""
    before = runner.run(
        schema.parse({"host": {"kernel": "v7.0", "cpus": 4, **SNP_HOST}, "steps": _snp_finish_twice()})
    )
    assert errnos(before)[:5] == [None] * 5
    assert before["steps"][5]["result"]["oops"].startswith("BUG: unable to handle page fault for address: ")
    after = runner.run(
        schema.parse({"host": {"kernel": "v7.1", "cpus": 4, **SNP_HOST}, "steps": _snp_finish_twice()})
    )
    assert errnos(after) == [None, None, None, None, None, "EINVAL"]
    assert not [e for e in after["steps"][5]["events"] if e["kind"] == "fw"], "refused before the firmware"


def test_launch_update_vmsa_twice_encrypts_again_until_7_1_refuses_it() -> None:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g"},
        {"op": "sev_es_init", "vm": "g"},
        {"op": "vcpu_create", "vm": "g"},
        {"op": "launch_start", "vm": "g", "policy": 4},
        {"op": "launch_update_vmsa", "vm": "g"},
        {"op": "launch_update_vmsa", "vm": "g"},
    ]
    again = run("v7.0", steps)
    assert errnos(again) == [None] * 6
    assert [e["cmd"] for e in again["steps"][5]["events"] if e["kind"] == "fw"] == ["LAUNCH_UPDATE_VMSA"]
    refused = run("v7.1", steps)
    assert errnos(refused) == [None] * 5 + ["EINVAL"]
    assert refused["steps"][5]["events"] == []
