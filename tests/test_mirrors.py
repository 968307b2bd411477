"""Mirror VMs (KVM_CAP_VM_COPY_ENC_CONTEXT_FROM) as 5.13 has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvmsev.scenario import runner, schema

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(steps: list[dict[str, Any]], **host: Any) -> dict[str, Any]:
    return runner.run(schema.parse({"host": {"profile": "lab", **host}, "steps": steps}))


OWNER = [
    {"op": "vm_create", "vm": "a"},
    {"op": "sev_init", "vm": "a"},
    {"op": "launch_start", "vm": "a"},
    {"op": "launch_measure", "vm": "a"},
    {"op": "launch_finish", "vm": "a"},
    {"op": "vm_create", "vm": "m"},
]


def test_a_mirror_shares_the_owners_asid_uncharged_and_refuses_every_sev_command() -> None:
    r = run(
        [*OWNER, {"op": "copy_enc_context_from", "vm": "m", "source": "a"}, {"op": "guest_status", "vm": "m"}]
    )
    steps = r["steps"]
    assert steps[6]["result"] == {"asid": 3}
    assert steps[7]["errno"] == "EINVAL" and steps[7]["events"] == []
    assert r["final"]["misc_cgroup"]["/"]["usage"] == {"sev": 1, "sev_es": 0}, "only the owner is charged"
    assert {v["invariant"] for v in r["invariants"]["violations"]} == set()


def test_mirror_arguments_are_checked_in_kernel_order() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "p"},
            *OWNER,
            {"op": "copy_enc_context_from", "vm": "m", "source": "p"},
            {"op": "copy_enc_context_from", "vm": "m", "source": "m"},
            {"op": "copy_enc_context_from", "vm": "a", "source": "a"},
            {"op": "copy_enc_context_from", "vm": "m", "source": "a"},
            {"op": "copy_enc_context_from", "vm": "p", "source": "m"},
            {"op": "copy_enc_context_from", "vm": "m", "source": "a"},
        ]
    )["steps"]
    assert [s["errno"] for s in steps[7:]] == ["EINVAL", "EINVAL", "EINVAL", None, "EINVAL", "EINVAL"]


def test_no_mirrors_before_5_13() -> None:
    steps = run(
        [*OWNER, {"op": "copy_enc_context_from", "vm": "m", "source": "a"}],
        kernel="v5.12",
        params=["kvm_amd.sev=1"],
    )["steps"]
    assert steps[-1]["errno"] == "EINVAL"


def test_the_owner_is_torn_down_only_with_its_last_mirror() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "mirrors/sev-es-owner.yaml")))
    owner_closed, mirror_closed = r["steps"][9], r["steps"][10]
    assert not [e for e in owner_closed["events"] if e["kind"] == "fw"], "a mirror still holds the owner"
    assert [e["cmd"] for e in mirror_closed["events"] if e["kind"] == "fw"] == ["DEACTIVATE", "DECOMMISSION"]
    assert r["final"]["kvm"]["sev_reclaim_asid_bitmap"] == [1]


def test_a_mirror_of_an_sev_es_guest_is_an_sev_guest_on_an_sev_es_asid_in_5_13() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "mirrors/sev-es-owner.yaml")))
    assert {(v["invariant"], v["step"]) for v in r["invariants"]["violations"]} == {("asid_ranges", 6)}


def test_a_vcpu_that_ran_before_the_mirror_skips_the_flush_on_a_reused_vmcb() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "mirrors/vcpu-before-mirror.yaml")))
    last = r["steps"][-1]["result"]
    assert last["tlb_flush"] is False and "tlb_flush_by" not in last
    assert {v["invariant"] for v in r["invariants"]["violations"]} == {"tlb_isolation"}
