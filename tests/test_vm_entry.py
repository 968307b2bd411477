"""VM entry and the TLB: every source of a flush request the model knows, and how one is lost.

The sources are ``kvm_mmu_load`` on a vCPU's first KVM_RUN, ``pre_sev_run``'s per-CPU VMCB
tracking, and ``new_asid``'s wrap on a plain VM entry; a failing VMRUN loses the request because
``svm_vcpu_run`` resets ``tlb_ctl`` after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvmsev.host import ops
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.scenario import runner, schema

EXAMPLES = Path(__file__).parent.parent / "examples"
FIXES = ["off-by-one-fix", "last-vmentry-cpu-minus-one"]


def example(name: str, kernel: str | None = None, apply: list[str] | None = None) -> dict[str, Any]:
    scenario = schema.load(str(EXAMPLES / name))
    return runner.run(schema.override(scenario, schema.HostOverride(kernel=kernel, apply=tuple(apply or []))))


def run(steps: list[dict[str, Any]], **host: Any) -> dict[str, Any]:
    host.setdefault("profile", "lab")
    return runner.run(schema.parse({"host": host, "steps": steps}))


def broken(report: dict[str, Any]) -> set[str]:
    return {v["invariant"] for v in report["invariants"]["violations"]}


def result(report: dict[str, Any], index: int) -> dict[str, Any]:
    out: dict[str, Any] = report["steps"][index]["result"]
    return out


LAUNCHED = [
    {"op": "vm_create", "vm": "a"},
    {"op": "sev_init", "vm": "a"},
    {"op": "launch_start", "vm": "a"},
    {"op": "launch_measure", "vm": "a"},
    {"op": "launch_finish", "vm": "a"},
    {"op": "vcpu_create", "vm": "a"},
]


def test_first_kvm_run_flushes_the_asid_even_when_pre_sev_run_does_not() -> None:
    """5.13 as released: the recycled ASID's new vCPU gets the old VMCB page back and its first
    entry is on CPU 0 with last_vmentry_cpu 0, so pre_sev_run asks for nothing -- but the first
    KVM_RUN loads the MMU root, and kvm_mmu_load flushes the current ASID."""
    r = example("first-run-flush.yaml")
    assert result(r, 16)["vmcb"] == result(r, 5)["vmcb"], "the VMCB page is reused"
    entry = result(r, 17)
    assert entry["tlb_flush"] is True and entry["tlb_flush_by"] == ["kvm_mmu_load"]
    assert broken(r) == set()


def test_the_5_14_fixes_add_pre_sev_runs_request_to_the_first_entry() -> None:
    for fix in FIXES:
        r = example("first-run-flush.yaml", apply=[fix])
        assert result(r, 17)["tlb_flush_by"] == ["kvm_mmu_load", "pre_sev_run"], fix
        assert broken(r) == set(), fix


def test_a_second_run_on_the_same_cpu_needs_no_flush() -> None:
    r = run([*LAUNCHED, *[{"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 1}] * 2])
    assert result(r, 6)["tlb_flush_by"] == ["kvm_mmu_load", "pre_sev_run"]
    assert result(r, 7) == {"entered": True, "exit_reason": None, "tlb_flush": False}


def test_moving_to_another_cpu_flushes_through_pre_sev_run_only() -> None:
    r = run(
        [
            *LAUNCHED,
            {"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 0},
            {"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 1},
        ]
    )
    assert result(r, 7)["tlb_flush_by"] == ["pre_sev_run"]


def test_a_failed_vmrun_loses_its_flush_request() -> None:
    """KVM_RUN before LAUNCH_FINISH: VMRUN fails on the pending ASID; tlb_ctl is reset after it,
    the root stays loaded and sev_vmcbs keeps the VMCB, so the next entry asks for nothing."""
    r = example("early-run-lost-flush.yaml")
    failed = r["steps"][15]
    assert failed["result"]["entered"] is False and failed["result"]["tlb_flush"] is False
    assert failed["result"]["tlb_flush_by"] == ["kvm_mmu_load"]
    lost = [e for e in failed["events"] if e["kind"] == "tlb_flush"]
    assert lost == [{"kind": "tlb_flush", "cpu": 0, "asid": 3, "by": ["kvm_mmu_load"], "performed": False}]
    assert result(r, 17)["tlb_flush"] is False and result(r, 17)["stale_tlb_owner"] == 1
    assert broken(r) == {"tlb_isolation"}


def test_the_5_14_fixes_do_not_close_the_early_run_path() -> None:
    r = example("early-run-lost-flush.yaml", apply=FIXES)
    assert broken(r) == {"tlb_isolation"}


def test_a_plain_vm_entry_right_after_enable_flushes_every_asid() -> None:
    """svm_hardware_enable leaves next_asid past max_asid, so the CPU's first non-SEV entry
    wraps (new_asid) and sets TLB_CONTROL_FLUSH_ALL_ASID: SEV guests' entries go too."""
    r = run(
        [
            *LAUNCHED,
            {"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 0},
            {"op": "vm_create", "vm": "p"},
            {"op": "vcpu_create", "vm": "p"},
            {"op": "vcpu_run", "vm": "p", "vcpu": 0, "cpu": 0},
            {"op": "vcpu_run", "vm": "p", "vcpu": 0, "cpu": 1},
            {"op": "vcpu_run", "vm": "p", "vcpu": 0, "cpu": 0},
        ]
    )
    first = r["steps"][9]
    assert first["result"]["tlb_flush_by"] == ["kvm_mmu_load", "new_asid"]
    assert {"kind": "tlb_flush", "cpu": 0, "asid": None, "by": ["new_asid"], "performed": True} in first[
        "events"
    ]
    assert result(r, 10)["tlb_flush_by"] == ["new_asid"], "CPU 1's first plain entry wraps too"
    assert "tlb_flush_by" not in result(r, 11), "CPU 0 has wrapped: a new ASID without a flush"


def test_vcpu_run_before_sev_init_skips_the_first_sev_entry_flush_on_5_12() -> None:
    r = example("vcpu-before-init-5.12.yaml")
    plain = result(r, 15)
    assert plain["tlb_flush_by"] == ["kvm_mmu_load"], "no wrap: p's vCPU already used CPU 0"
    assert result(r, 20)["tlb_flush"] is False and "tlb_flush_by" not in result(r, 20)
    assert "tlb_isolation" in broken(r)


def test_created_vcpus_check_or_the_off_by_one_fix_closes_the_vcpu_before_init_path() -> None:
    assert r_errno(example("vcpu-before-init-5.12.yaml", kernel="v5.13"), 16) == "EINVAL"
    fixed = example("vcpu-before-init-5.12.yaml", apply=["off-by-one-fix"])
    assert result(fixed, 20)["tlb_flush_by"] == ["pre_sev_run"]
    assert "tlb_isolation" not in broken(fixed)


def r_errno(report: dict[str, Any], index: int) -> str | None:
    errno: str | None = report["steps"][index]["errno"]
    return errno


def test_a_cpu_going_offline_executes_wbinvd() -> None:
    """native_play_dead: hlt_play_dead / acpi_idle_play_dead run WBINVD on AMD, so the dying
    thread's WBINVD_DONE flag is set; a DEACTIVATE before the offline does not break the unload."""
    host = Host.boot(HostConfig(profile="lab"))
    host.load_kvm_amd()
    host.env.psp.wbinvd_done = 0  # as after a DEACTIVATE of an in-use ASID
    ops.cpu_offline(host, 1)
    assert host.env.psp.wbinvd_done == 0b10
    r = run(
        [
            *LAUNCHED[:5],
            {"op": "vm_destroy", "vm": "a"},
            {"op": "cpu_offline", "cpu": 1},
            {"op": "module_unload"},
        ]
    )
    assert r["steps"][7]["events"][-1] == {
        "kind": "fw",
        "cmd": "DF_FLUSH",
        "ret": 0,
        "status": "SUCCESS",
        "code": 0,
    }
    assert broken(r) == set()


def test_a_deactivate_while_a_cpu_is_offline_makes_the_unload_flush_fail() -> None:
    r = run(
        [
            *LAUNCHED[:5],
            {"op": "cpu_offline", "cpu": 1},
            {"op": "vm_destroy", "vm": "a"},
            {"op": "module_unload"},
        ]
    )
    assert r["steps"][7]["events"][-2]["status"] == "WBINVD_REQUIRED"
    assert broken(r) == {"teardown_clean"}
