"""The invariants compute what their statements say, however they are computed: each fast form is
checked here against the statement written out directly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmsev.check import explore as explorer
from kvmsev.check import invariants
from kvmsev.check.actions import Bounds
from kvmsev.check.defaults import BIOS
from kvmsev.check.invariants import misc_usage
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.kvm.state import has_sev_state
from kvmsev.scenario import runner, schema
from kvmsev.scenario.schema import Step


def assert_sev_index_agrees(host: Host) -> None:
    """The invariants walk ``KvmAmd.sev_vms``: it must list exactly the VMs a walk of every VM
    finds with SEV state, in creation order, or a check would silently miss a VM."""
    kvm = host.kvm
    if kvm is None:
        return
    walked = [(name, vm.serial) for name, vm in kvm.vms.items() if has_sev_state(vm)]
    assert list(kvm.sev_vms.items()) == walked
    assert [vm.serial for vm in kvm.vms.values()] == sorted(vm.serial for vm in kvm.vms.values())


CGROUPS = ["/a", "/b", "/a/x", "/a/x/y", "/ab", "/b/a"]
VMS = ["p", "q", "r", "s"]


def _misc_usage_by_definition(host: Host) -> list[str]:
    """Usage in every cgroup equals the VMs charged in it or in any cgroup below it."""
    assert host.kvm is not None
    out = []
    for path, group in sorted(host.env.misc.groups.items()):
        for resource in ("sev", "sev_es"):
            count = sum(
                1
                for vm in host.kvm.vms.values()
                if vm.misc_cg is not None
                and vm.es_active == (resource == "sev_es")
                and (path == "/" or vm.misc_cg.path == path or vm.misc_cg.path.startswith(path + "/"))
            )
            if group.usage[resource] != count:
                out.append(
                    f"misc {resource} usage in {path} is {group.usage[resource]} but {count} VMs charged"
                )
    return out


moves = st.lists(
    st.one_of(
        st.builds(
            lambda vm, cg: ("vm_create", vm, cg), st.sampled_from(VMS), st.sampled_from(["/", *CGROUPS])
        ),
        st.builds(
            lambda op, vm: (op, vm, None),
            st.sampled_from(["sev_init", "sev_es_init", "vm_destroy"]),
            st.sampled_from(VMS),
        ),
        st.builds(lambda cg, d: ("skew", cg, d), st.sampled_from(["/", *CGROUPS]), st.integers(-1, 1)),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(moves=moves)
def test_misc_usage_reports_exactly_the_cgroups_whose_usage_is_not_their_charged_vms(
    moves: list[tuple[str, str, object]],
) -> None:
    host = Host.boot(HostConfig(profile="lab", kernel="v6.12"))
    host.load_kvm_amd()
    assert host.kvm is not None
    for path in CGROUPS:
        host.env.misc.create(path)
    for index, (op, name, arg) in enumerate(moves):
        if op == "skew":  # the model's own count disturbed, as a bug in charging would
            host.env.misc.adjust(host.env.misc.groups[name], "sev", int(str(arg)))
        elif op == "vm_create" and name not in host.kvm.vms:
            runner.execute(host, Step(index, op, {"vm": name, "cgroup": arg}, "host"))
        elif op != "vm_create" and name in host.kvm.vms and not host.kvm.vms[name].closed:
            runner.execute(host, Step(index, op, {"vm": name}, "host"))
        assert misc_usage(host) == _misc_usage_by_definition(host)
        assert host.env.misc.in_use == {p for p, g in host.env.misc.groups.items() if any(g.usage.values())}
        assert_sev_index_agrees(host)


sev_moves = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "vm_create",
                "sev_init",
                "sev_es_init",
                "launch_start",
                "vcpu_create",
                "copy_enc_context_from",
                "move_enc_context_from",
                "vm_destroy",
            ]
        ),
        st.sampled_from(VMS),
        st.sampled_from(VMS),
    ),
    max_size=24,
)


@settings(max_examples=80, deadline=None)
@given(moves=sev_moves, kernel=st.sampled_from(["v5.12", "v5.13", "v6.12"]))
def test_the_sev_vm_index_lists_exactly_the_vms_with_sev_state(
    moves: list[tuple[str, str, str]], kernel: str
) -> None:
    """VMs gain and lose SEV state through init (and its failures, with a misc charge taken
    and returned), mirrors, context moves and destruction, in any order over reused names."""
    host = Host.boot(HostConfig(profile="lab", kernel=kernel, bios=("sev_asid_count=3",)))
    host.load_kvm_amd()
    assert host.kvm is not None
    for index, (op, name, source) in enumerate(moves):
        vms = host.kvm.vms
        if op == "vm_create":
            if name in vms:
                continue
            args: dict[str, object] = {"vm": name}
        elif name not in vms or vms[name].closed:
            continue
        elif op.endswith("_enc_context_from"):
            if source not in vms or vms[source].closed:
                continue
            args = {"vm": name, "source": source}
        else:
            args = {"vm": name}
        runner.execute(host, Step(index, op, args, "host"))
        assert_sev_index_agrees(host)


def test_an_older_vm_initialised_after_a_newer_one_is_checked_in_creation_order() -> None:
    host = Host.boot(HostConfig(profile="lab", kernel="v5.13"))
    host.load_kvm_amd()
    assert host.kvm is not None
    for index, (op, name) in enumerate(
        [("vm_create", "old"), ("vm_create", "new"), ("sev_init", "new"), ("sev_init", "old")]
    ):
        runner.execute(host, Step(index, op, {"vm": name}, "host"))
    assert [vm.name for vm in host.kvm.sev_guests()] == ["old", "new"]
    assert_sev_index_agrees(host)


def _checking_the_index(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the explorer's and the runner's checks hold the index to a full walk first; returns
    a counter of the states checked."""
    checked = [0]

    def violations(host: Host, names: Sequence[str] = invariants.ALL) -> dict[str, list[str]]:
        assert_sev_index_agrees(host)
        checked[0] += 1
        return invariants.violations(host, names)

    def new_violations(host: Host, names: Sequence[str], marks: dict[str, int]) -> dict[str, list[str]]:
        assert_sev_index_agrees(host)
        checked[0] += 1
        return invariants.new_violations(host, names, marks)

    monkeypatch.setattr(explorer, "violations", violations)
    monkeypatch.setattr(runner, "new_violations", new_violations)
    return checked


EXAMPLES = sorted((Path(__file__).parent.parent / "examples").rglob("*.yaml"))


def test_every_example_scenario_keeps_the_sev_vm_index_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = _checking_the_index(monkeypatch)
    for path in EXAMPLES:
        runner.run(schema.load(str(path)))
    assert checked[0] > len(EXAMPLES)


@pytest.mark.parametrize(
    ("config", "bounds"),
    [
        (HostConfig(profile="lab", kernel="v5.13", bios=BIOS), Bounds(depth=9, vms=2)),
        (
            HostConfig(
                profile="lab", kernel="v5.12", params=("kvm_amd.sev=1", "kvm_amd.sev_es=1"), bios=BIOS
            ),
            Bounds(depth=8, vms=2, faults=True),
        ),
    ],
    ids=["v5.13-mirrors", "v5.12-sev-es-faults"],
)
def test_every_state_a_search_reaches_keeps_the_sev_vm_index_exact(
    monkeypatch: pytest.MonkeyPatch, config: HostConfig, bounds: Bounds
) -> None:
    """The explorer's partial copies share the index with the parent state where a move cannot
    change it; a move that did would corrupt its siblings, which this catches too."""
    checked = _checking_the_index(monkeypatch)
    result = explorer.explore(config, bounds)
    assert checked[0] == result.states > 1000


def test_a_run_describes_each_breach_once_and_in_order() -> None:
    """``new_violations`` gives a history invariant's events after the mark, then moves the mark;
    the other invariants are checked whole every time."""
    host = Host.boot(HostConfig(profile="lab", kernel="v5.13"))
    host.load_kvm_amd()
    host.env.breaches += [(0, 3, 1, 2), (1, 4, 3, 5)]
    marks: dict[str, int] = {}
    assert invariants.new_violations(host, invariants.ALL, marks) == invariants.violations(host)
    assert marks == {"tlb_isolation": 2, "teardown_clean": 0, "writes_in_bounds": 0}
    host.env.breaches.append((0, 3, 2, 7))
    assert invariants.new_violations(host, invariants.ALL, marks) == {
        "tlb_isolation": ["CPU 0 entered ASID 3 for vCPU #7 without a flush over entries of vCPU #2"]
    }
    assert invariants.new_violations(host, invariants.ALL, marks) == {}
    assert len(invariants.violations(host)["tlb_isolation"]) == 3
