"""Every scenario in examples/ runs, and says what it claims; patch scenarios run on both sides
of their patch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kvmsev.kvm.kernels import RELEASES
from kvmsev.scenario import runner, schema

EXAMPLES = Path(__file__).parent.parent / "examples"
ALL = sorted(EXAMPLES.rglob("*.yaml"))


def run(
    name: str, kernel: str | None = None, apply: tuple[str, ...] = (), revert: tuple[str, ...] = ()
) -> dict[str, Any]:
    given = schema.HostOverride(kernel=kernel, apply=apply, revert=revert)
    scenario = schema.override(schema.load(str(EXAMPLES / name)), given)
    return runner.run(scenario)


def step(report: dict[str, Any], index: int) -> dict[str, Any]:
    s: dict[str, Any] = report["steps"][index]
    assert s["step"] == index
    return s


def fw_cmds(s: dict[str, Any]) -> list[str]:
    return [f"{e['cmd']}:{e['status']}" for e in s["events"] if e["kind"] == "fw"]


def broken(report: dict[str, Any]) -> set[str]:
    return {v["invariant"] for v in report["invariants"]["violations"]}


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_runs(path: Path) -> None:
    report = runner.run(schema.load(str(path)))
    assert len(report["steps"]) == len(schema.load(str(path)).steps)


def test_sev_launch_follows_the_guest_state_machine() -> None:
    r = run("sev-launch.yaml")
    assert step(r, 2)["result"] == {"handle": 1}
    assert fw_cmds(step(r, 2)) == ["LAUNCH_START:SUCCESS", "ACTIVATE:SUCCESS"]
    assert step(r, 3)["result"]["state_name"] == "LUPDATE"
    query = step(r, 5)
    assert (query["errno"], query["fw_error"], query["result"]) == (
        "EIO",
        {"code": 4, "name": "INVALID_LEN"},
        {"len": 48},
    )
    assert len(bytes.fromhex(step(r, 6)["result"]["measurement"])) == 48
    assert step(r, 8)["result"]["state_name"] == "RUNNING"
    assert step(r, 10)["result"]["tlb_flush"] is True and step(r, 11)["result"]["tlb_flush"] is False
    assert fw_cmds(step(r, 12)) == ["DEACTIVATE:SUCCESS", "DECOMMISSION:SUCCESS"]
    assert r["final"]["kvm"]["sev_reclaim_asid_bitmap"] == [3]
    assert r["final"]["firmware"]["asids"] == {"3": "dirty"}
    assert broken(r) == set()


def test_sev_es_guest_cannot_enter_before_its_vmsa_is_protected() -> None:
    r = run("sev-es-launch.yaml")
    assert step(r, 1)["result"] == {"asid": 1}
    assert step(r, 6)["result"]["exit_reason"] == "KVM_EXIT_FAIL_ENTRY"
    assert fw_cmds(step(r, 7)) == ["LAUNCH_UPDATE_VMSA:SUCCESS"] * 2
    assert step(r, 11)["result"]["entered"] is True
    assert broken(r) == set()


def test_exhaustion_recycles_once_and_returns_the_lowest_asid() -> None:
    r = run("asid-exhaustion.yaml")
    assert [step(r, i)["result"] for i in (1, 4)] == [{"asid": 3}, {"asid": 4}]
    recycle = step(r, 9)
    assert recycle["result"] == {"asid": 3}
    assert [e["kind"] for e in recycle["events"]] == ["wbinvd", "fw"]
    assert step(r, 11)["result"] == {"asid": 4} and step(r, 11)["events"] == []
    full = step(r, 13)
    assert full["errno"] == "EBUSY"
    assert not any(e["kind"] in ("wbinvd", "fw") for e in full["events"])
    assert step(r, 14)["result"] == {"asid": 1}, "SEV-ES allocation does not use SEV ASIDs"


def test_offline_cpu_drains_the_pool_until_it_returns() -> None:
    r = run("cpu-offline-drain.yaml")
    failed = step(r, 12)
    assert failed["errno"] == "EBUSY"
    assert fw_cmds(failed) == ["DF_FLUSH:WBINVD_REQUIRED"]
    assert {"kind": "dmesg", "text": "SEV: DF_FLUSH failed, ret=-5, error=0xe"} in failed["events"]
    assert step(r, 14)["result"] == {"asid": 3}


# -- one scenario per behaviour-changing patch, both sides --------------------------------------
def test_patch_01_zero_vmcb_array() -> None:
    """The garbage entry equals the reused VMCB: before 3b1902b87bf1 pre_sev_run asks for no
    flush, after it it does; the first KVM_RUN flushes in kvm_mmu_load either way."""
    before = run("patches/01-zero-vmcb-array.yaml")
    after = run("patches/01-zero-vmcb-array.yaml", apply=("zero-vmcb-array",))
    assert step(before, 16)["result"]["tlb_flush_by"] == ["kvm_mmu_load"]
    assert step(after, 16)["result"]["tlb_flush_by"] == ["kvm_mmu_load", "pre_sev_run"]
    assert "tlb_isolation" not in broken(before) | broken(after)


def test_patch_02_free_bitmap_on_setup_failure() -> None:
    after = run("patches/02-free-bitmap-on-setup-failure.yaml")
    before = run("patches/02-free-bitmap-on-setup-failure.yaml", revert=("free-bitmap-on-setup-failure",))
    assert after["steps"][0]["result"]["leaked_bytes"] == 0
    assert before["steps"][0]["result"]["leaked_bytes"] == 8


def test_patch_03_npt_required() -> None:
    before = run("patches/03-npt-required.yaml")
    after = run("patches/03-npt-required.yaml", apply=("npt-required",))
    assert step(before, 1)["ret"] == 0 and "sev_preconditions" in broken(before)
    assert step(after, 1)["errno"] == "ENOTTY" and "sev_preconditions" not in broken(after)


def test_patch_05_cpuid_mask() -> None:
    before = run("patches/05-cpuid-mask.yaml")
    after = run("patches/05-cpuid-mask.yaml", apply=("cpuid-mask",))
    assert "cpuid_only_supported" in broken(before)
    assert "cpuid_only_supported" not in broken(after)


def test_patch_07_append_enabled() -> None:
    before = run("patches/07-append-enabled.yaml")
    after = run("patches/07-append-enabled.yaml", apply=("append-enabled",))
    assert step(before, 1)["result"] == {"asid": 3}
    assert after["boot"]["load_error"] == "EINVAL"
    assert step(after, 0)["errno"] == "ENOENT"


def test_patch_08_kconfig_gated_params() -> None:
    before = run("patches/08-kconfig-gated-params.yaml")
    after = run("patches/08-kconfig-gated-params.yaml", apply=("kconfig-gated-params",))
    assert "kvm_amd: unknown parameter 'sev' ignored" not in before["boot"]["dmesg"]
    assert "kvm_amd: unknown parameter 'sev' ignored" in after["boot"]["dmesg"]
    assert step(before, 1)["errno"] == step(after, 1)["errno"] == "ENOTTY"


def test_patch_09_enable_by_default() -> None:
    before = run("patches/09-enable-by-default.yaml")
    after = run("patches/09-enable-by-default.yaml", apply=("enable-by-default",))
    assert step(before, 1)["errno"] == "ENOTTY"
    assert step(after, 1)["result"] == {"asid": 3}


def test_patch_13_drop_svm_sev_enabled() -> None:
    before = run("patches/13-drop-svm-sev-enabled.yaml")
    after = run("patches/13-drop-svm-sev-enabled.yaml", apply=("drop-svm-sev-enabled",))
    assert before["steps"][0]["result"]["flushed"] is True
    assert after["steps"][0]["result"]["flushed"] is False


def test_patch_15_skip_unused_flush() -> None:
    before = run("patches/15-skip-unused-flush.yaml")
    after = run("patches/15-skip-unused-flush.yaml", apply=("skip-unused-flush",))
    message = {"kind": "dmesg", "text": "SEV: DF_FLUSH failed, ret=-19, error=0"}
    assert message in step(before, 0)["events"]
    assert step(after, 0)["events"] == []
    assert step(after, 3)["ret"] == -19, "KVM_SEV_INIT fails without SEV firmware (-ENODEV)"
    assert message in step(after, 5)["events"], "the failed INIT's ASID still awaits reclaim"


def test_misc_cgroup_limit() -> None:
    with_cg = run("patches/misc-cgroup.yaml")
    assert step(with_cg, 5)["errno"] == "EBUSY"
    assert {
        "kind": "dmesg",
        "text": "cgroup: charge rejected by the misc controller for sev resource in /tenant",
    } in step(with_cg, 5)["events"]
    assert not any(e["kind"] == "dmesg" for e in step(with_cg, 6)["events"]), "logged once per cgroup"
    without = run("patches/misc-cgroup.yaml", revert=("misc-cgroup",))
    assert step(without, 5)["result"] == {"asid": 4}


def test_created_vcpus_check() -> None:
    """Without 8727906fde6e, ES_INIT after KVM_CREATE_VCPU leaves a vCPU without a VMSA page and
    LAUNCH_UPDATE_VMSA oopses the host copying into it; with it, ES_INIT is -EINVAL."""
    before = run("patches/created-vcpus-check.yaml")
    after = run("patches/created-vcpus-check.yaml", apply=("created-vcpus-check",))
    assert step(before, 2)["ret"] == 0
    assert step(before, 4)["result"] == {
        "oops": "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    }
    assert before["crashed"] and broken(before) >= {"es_vcpus_have_vmsa", "no_oops"}
    assert step(after, 2)["errno"] == "EINVAL"
    assert step(after, 4)["errno"] == "ENOTTY" and after["crashed"] is None


def test_es_active_on_success() -> None:
    before = run("patches/es-active-on-success.yaml")
    after = run("patches/es-active-on-success.yaml", apply=("es-active-on-success",))
    assert step(before, 5)["errno"] == step(after, 5)["errno"] == "EBUSY"
    assert step(before, 6)["errno"] == "EBUSY"
    assert step(after, 6)["result"] == {"asid": 3}


def test_decommission_on_bind_failure() -> None:
    after = run("patches/decommission-on-bind-failure.yaml")
    before = run("patches/decommission-on-bind-failure.yaml", revert=("decommission-on-bind-failure",))
    assert step(after, 2)["fw_error"] == {"code": 0x0D, "name": "INVALID_ASID"}
    assert fw_cmds(step(after, 2))[-1] == "DECOMMISSION:SUCCESS"
    assert after["final"]["firmware"]["guests"] == {}
    assert list(before["final"]["firmware"]["guests"]) == ["1"], "the context leaks in the firmware"


# -- selftest ports -----------------------------------------------------------------------------
def test_selftest_launch_flow_reports_policy_and_states() -> None:
    r = run("selftests/sev-smoke-policies.yaml")
    states = [
        (s["vm"], s["result"]["policy"], s["result"]["state_name"])
        for s in r["steps"]
        if s["op"] == "guest_status"
    ]
    assert states == [
        ("sev-nodbg", 1, "LUPDATE"),
        ("sev-nodbg", 1, "LSECRET"),
        ("sev-nodbg", 1, "RUNNING"),
        ("sev-dbg", 0, "LUPDATE"),
        ("sev-dbg", 0, "RUNNING"),
        ("es", 4, "LUPDATE"),
        ("es", 4, "RUNNING"),
        ("es-nodbg", 5, "RUNNING"),
    ]
    assert all(s["ret"] == 0 for s in r["steps"])
    assert broken(r) == set()


@pytest.mark.parametrize("apply", [(), ("dbg-piece-within-dst-page",)])
def test_selftest_dbg_round_trips(apply: tuple[str, ...]) -> None:
    r = run("selftests/sev-dbg-roundtrip.yaml", apply=apply)
    assert broken(r) == (set() if apply else {"writes_in_bounds"})
    pattern = bytes(range(16)) * 512
    assert step(r, 7)["result"]["data"] == pattern[:32].hex()
    assert step(r, 8)["result"]["data"] == pattern[5:32].hex()
    assert step(r, 9)["result"]["data"] == pattern[0xFF8:0x1008].hex()
    assert step(r, 11)["result"]["data"] == "cafebabecafebabecafebabecafebabe0011"
    assert step(r, 12)["result"]["data"] == pattern[0xFF0:0xFF7].hex(), "bytes around the write are intact"
    assert step(r, 17)["fw_error"] == {"code": 7, "name": "POLICY_FAILURE"}


def outcomes(report: dict[str, Any]) -> Counter[tuple[str, str | None]]:
    return Counter((s["op"], s["errno"]) for s in report["steps"])


@pytest.mark.parametrize("kernel", [f"v{r}" for r in RELEASES[RELEASES.index("6.10") :]])
def test_selftest_init2_accepts_only_typed_vms_and_offered_features(kernel: str) -> None:
    """sev_init2_tests: 3 INIT2s succeed (SEV, SEV-ES, SEV-ES with DebugSwap); 32 + 32 flag bits,
    64 SEV feature bits, 63 unoffered SEV-ES bits and the default VM fail, as do legacy inits."""
    r = run("selftests/sev-init2.yaml", kernel=kernel)
    counts = outcomes(r)
    assert counts[("sev_init2", None)] == 3
    assert counts[("sev_init2", "EINVAL")] == 1 + 64 + 64 + 63
    assert counts[("sev_init", "EINVAL")] == counts[("sev_es_init", "EINVAL")] == 1
    assert sum(n for (_, errno), n in counts.items() if errno is not None) == 1 + 64 + 64 + 63 + 2
    assert broken(r) == set()


@pytest.mark.parametrize("kernel", [f"v{r}" for r in RELEASES[RELEASES.index("5.16") :]])
def test_selftest_migrate_moves_along_a_chain_and_refuses_what_the_selftest_refuses(kernel: str) -> None:
    """sev_migrate_tests: two chains of three moves (SEV, SEV-ES) end in EIO into the dead source;
    five refused moves, five refused copies, eight commands refused on a mirror; the moved SEV-ES
    vCPUs keep their VMSA pages (es_vcpus_have_vmsa holds)."""
    r = run("selftests/sev-migrate.yaml", kernel=kernel)
    counts = outcomes(r)
    assert counts[("move_enc_context_from", None)] == 6
    assert counts[("move_enc_context_from", "EIO")] == 2
    assert counts[("move_enc_context_from", "EINVAL")] == 5
    assert counts[("copy_enc_context_from", None)] == 1
    assert counts[("copy_enc_context_from", "EINVAL")] == 5
    assert counts[("mem_enc_op", "EINVAL")] == 8
    assert counts[("guest_status", None)] == 1
    assert sum(n for (_, errno), n in counts.items() if errno is not None) == 2 + 5 + 5 + 8
    assert broken(r) == set()


def test_selftest_migrate_needs_5_16() -> None:
    r = run("selftests/sev-migrate.yaml", kernel="v5.15")
    assert outcomes(r)[("move_enc_context_from", None)] == 0


def test_sev_es_debugger_example_refuses_launch_until_debugging_is_off() -> None:
    r = run("sev-es-debugger.yaml")
    assert [step(r, i)["errno"] for i in (5, 8, 10, 11)] == ["EINVAL", "EINVAL", None, "EINVAL"]
    assert [fw_cmds(step(r, i)) for i in (5, 8, 10)] == [[], [], ["LAUNCH_UPDATE_VMSA:SUCCESS"]]
    warning = "kvm_amd: KVM_SET_GUEST_DEBUG for SEV-ES guest is not supported"
    assert [e["text"] for e in step(r, 5)["events"]] == [warning]
    assert step(run("sev-es-debugger.yaml", kernel="v6.5"), 5)["events"] == []


def test_snp_policy_without_smt_example_is_refused_by_kvm_then_by_the_firmware() -> None:
    assert step(run("kernels/snp-policy-without-smt.yaml", kernel="v6.16"), 2)["errno"] == "EINVAL"
    after = step(run("kernels/snp-policy-without-smt.yaml"), 2)
    assert after["errno"] == "EIO" and after["fw_error"]["name"] == "POLICY_FAILURE"
    given = schema.HostOverride(bios=("smt=off",))
    smt_off = runner.run(
        schema.override(schema.load(str(EXAMPLES / "kernels/snp-policy-without-smt.yaml")), given)
    )
    assert step(smt_off, 2)["errno"] is None
