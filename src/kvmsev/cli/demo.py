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


SCHEMA = "kvmsev.demo/1"


def _host_row(label: str, kernel: str, report: dict[str, Any]) -> dict[str, Any]:
    """One host under one kernel, as the demo's JSON states it."""
    row: dict[str, Any] = {"host": label, "kernel": kernel, "loaded": report["loaded"]}
    if not report["loaded"]:
        return row | {"load_error": report["load_error"]}
    unload = report["unload"]
    leaf = report["supported_cpuid_8000001f"]
    return row | {
        "sev_enabled": report["sev_enabled"],
        "sev_es_enabled": report["sev_es_enabled"],
        "sysfs_sev": report["sysfs"].get("sev"),
        "sysfs_sev_es": report["sysfs"].get("sev_es"),
        "supported_cpuid_eax": leaf["eax"],
        "max_sev_asid": report["max_sev_asid"] if report["sev_enabled"] else None,
        "unload_flush": unload["flushed"],
        "unload_df_flush_failed": any(c["ret"] for c in unload["firmware"]),
    }


def _sev_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Guest c's VM entries after it became an SEV guest: who asked for a flush, and whether the
    entry happened (a failed VMRUN loses the request)."""
    steps = report["steps"]
    init = next(s["step"] for s in steps if s["op"] == "sev_init" and s["vm"] == "c")
    return [
        {
            "flush_by": list((s["result"] or {}).get("tlb_flush_by", [])),
            "entered": (s["result"] or {}).get("entered"),
        }
        for s in steps[init:]
        if s["op"] == "vcpu_run" and s["vm"] == "c"
    ]


def _guest_row(
    label: str, kernel_label: str, name: str, preset: str, apply: tuple[str, ...]
) -> dict[str, Any]:
    data = builtin_scenario(name)
    host = {**data["host"], "kernel": preset, "apply": list(apply), "params": ["kvm_amd.sev=1"]}
    report = runner.run(schema.parse({"host": host, "steps": data["steps"]}, name))
    init = next(s for s in report["steps"] if s["op"] == "sev_init" and s["vm"] == "c")
    broken = [v for v in report["invariants"]["violations"] if v["invariant"] == "tlb_isolation"]
    return {
        "case": label,
        "kernel": kernel_label,
        "scenario": f"examples/{name}",
        "sev_init_errno": init["errno"],
        "entries": [] if init["ret"] else _sev_entries(report),
        "tlb_isolation": not broken,
    }


def demo_data() -> dict[str, Any]:
    """Everything ``kvmsev demo`` shows, as its ``--json`` document."""
    hosts = [
        _host_row(
            label,
            kernel,
            boot_report(HostConfig(profile=profile, kernel=kernel, bios=bios, params=params), unload=True),
        )
        for label, profile, bios, params in CASES
        for kernel in ("v5.12", "v5.13")
    ]
    guests = [
        _guest_row(label, kernel_label, name, preset, apply)
        for label, name, kernels in GUEST_CASES
        for kernel_label, preset, apply in kernels
    ]
    return {"schema": SCHEMA, "hosts": hosts, "guest_runs": guests}


def _host_cells(row: dict[str, Any], style: Style) -> list[str]:
    if not row["loaded"]:
        return [style(f"load: {row['load_error']}", "red"), "", "", "", ""]
    if row["unload_flush"]:
        flush = style("DF_FLUSH failed", "red") if row["unload_df_flush_failed"] else "flush"
    else:
        flush = "-"
    return [
        style.yes_no(row["sev_enabled"]) + "/" + style.yes_no(row["sev_es_enabled"]),
        f"{row['sysfs_sev'] or '-'}/{row['sysfs_sev_es'] or '-'}",
        f"{row['supported_cpuid_eax']:#x}",
        "-" if row["max_sev_asid"] is None else str(row["max_sev_asid"]),
        flush,
    ]


def _entries_text(row: dict[str, Any]) -> str:
    if row["sev_init_errno"]:
        return f"KVM_SEV_INIT: -{row['sev_init_errno']}"
    parts = []
    for entry in row["entries"]:
        by = " + ".join(entry["flush_by"]) or "none"
        parts.append(by if entry["entered"] else f"{by} (lost)")
    return "; then ".join(parts)


def render(data: dict[str, Any], style: Style) -> str:
    rows: list[list[str]] = []
    previous = None
    for row in data["hosts"]:
        rows.append([row["host"] if row["host"] != previous else "", row["kernel"], *_host_cells(row, style)])
        previous = row["host"]
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
    return f"{intro}\n\n{table(rows, headers)}\n\n{notes}\n\n{_render_guests(data['guest_runs'], style)}"


def _render_guests(guests: list[dict[str, Any]], style: Style) -> str:
    """Guest runs: which flush protects a recycled ASID's first entry, kernel by kernel."""
    rows = []
    previous = None
    for row in guests:
        verdict = (
            style("isolated", "green") if row["tlb_isolation"] else style("stale TLB entries used", "red")
        )
        rows.append(
            [row["case"] if row["case"] != previous else "", row["kernel"], _entries_text(row), verdict]
        )
        previous = row["case"]
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
