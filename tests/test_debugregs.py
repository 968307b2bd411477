"""SEV-ES and SNP launch against the vCPU's debug state (KVM_SET_GUEST_DEBUG, KVM_SET_DEBUGREGS)."""

from __future__ import annotations

from typing import Any

import pytest

from kvmsev.errors import InputError
from kvmsev.scenario import runner, schema

GENOA = {"profile": "epyc-9654", "cpus": 4, "bios": ["sev_es_asid_space_limit=100"]}
SNP = {**GENOA, "profile": "epyc-9124", "bios": ["sev_es_asid_space_limit=100", "snp=on"]}
WARNING = "kvm_amd: KVM_SET_GUEST_DEBUG for SEV-ES guest is not supported"


def run(kernel: str, steps: list[dict[str, Any]], host: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    report = runner.run(schema.parse({"host": {"kernel": kernel, **(host or GENOA)}, "steps": steps}))
    out: list[dict[str, Any]] = report["steps"]
    return out


def errnos(steps: list[dict[str, Any]]) -> list[str | None]:
    return [s["errno"] for s in steps]


def fw_cmds(step: dict[str, Any]) -> list[str]:
    return [e["cmd"] for e in step["events"] if e["kind"] == "fw"]


def dmesg(step: dict[str, Any]) -> list[str]:
    return [e["text"] for e in step["events"] if e["kind"] == "dmesg"]


def es_guest(vm: str = "g", vcpus: int = 1, init: str = "sev_es_init") -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": vm, **({"type": 3} if init == "sev_init2" else {})}
    ]
    made.append({"op": init, "vm": vm})
    made += [{"op": "vcpu_create", "vm": vm} for _ in range(vcpus)]
    return [*made, {"op": "launch_start", "vm": vm, "policy": 4}]


def test_a_dr7_breakpoint_refuses_launch_update_vmsa_before_the_firmware() -> None:
    for dr7, expected in ((0x401, "EINVAL"), (0x700, "EINVAL"), (0x400, None), (0, None)):
        steps = run(
            "v5.13",
            [
                *es_guest(),
                {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 0, "dr7": dr7},
                {"op": "launch_update_vmsa", "vm": "g"},
            ],
        )
        assert errnos(steps)[-2:] == [None, expected], hex(dr7)
        assert fw_cmds(steps[-1]) == ([] if expected else ["LAUNCH_UPDATE_VMSA"]), hex(dr7)


def test_debug_registers_out_of_range_or_with_flags_are_refused_and_kept() -> None:
    steps = run(
        "v5.13",
        [
            *es_guest(),
            {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 0, "dr7": 0x1_0000_0400},
            {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 0, "dr6": 0x1_FFFF_0FF0},
            {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 0, "dr7": 0x401, "flags": 1},
            {"op": "launch_update_vmsa", "vm": "g"},
        ],
    )
    assert errnos(steps)[-4:] == ["EINVAL", "EINVAL", "EINVAL", None]


def test_guest_debug_refuses_launch_and_warns_once_per_boot_from_6_6() -> None:
    def two_guests(kernel: str) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        for vm in ("a", "b"):
            steps += [
                *es_guest(vm),
                {"op": "vcpu_set_guest_debug", "vm": vm, "vcpu": 0, "control": 1},
                {"op": "launch_update_vmsa", "vm": vm},
            ]
        return run(kernel, steps)

    silent, warned = two_guests("v6.5"), two_guests("v6.6")
    for steps in (silent, warned):
        assert [errnos(steps)[i] for i in (5, 11)] == ["EINVAL", "EINVAL"]
        assert fw_cmds(steps[5]) == [] and fw_cmds(steps[11]) == []
    assert dmesg(silent[5]) == []
    assert dmesg(warned[5]) == [WARNING] and dmesg(warned[11]) == []


def test_guest_debug_turned_off_before_launch_lets_the_vcpu_launch() -> None:
    steps = run(
        "v6.12",
        [
            *es_guest(),
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 0, "control": 0x20003, "dr7": 0x402},
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 0, "control": 0x20002, "dr7": 0x402},
            {"op": "launch_update_vmsa", "vm": "g"},
        ],
    )
    assert errnos(steps)[-3:] == [None, None, None]
    assert fw_cmds(steps[-1]) == ["LAUNCH_UPDATE_VMSA"]


def test_earlier_vcpus_stay_encrypted_when_a_later_one_is_refused() -> None:
    """The loop stops at the refused vCPU; the one before it was encrypted, so the debugger can
    no longer be attached to it, while the refused one still takes it."""
    steps = run(
        "v5.13",
        [
            *es_guest(vcpus=2),
            {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 1, "dr7": 0x401},
            {"op": "launch_update_vmsa", "vm": "g"},
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 0},
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 1},
        ],
    )
    assert errnos(steps)[-3:] == ["EINVAL", "EINVAL", None]
    assert fw_cmds(steps[-3]) == ["LAUNCH_UPDATE_VMSA"]


def test_debug_registers_of_an_encrypted_vcpu_are_refused_only_for_protected_vm_types() -> None:
    """517987e3fb19 (6.10): a KVM_X86_SEV_ES_VM refuses them; a legacy KVM_SEV_ES_INIT guest
    still answers 0, and the write never reaches the VMCB, so a second LAUNCH_UPDATE_VMSA (which
    6.12 still allows) is not refused for it."""
    after_launch: list[dict[str, Any]] = [
        {"op": "launch_update_vmsa", "vm": "g"},
        {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 0, "dr7": 0x401},
        {"op": "launch_update_vmsa", "vm": "g"},
    ]
    legacy = run("v6.12", [*es_guest(), *after_launch])
    typed = run("v6.12", [*es_guest(init="sev_init2"), *after_launch])
    assert errnos(legacy)[-3:] == [None, None, None]
    assert errnos(typed)[-3:] == [None, "EINVAL", None]
    assert errnos(run("v6.9", [*es_guest(), *after_launch]))[-3:] == [None, None, None]


def test_an_snp_launch_finish_refuses_a_vcpu_with_a_breakpoint_and_says_nothing() -> None:
    steps = run(
        "v6.12",
        [
            {"op": "vm_create", "vm": "g", "type": 4},
            {"op": "sev_init2", "vm": "g"},
            {"op": "vcpu_create", "vm": "g"},
            {"op": "snp_launch_start", "vm": "g"},
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 0},
            {"op": "snp_launch_finish", "vm": "g"},
            {"op": "vcpu_set_guest_debug", "vm": "g", "vcpu": 0, "control": 0},
            {"op": "snp_launch_finish", "vm": "g"},
        ],
        SNP,
    )
    assert errnos(steps)[-4:] == [None, "EINVAL", None, None]
    assert fw_cmds(steps[-3]) == [] and dmesg(steps[-3]) == []
    assert fw_cmds(steps[-1]) == ["SNP_LAUNCH_UPDATE", "SNP_LAUNCH_FINISH"]


def test_a_vcpu_index_the_vm_does_not_have_is_an_input_error() -> None:
    steps = [*es_guest(), {"op": "vcpu_set_debugregs", "vm": "g", "vcpu": 3}]
    with pytest.raises(InputError, match=r"steps\[4\]\.vcpu.*has 1 vCPUs"):
        runner.run(schema.parse({"host": {"kernel": "v5.13", **GENOA}, "steps": steps}))
