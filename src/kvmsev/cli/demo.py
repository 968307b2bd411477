"""``make demo``: what v5.12 and v5.13 decide on a few real hosts, side by side."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from kvmsev.cli.style import Style, table
from kvmsev.host.config import HostConfig
from kvmsev.host.report import boot_report
from kvmsev.scenario import runner, schema

#: The guest scenarios the demo runs (label, file, kernels as (label, preset, patches)). They ship
#: with the package and examples/ links to them, so the demo and the examples cannot drift apart.
GUEST_CASES: tuple[tuple[str, str, tuple[tuple[str, str, tuple[str, ...]], ...]], ...] = (
    (
        "recycled ASID, reused VMCB page, first entry on CPU 0",
        "first-run-flush.yaml",
        (
            ("v5.12", "v5.12", ()),
            ("v5.13", "v5.13", ()),
            ("v5.13 + both 5.14 fixes", "v5.13", ("off-by-one-fix", "last-vmentry-cpu-minus-one")),
        ),
    ),
    (
        "vCPU run as a plain VM before KVM_SEV_INIT",
        "vcpu-before-init-5.12.yaml",
        (
            ("v5.12", "v5.12", ()),
            ("v5.13", "v5.13", ()),
            ("v5.12 + off-by-one-fix", "v5.12", ("off-by-one-fix",)),
        ),
    ),
    (
        "KVM_RUN before LAUNCH_FINISH (*)",
        "early-run-lost-flush.yaml",
        (
            ("v5.13", "v5.13", ()),
            ("v5.13 + both 5.14 fixes", "v5.13", ("off-by-one-fix", "last-vmentry-cpu-minus-one")),
        ),
    ),
)


def builtin_scenario(name: str) -> dict[str, Any]:
    """A scenario shipped with the package (``examples/`` links to the same files)."""
    text = resources.files("kvmsev.scenario").joinpath("builtin", name).read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


#: (label, profile, extra BIOS, extra params) -- a distribution kernel config, default modprobe.
CASES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Naples 7551P", "epyc-7551p", (), ()),
    ("Milan 7763", "epyc-7763", (), ()),
    ("Milan 7763, sev=1 sev_es=1", "epyc-7763", (), ("kvm_amd.sev=1", "kvm_amd.sev_es=1")),
    (
        "Milan 7763, ES limit 100, sev=1 sev_es=1",
        "epyc-7763",
        ("sev_es_asid_space_limit=100",),
        ("kvm_amd.sev=1", "kvm_amd.sev_es=1"),
    ),
    ("Genoa 9654, ES limit 100", "epyc-9654", ("sev_es_asid_space_limit=100",), ()),
    ("Genoa 9654, npt=0 sev=1", "epyc-9654", (), ("kvm_amd.npt=0", "kvm_amd.sev=1")),
    ("Milan 7763, BIOS SMEE off", "epyc-7763", ("smee=off",), ()),
    ("Ryzen 9 3950X, sev=1", "ryzen-3950x", (), ("kvm_amd.sev=1",)),
)


def _cell(report: dict[str, object], style: Style) -> list[str]:
    if not report["loaded"]:
        return [style(f"load: {report['load_error']}", "red"), "", "", "", ""]
    sev, es = report["sev_enabled"], report["sev_es_enabled"]
    sysfs = report["sysfs"]
    assert isinstance(sysfs, dict)
    leaf = report["supported_cpuid_8000001f"]
    assert isinstance(leaf, dict)
    unload = report["unload"]
    assert isinstance(unload, dict)
    if unload["flushed"]:
        failed = [c for c in unload["firmware"] if c["ret"]]
        flush = style("DF_FLUSH failed", "red") if failed else "flush"
    else:
        flush = "-"
    return [
        style.yes_no(bool(sev)) + "/" + style.yes_no(bool(es)),
        f"{sysfs.get('sev', '-')}/{sysfs.get('sev_es', '-')}",
        f"{leaf['eax']:#x}",
        str(report["max_sev_asid"] if sev else "-"),
        flush,
    ]


def demo(style: Style) -> str:
    rows: list[list[str]] = []
    for label, profile, bios, params in CASES:
        for kernel in ("v5.12", "v5.13"):
            report = boot_report(
                HostConfig(profile=profile, kernel=kernel, bios=bios, params=params), unload=True
            )
            rows.append([label if kernel == "v5.12" else "", kernel, *_cell(report, style)])
    headers = [
        "host (distribution kernel config)",
        "kernel",
        "SEV/ES",
        "sysfs sev/es",
        "CPUID EAX",
        "max ASID",
        "unload",
    ]
    intro = style(
        "kvmsev: what kvm_amd decides about SEV, before (v5.12) and after (v5.13) "
        "'KVM: SVM: Misc SEV cleanups'",
        "bold",
    )
    notes = (
        "SEV/ES: enabled after module load. sysfs: /sys/module/kvm_amd/parameters/{sev,sev_es}.\n"
        "CPUID EAX: leaf 0x8000001F EAX from KVM_GET_SUPPORTED_CPUID. unload: cache flush at rmmod.\n"
        "Try: kvmsev boot --profile epyc-7763 --kernel v5.12 --param kvm_amd.sev=1 --unload"
    )
    return f"{intro}\n\n{table(rows, headers)}\n\n{notes}\n\n{guest_demo(style)}"


def _sev_entries(report: dict[str, Any]) -> str:
    """For each of guest c's VM entries after it became an SEV guest: who asked for a flush, and
    whether the failed VMRUN lost it."""
    steps = report["steps"]
    init = next(s["step"] for s in steps if s["op"] == "sev_init" and s["vm"] == "c")
    parts = []
    for s in steps[init:]:
        if s["op"] != "vcpu_run" or s["vm"] != "c":
            continue
        result = s["result"] or {}
        by = " + ".join(result.get("tlb_flush_by", [])) or "none"
        parts.append(by if result.get("entered") else f"{by} (lost)")
    return "; then ".join(parts)


def guest_demo(style: Style) -> str:
    """Guest runs: which flush protects a recycled ASID's first entry, kernel by kernel."""
    rows = []
    for label, name, kernels in GUEST_CASES:
        data = builtin_scenario(name)
        for i, (kernel_label, preset, apply) in enumerate(kernels):
            host = {**data["host"], "kernel": preset, "apply": list(apply), "params": ["kvm_amd.sev=1"]}
            report = runner.run(schema.parse({"host": host, "steps": data["steps"]}, name))
            init = next(s for s in report["steps"] if s["op"] == "sev_init" and s["vm"] == "c")
            entry = f"KVM_SEV_INIT: -{init['errno']}" if init["ret"] else _sev_entries(report)
            broken = [v for v in report["invariants"]["violations"] if v["invariant"] == "tlb_isolation"]
            verdict = style("stale TLB entries used", "red") if broken else style("isolated", "green")
            rows.append([label if i == 0 else "", kernel_label, entry, verdict])
    intro = style(
        "Guest runs: guest c recycles guest a's ASID; who flushes its TLB entries on c's entry", "bold"
    )
    notes = (
        "(*) assumes a VMRUN that fails on a not-yet-valid ASID performs no TLB flush (undocumented).\n"
        "Replay any of them: kvmsev run examples/first-run-flush.yaml | vcpu-before-init-5.12.yaml | "
        "early-run-lost-flush.yaml"
    )
    headers = ["case", "kernel", "flush requests on c's SEV entries", "tlb_isolation"]
    return f"{intro}\n\n{table(rows, headers)}\n\n{notes}"
