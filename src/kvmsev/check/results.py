"""Pinned checker results: what each kernel gets wrong, on the smallest configuration that shows it.

``python -m kvmsev.check.results --write`` recomputes every row and rewrites
``docs/check-results.md``; the test suite recomputes them and compares, so the table cannot drift
from the model.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmsev.check import defaults
from kvmsev.check.actions import Bounds
from kvmsev.check.explore import Result, explore
from kvmsev.check.findings import FINDINGS
from kvmsev.host.config import HostConfig
from kvmsev.kvm.kernels import RELEASES


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    config: HostConfig
    bounds: Bounds
    meaning: str


def _lab(kernel: str, apply: tuple[str, ...] = (), revert: tuple[str, ...] = (), **extra: Any) -> HostConfig:
    return HostConfig(profile="lab", kernel=kernel, apply=apply, revert=revert, bios=defaults.BIOS, **extra)


SEV_ON = ("kvm_amd.sev=1",)
FIXES = ("off-by-one-fix", "last-vmentry-cpu-minus-one")
#: the 5.14-5.16 fixes to 5.13's migration commands and mirror VMs
MIRROR_MIGRATION_FIXES = (
    "migration-pin-errors",
    "receive-start-decommission",
    "mirror-copies-es",
    "mirror-allow-list",
    "mirror-no-vcpus",
)
#: explored until no new state appears
COMPLETE = Bounds(depth=defaults.DEPTH)
NO_EARLY = Bounds(depth=defaults.DEPTH, early_runs=False)
#: failures make the space much larger: bounded
FAULTS = Bounds(depth=6, faults=True)

#: what the default host shows under each later preset, keyed by the release a meaning starts at
_PRESET_MEANINGS = {
    "5.14": "179c6c27bf48 and last_vmentry_cpu = -1 add pre_sev_run's request to a new vCPU's first "
    "entry (which kvm_mmu_load flushes anyway) and shrink the space; finding T1 and the offline-CPU "
    "teardown hazard remain. Nothing from 5.15 to 6.15 changes what the default host can reach",
    "6.16": "finding T4: the PSP is initialised when kvm_amd loads; a CPU offline since the last "
    "SHUTDOWN makes that DF_FLUSH fail, SEV is turned off, and the unload leaves the ASID bitmaps "
    "allocated (the misc capacities stay set); finding T1 remains",
    "6.17": "as 6.16, with no WBINVD at VM destroy (7e00013bd339): fewer states, the same findings",
}


def _preset_rows() -> tuple[Row, ...]:
    """One row per preset after 5.13 on the default host, explored completely."""
    rows = []
    meaning = ""
    for release in RELEASES[2:]:
        meaning = _PRESET_MEANINGS.get(release, meaning)
        rows.append(Row(f"v{release}", _lab(f"v{release}"), COMPLETE, meaning))
    return tuple(rows)


ROWS: tuple[Row, ...] = (
    Row(
        "v5.12",
        _lab("v5.12", params=SEV_ON),
        COMPLETE,
        "before the series: CPUID advertises what KVM does not support; a failed second LAUNCH_START "
        "leaks a firmware context (fixed in 5.13, row 934002cd660b); a vCPU run before LAUNCH_FINISH "
        "loses its first-run flush (finding T1 below)",
    ),
    Row(
        "v5.12, no early runs",
        _lab("v5.12", params=SEV_ON),
        NO_EARLY,
        "with one VM at a time a vCPU run before KVM_SEV_INIT cannot carry stale entries into its SEV "
        "entry: its plain entry is the CPU's first since virtualization was enabled, and new_asid's wrap "
        "flushes every ASID",
    ),
    Row(
        "v5.12, two VMs, no early runs",
        _lab("v5.12", params=SEV_ON),
        Bounds(depth=defaults.DEPTH, vms=2, early_runs=False),
        "finding T2: a vCPU run as a plain VM before KVM_SEV_INIT (allowed before 8727906fde6e) has its "
        "MMU root already loaded, and the off-by-one in sev_asid_free with a reused VMCB page makes "
        "pre_sev_run skip the flush too; examples/vcpu-before-init-5.12.yaml",
    ),
    Row(
        "8727906fde6e: v5.12+created-vcpus-check, two VMs, no early runs",
        _lab("v5.12", ("created-vcpus-check",), params=SEV_ON),
        Bounds(depth=defaults.DEPTH, vms=2, early_runs=False),
        "with KVM_SEV_INIT refused once a vCPU exists, finding T2 is gone (the 5.12.4 stable kernel)",
    ),
    Row(
        "v5.13",
        _lab("v5.13"),
        COMPLETE,
        "as released: finding T1 and the offline-CPU teardown hazard; examples/early-run-lost-flush.yaml",
    ),
    Row(
        "v5.13, no early runs",
        _lab("v5.13"),
        NO_EARLY,
        "vCPUs run only after LAUNCH_FINISH (what QEMU does): tlb_isolation holds in every reachable state. "
        "The off-by-one in sev_asid_free and last_vmentry_cpu starting at 0 cannot skip a flush: every "
        "vCPU's first KVM_RUN flushes its ASID in kvm_mmu_load",
    ),
    Row(
        "v5.13, two VMs",
        _lab("v5.13"),
        Bounds(depth=10, vms=2),
        "with two VMs the checker also makes mirrors and migrates between them on the host: a mirror of "
        "an SEV-ES guest is an SEV guest on an SEV-ES ASID (f43c887cb7cb, 5.15), and RECEIVE_START leaks "
        "the context whose ACTIVATE failed (f1815e0aa770, 5.15); examples/mirrors/, examples/migration/",
    ),
    Row(
        "v5.13, two VMs, one CPU, no early runs",
        _lab("v5.13", cpus=1),
        Bounds(depth=16, vms=2, early_runs=False),
        "finding T3: a VM whose vCPU already ran becomes a mirror (no vCPU check before 79b111427637, "
        "5.16); a later mirror with the reused VMCB page skips the flush; "
        "examples/mirrors/vcpu-before-mirror.yaml",
    ),
    Row(
        "v5.13+mirror and migration fixes, two VMs, one CPU, no early runs",
        _lab("v5.13", MIRROR_MIGRATION_FIXES, cpus=1),
        Bounds(depth=16, vms=2, early_runs=False),
        "with 79b111427637 (no mirror once a vCPU exists) finding T3 is gone; f43c887cb7cb makes a mirror "
        "of an SEV-ES guest SEV-ES and f1815e0aa770 decommissions RECEIVE_START's unbound context",
    ),
    Row(
        "v5.13, one CPU",
        _lab("v5.13", cpus=1),
        COMPLETE,
        "finding T1 needs neither a second CPU nor hotplug; teardown_clean needs a CPU to offline",
    ),
    Row(
        "v5.13+both-fixes",
        _lab("v5.13", FIXES),
        COMPLETE,
        "the two 5.14 changes (179c6c27bf48, last_vmentry_cpu = -1) add a pre_sev_run request to a new "
        "vCPU's first entry, which already carries kvm_mmu_load's: neither closes finding T1",
    ),
    Row(
        "01: v5.13-zero-vmcb-array, no early runs",
        _lab("v5.13", (), ("zero-vmcb-array",)),
        NO_EARLY,
        "3b1902b87bf1's potential bug is unreachable: an uninitialised sev_vmcbs entry that equals a "
        "reused VMCB after a module reload can only be met on a vCPU's first entry, which flushes in "
        "kvm_mmu_load",
    ),
    Row(
        "03: v5.12 npt=0",
        _lab("v5.12", params=(*SEV_ON, "kvm_amd.npt=0")),
        COMPLETE,
        "SEV enabled without NPT (sev_preconditions, at boot); the rest as v5.12",
    ),
    Row(
        "03: v5.12+npt-required npt=0",
        _lab("v5.12", ("npt-required",), params=(*SEV_ON, "kvm_amd.npt=0")),
        COMPLETE,
        "fa13680f5668 keeps SEV off without NPT",
    ),
    Row(
        "05: v5.12+cpuid-mask",
        _lab("v5.12", ("cpuid-mask",), params=SEV_ON),
        COMPLETE,
        "d9db0fd6c5c9 stops advertising SME/VM_PAGE_FLUSH and bits KVM has off; the rest as v5.12",
    ),
    Row(
        "15: v5.12 no SEV firmware",
        HostConfig(profile="ryzen-3950x", kernel="v5.12", params=SEV_ON, cpus=2),
        Bounds(depth=4),
        "every unload flushes and DF_FLUSH fails (-ENODEV) on a part without SEV firmware",
    ),
    Row(
        "15: v5.12+skip-unused-flush no SEV firmware",
        HostConfig(
            profile="ryzen-3950x", kernel="v5.12", apply=("skip-unused-flush",), params=SEV_ON, cpus=2
        ),
        Bounds(depth=4),
        "469bb32b68d5 fixes the unused case only: a KVM_SEV_INIT that fails leaves its ASID awaiting reclaim "
        "and the unload flush still fails (SEV stays enabled without firmware)",
    ),
    Row(
        "02+13: v5.12+drop-svm-sev-enabled, faults",
        _lab("v5.12", ("drop-svm-sev-enabled",), params=SEV_ON),
        FAULTS,
        "dropping svm_sev_enabled() without freeing the bitmap on setup failure leaks it at unload",
    ),
    Row(
        "02+13: v5.12+both, faults",
        _lab("v5.12", ("drop-svm-sev-enabled", "free-bitmap-on-setup-failure"), params=SEV_ON),
        FAULTS,
        "with f31b88b35f90 the leak is gone",
    ),
    Row(
        "13: v5.13-drop-svm-sev-enabled, faults",
        _lab("v5.13", (), ("drop-svm-sev-enabled",)),
        FAULTS,
        "keeping the max_sev_asid gate while 469bb32b68d5 reads the (NULL) reclaim bitmap at unload oopses",
    ),
    Row(
        "8727906fde6e: v5.13-created-vcpus-check",
        _lab("v5.13", (), ("created-vcpus-check",)),
        COMPLETE,
        "without the check, KVM_SEV_ES_INIT after KVM_CREATE_VCPU makes an SEV-ES guest whose vCPU "
        "has no VMSA page (svm_create_vcpu allocates it only for an ES VM); LAUNCH_UPDATE_VMSA then "
        "oopses the host (examples/patches/created-vcpus-check.yaml; the search stops at the first "
        "broken invariant of a path)",
    ),
    Row(
        "9fa1521daafb: v5.13-es-active-on-success",
        _lab("v5.13", (), ("es-active-on-success",)),
        COMPLETE,
        "without it, KVM_SEV_ES_INIT on an active SEV VM fails with -EBUSY but leaves es_active set: "
        "the SEV guest is now treated as SEV-ES, on an SEV ASID, charged to the wrong misc resource",
    ),
    Row(
        "934002cd660b: v5.13-decommission-on-bind-failure",
        _lab("v5.13", (), ("decommission-on-bind-failure",)),
        COMPLETE,
        "without it, a second KVM_SEV_LAUNCH_START creates a firmware context whose ACTIVATE fails "
        "(the ASID is owned) and never decommissions it: the context leaks",
    ),
    Row(
        "v5.13, faults",
        _lab("v5.13"),
        FAULTS,
        "sev_unbind_asid ignores a failing DEACTIVATE or DECOMMISSION: KVM frees the ASID while the "
        "firmware keeps it bound, or forgets a context the firmware keeps (the kernel has no way to "
        "recover; an injected firmware failure, not a bug of the series)",
    ),
    *(_preset_rows()),
)


def outcome(result: Result) -> str:
    if result.holds:
        return "holds"
    return ", ".join(f"{v.invariant}@{len(v.path)}" for v in result.violations)


def summary(result: Result) -> dict[str, Any]:
    """What the table pins of one search."""
    return {
        "states": result.states,
        "depth": result.depth,
        "complete": result.complete,
        "outcome": outcome(result),
    }


def compute(rows: tuple[Row, ...] = ROWS) -> dict[str, dict[str, Any]]:
    return {row.id: summary(explore(row.config, row.bounds)) for row in rows}


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Pinned checker results",
        "",
        "Generated by `python -m kvmsev.check.results --write`; `tests/test_check.py` recomputes every row.",
        "Host: `kvmsev check`'s default (`lab` with `sev_asid_count=2 sev_es_asid_space_limit=2`: SEV-ES",
        'ASID 1, SEV ASID 2, two CPUs) unless stated; one VM and one vCPU at a time. "complete": explored',
        "until no new state appeared, so the outcome covers every reachable state, not a bounded prefix",
        '("N deep": the farthest state is N moves from the boot).',
        "Outcome: `holds`, or each broken invariant `@` the length of its shortest counterexample",
        "(0: broken at boot).",
        "`kvmsev check` with the same options reproduces a row.",
        "",
        "| row | states | bound | outcome | what it shows |",
        "|---|---:|---|---|---|",
    ]
    for row in ROWS:
        r = results[row.id]
        bound = f"complete ({r['depth']} deep)" if r["complete"] else f"depth {r['depth']}"
        if row.bounds.faults:
            bound += ", faults"
        if row.bounds.vms > 1:
            bound += f", {row.bounds.vms} VMs"
        if not row.bounds.early_runs:
            bound += ", no early runs"
        lines.append(f"| {row.id} | {r['states']} | {bound} | {r['outcome']} | {row.meaning} |")
    lines += [
        "",
        "Patches 07 (bool parameters), 08 (parameters need CONFIG_KVM_AMD_SEV) and 09 (on by default)",
        "change KVM's interface, not its isolation: no invariant concerns them; their before/after",
        "behaviour is pinned by `tests/test_patches.py` and `examples/patches/`. The refactors (04, 10, 11,",
        "12) are shown equivalent by `test_refactors_change_nothing_observable`.",
        "",
        FINDINGS,
        "```json",
        json.dumps(results, indent=1, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def pinned(path: Path) -> dict[str, dict[str, Any]]:
    text = path.read_text()
    block = text.split("```json", 1)[1].split("```", 1)[0]
    data: dict[str, dict[str, Any]] = json.loads(block)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", metavar="FILE", nargs="?", const="docs/check-results.md")
    args = parser.parse_args()
    text = render(compute())
    if args.write:
        Path(args.write).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
