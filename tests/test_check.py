"""The explorer: pinned results, counterexample round trips, fingerprints, the CLI."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from kvmsev.check import counterexample, defaults
from kvmsev.check.actions import Action, Bounds, apply, enumerate_actions
from kvmsev.check.explore import Result, boot, explore
from kvmsev.check.results import ROWS, Row, pinned, summary
from kvmsev.check.state import clone, fingerprint
from kvmsev.cli.main import main
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.scenario import runner, schema

RESULTS = Path(__file__).parent.parent / "docs" / "check-results.md"


@functools.cache
def _row_result(row: Row) -> Result:
    """Each pinned row is explored once for all the tests that look at it."""
    return explore(row.config, row.bounds)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_pinned_results_match_the_model(row: Row) -> None:
    assert summary(_row_result(row)) == pinned(RESULTS)[row.id]


def test_the_pinned_table_has_exactly_the_rows_defined() -> None:
    assert set(pinned(RESULTS)) == {row.id for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_counterexamples_replay_with_kvmsev_run(tmp_path: Path, row: Row) -> None:
    result = _row_result(row)
    for violation in result.violations:
        if not violation.path:
            continue  # broken at boot: nothing to replay
        path = counterexample.write(row.config, violation, tmp_path)
        report = runner.run(schema.load(str(path)))
        broken = {v["invariant"] for v in report["invariants"]["violations"]}
        assert violation.invariant in broken, (row.id, violation.invariant, path.read_text())


def test_explorer_reaches_recycling_and_a_full_pool() -> None:
    result = explore(
        HostConfig(profile="lab", kernel="v5.13", apply=("off-by-one-fix",), bios=("sev_asid_count=3",)),
        Bounds(depth=10, early_runs=False),
    )
    assert result.sometimes == {"pool_filled": True, "asid_recycled": True}


def test_explorer_stops_at_the_bound_and_counts_transitions() -> None:
    result = explore(HostConfig(profile="lab"), Bounds(depth=3))
    assert result.depth == 3 and not result.complete and result.limit == "depth"
    assert result.transitions >= result.states - 1


def test_a_complete_search_reports_how_deep_the_farthest_state_is() -> None:
    config = HostConfig(profile="lab", kernel="v5.12", apply=("npt-required",), params=("kvm_amd.npt=0",))
    complete = explore(config, Bounds(depth=100))
    assert complete.complete and complete.limit is None
    exact = explore(config, Bounds(depth=complete.depth))
    short = explore(config, Bounds(depth=complete.depth - 1))
    assert exact.states == complete.states > short.states


def test_explorer_stops_at_the_state_budget() -> None:
    unlimited = explore(HostConfig(profile="lab"), Bounds(depth=8))
    budget = unlimited.states // 2
    result = explore(HostConfig(profile="lab"), Bounds(depth=8, max_states=budget))
    assert not result.complete and result.limit == "max_states"
    assert budget <= result.states < unlimited.states


def test_clone_is_independent_and_fingerprints_match_equal_states() -> None:
    host = boot(HostConfig(profile="lab", kernel="v5.13"))
    copy = clone(host)
    assert fingerprint(copy) == fingerprint(host)
    apply(copy, Action("vm_create", (("vm", "a"),)))
    apply(copy, Action("sev_init", (("vm", "a"),)))
    assert fingerprint(copy) != fingerprint(host)
    assert host.kvm is not None and not host.kvm.vms
    assert host.env.misc.root.usage["sev"] == 0, "cgroup usage was copied, not shared"


def test_uninitialised_entries_branch_into_match_and_mismatch() -> None:
    host = boot(HostConfig(profile="lab", kernel="v5.12", params=("kvm_amd.sev=1",)))
    for step in ("vm_create", "sev_init", "launch_start", "launch_measure", "launch_finish", "vcpu_create"):
        args = (("vm", "a"),) if step != "launch_start" else (("vm", "a"), ("policy", 0))
        apply(host, Action(step, args))
    runs = [a for a in enumerate_actions(host, Bounds()) if a.op == "vcpu_run"]
    assert {a.garbage[2] != 0 for a in runs if a.garbage} == {True, False}


def test_check_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--out", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(report) >= {"states", "transitions", "depth", "complete", "seconds", "violations"}
    assert report["complete"] and report["states"] == pinned(RESULTS)["v5.13"]["states"]
    tlb = next(v for v in report["violations"] if v["invariant"] == "tlb_isolation")
    assert set(tlb) >= {"invariant", "statement", "trace", "scenario"} and len(tlb["trace"]) == 16
    assert Path(tlb["scenario"]).exists()
    assert main(["check", "--kernel", "v5.13", "--apply", "off-by-one-fix", "--depth", "6", "--json"]) == 0
    capsys.readouterr()
    assert main(["check", "--vms", "99"]) == 2
    assert main(["check", "--depth", "1001"]) == 2
    assert main(["check", "--max-states", "0"]) == 2
    assert "--max-states: 0 must be at least 1" in capsys.readouterr().err


def test_check_defaults_to_two_asids_unless_the_user_chooses() -> None:
    def asids(*argv: str) -> tuple[int, int]:
        from kvmsev.check import defaults
        from kvmsev.cli.parser import build_parser, host_config

        args = build_parser().parse_args(["check", *argv])
        host = boot(defaults.host(host_config(args, defaults.PROFILE), bool(args.profile)))
        assert host.kvm is not None
        return host.kvm.min_sev_asid, host.kvm.max_sev_asid

    assert asids() == (2, 2)
    assert asids("--bios", "sev_asid_count=3") == (2, 3)
    assert asids("--bios", "sev_es_asid_space_limit=1") == (1, 2)
    assert asids("--profile", "lab") == (3, 4)


def test_fingerprint_ignores_an_offline_cpus_tlb_and_how_an_entry_became_null() -> None:
    config = HostConfig(profile="lab", kernel="v5.13")
    ran = boot(config)
    for action in (
        Action("vm_create", (("vm", "a"),)),
        Action("vcpu_create", (("vm", "a"),)),
        Action("vcpu_run", (("vm", "a"), ("vcpu", 0), ("cpu", 1))),
        Action("vm_destroy", (("vm", "a"),)),
    ):
        apply(ran, action)
    idle = boot(config)
    idle.env.pages = ran.env.pages  # the same free pages, so only the TLB and sev_vmcbs differ
    assert idle.kvm is not None and ran.kvm is not None
    idle.kvm.asid_generation, idle.kvm.next_asid = ran.kvm.asid_generation, ran.kvm.next_asid
    ran.env.tlb[1] = {3: 99}  # entries of a vCPU that is gone
    assert fingerprint(ran) != fingerprint(idle)
    for host in (ran, idle):
        apply(host, Action("cpu_offline", (("cpu", 1),)))
    assert fingerprint(ran) == fingerprint(idle)
    assert idle.kvm is not None and idle.kvm.sev_vmcbs is not None
    idle.kvm.sev_vmcbs.clear_all_cpus(3)  # cleared vs never written: both read NULL
    assert fingerprint(ran) == fingerprint(idle)
    idle.kvm.sev_vmcbs.set(1, 3, 0x1000)
    assert fingerprint(ran) != fingerprint(idle)


@pytest.mark.parametrize(
    ("config", "bounds"),
    [
        (
            HostConfig(
                profile="lab",
                kernel="v5.12",
                params=("kvm_amd.sev=1", "kvm_amd.sev_es=1"),
                bios=("sev_asid_count=3",),
            ),
            Bounds(depth=9, vms=2),
        ),
        (
            HostConfig(profile="lab", kernel="v5.13", bios=("sev_asid_count=3",)),
            Bounds(depth=7, vcpus=2, faults=True),
        ),
    ],
)
def test_partial_copies_explore_exactly_like_full_copies(config: HostConfig, bounds: Bounds) -> None:
    fast, full = explore(config, bounds), explore(config, bounds, fast=False)
    assert (fast.states, fast.transitions, fast.sometimes) == (full.states, full.transitions, full.sometimes)
    assert [(v.invariant, v.path) for v in fast.violations] == [
        (v.invariant, v.path) for v in full.violations
    ]


def test_partial_copies_never_write_to_the_parent() -> None:
    from kvmsev.check.state import clone_for

    config = HostConfig(profile="lab", kernel="v5.12", params=("kvm_amd.sev=1", "kvm_amd.sev_es=1"))
    frontier = [boot(config)]
    checked = 0
    for _ in range(8):
        next_frontier = []
        for host in frontier[:40]:
            before = fingerprint(host)
            for action in enumerate_actions(host, Bounds(vms=2, vcpus=2)):
                child = clone_for(host, action.op, dict(action.args))
                apply(child, action)
                assert fingerprint(host) == before, action.label()
                next_frontier.append(child)
                checked += 1
        frontier = next_frontier
    assert checked > 500


def _unreduced_key(host: Host) -> tuple[object, ...]:
    """Everything a fingerprint summarises, kept as it is: every CPU's TLB, ``sev_vmcbs`` as
    written (columns, cleared indexes, chosen garbage), every vCPU field. Only what is a label
    (vCPU serial numbers) or data that never steers a decision (keys, digests) is left out.
    Written out here rather than shared with :mod:`kvmsev.check.state`, so that a mistake there
    cannot hide itself."""
    env, kvm = host.env, host.kvm
    owners = {}
    vms: tuple[object, ...] = ()
    vmcbs: object = None
    kvm_fields: tuple[object, ...] = ()
    if kvm is not None:
        for vm in kvm.vms.values():
            for vcpu in vm.vcpus:
                owners[vcpu.serial] = (vm.name, vcpu.index)
        vms = tuple(
            (
                vm.name,
                vm.active,
                vm.es_active,
                vm.asid,
                vm.handle,
                vm.fd,
                vm.cgroup.path,
                None if vm.misc_cg is None else vm.misc_cg.path,
                vm.pages_locked,
                tuple((r.uaddr, r.size, r.npages) for r in vm.regions),
                tuple(
                    (
                        v.index,
                        v.vmcb_pfn,
                        v.vmcb,
                        v.vmsa_pfn,
                        v.last_vmentry_cpu,
                        v.guest_state_protected,
                        v.root_loaded,
                        v.cpu,
                        v.asid_generation,
                    )
                    for v in vm.vcpus
                ),
                vm.created_vcpus,
                vm.initialised_as_es,
                vm.enc_context_owner,
                vm.users,
                vm.closed,
            )
            for vm in sorted(kvm.vms.values(), key=lambda vm: vm.name)
        )
        if kvm.sev_vmcbs is not None:
            table = kvm.sev_vmcbs
            vmcbs = (
                table.zeroed,
                tuple(sorted((i, tuple(sorted(col.items()))) for i, col in table.columns.items())),
                tuple(sorted(table.nulled)),
            )
        kvm_fields = (
            tuple(sorted(kvm.params.items())),
            kvm.npt_enabled,
            kvm.max_sev_asid,
            kvm.min_sev_asid,
            kvm.sev_asid_bitmap,
            kvm.sev_reclaim_asid_bitmap,
            kvm.sev_vmcbs_cpus,
            tuple(kvm.asid_generation),
            tuple(kvm.next_asid),
            kvm.hardware_enabled,
        )
    psp = env.psp
    return (
        kvm is not None,
        kvm_fields,
        vmcbs,
        vms,
        (int(psp.state), psp.es_initialized, psp.wbinvd_done, psp.asid_allocated, psp.asid_in_use),
        (psp.asid_dirty, psp.asid_all_dirty, tuple(sorted((int(c), int(s)) for c, s in psp.faults.items()))),
        tuple((h, g.policy, int(g.state), g.asid, g.activation.value) for h, g in sorted(psp.guests.items())),
        env.ccp.initialized,
        env.online,
        tuple(
            (cpu, tuple(sorted((a, owners.get(s, ("gone", -1))) for a, s in entries.items())))
            for cpu, entries in sorted(env.tlb.items())
        ),
        tuple(sorted(env.garbage.resolved.items())),
        tuple(env.pages.free_list),
        env.pages.next_pfn,
        tuple(sorted(env.misc.capacity.items())),
        tuple(
            (p, tuple(sorted(g.usage.items())), tuple(sorted(g.max.items())))
            for p, g in sorted(env.misc.groups.items())
        ),
        bool(env.breaches),
        bool(env.unclean_teardowns),
        host.crashed is not None,
        tuple(sorted((n, s.session, s.policy, len(s.packets)) for n, s in host.streams.items())),
    )


def _classes_reached(config: HostConfig, bounds: Bounds, key: Any) -> set[tuple[object, ...]]:
    """Breadth-first search deduplicating by ``key``; the fingerprints of every state reached."""
    from kvmsev.check.invariants import violations
    from kvmsev.check.state import clone_for

    root = boot(config)
    at_boot = set(violations(root))
    seen, classes, frontier = {key(root)}, {fingerprint(root)}, [root]
    for _ in range(bounds.depth):
        next_frontier = []
        for host in frontier:
            for action in enumerate_actions(host, bounds):
                child = clone_for(host, action.op, dict(action.args))
                apply(child, action)
                k = key(child)
                if k not in seen:
                    seen.add(k)
                    classes.add(fingerprint(child))
                    if set(violations(child)) <= at_boot:
                        next_frontier.append(child)
        frontier = next_frontier
    return classes


@pytest.mark.parametrize(
    ("config", "bounds"),
    [
        # the explorer completes this host 27 moves deep; the unreduced search counts every plain
        # ASID handed out and never completes, so it is cut just past that depth
        (
            HostConfig(profile="lab", kernel="v5.12", params=("kvm_amd.sev=1",), bios=defaults.BIOS),
            Bounds(depth=30),
        ),
        (
            HostConfig(
                profile="lab",
                kernel="v5.12",
                params=("kvm_amd.sev=1", "kvm_amd.sev_es=1"),
                bios=defaults.BIOS,
            ),
            Bounds(depth=14),
        ),
        (HostConfig(profile="lab", kernel="v5.13", bios=defaults.BIOS), Bounds(depth=17)),
    ],
    ids=["v5.12-complete", "v5.12-sev-es", "v5.13"],
)
def test_fingerprints_merge_only_states_with_the_same_future(config: HostConfig, bounds: Bounds) -> None:
    """The fingerprint leaves out what no move can observe (an offline CPU's TLB, how a
    ``sev_vmcbs`` entry came to read NULL). Were that unsound, merging two states with different
    futures would hide what only the dropped one leads to: searching without the reductions
    would reach fingerprints the explorer's search never meets."""
    assert _classes_reached(config, bounds, fingerprint) == _classes_reached(config, bounds, _unreduced_key)


@pytest.mark.parametrize(
    ("config", "bounds"),
    [
        (HostConfig(profile="lab", kernel="v5.13", bios=defaults.BIOS), Bounds(depth=10, vms=2)),
        (
            HostConfig(
                profile="lab",
                kernel="v5.12",
                params=("kvm_amd.sev=1", "kvm_amd.sev_es=1"),
                bios=defaults.BIOS,
            ),
            Bounds(depth=9, vms=2),
        ),
        (HostConfig(profile="lab", kernel="v5.13", bios=defaults.BIOS), Bounds(depth=8, faults=True)),
    ],
    ids=["v5.13", "v5.12-sev-es", "v5.13-faults"],
)
def test_moves_left_out_of_the_search_change_nothing(config: HostConfig, bounds: Bounds) -> None:
    """The enumerator leaves out calls it expects to fail without effect (INIT on an active VM,
    a second LAUNCH_START, LAUNCH_* in the wrong firmware state). Each one, made anyway from
    every state of a search, must leave the state exactly as it was."""
    from kvmsev.check.state import clone_for

    root = boot(config)
    seen, frontier, checked = {fingerprint(root)}, [root], 0
    for _ in range(bounds.depth):
        next_frontier = []
        for host in frontier:
            before = fingerprint(host)
            kept = set(enumerate_actions(host, bounds))
            for action in enumerate_actions(host, bounds, prune=False):
                child = clone_for(host, action.op, dict(action.args))
                apply(child, action)
                if action not in kept:
                    assert fingerprint(child) == before, action.label()
                    checked += 1
                elif fingerprint(child) not in seen:
                    seen.add(fingerprint(child))
                    next_frontier.append(child)
        frontier = next_frontier
    assert checked > 100
