"""``make demo``: what v5.12 and v5.13 decide on a few real hosts, side by side."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from kvmsev.cli.style import Style, table
from kvmsev.host.config import HostConfig
from kvmsev.host.report import boot_report
from kvmsev.scenario import runner, schema

#: The scenario the guest demo runs on four kernels. It ships with the package, and
#: examples/tlb-stale-vmcb-5.13.yaml links to it, so the demo and the example cannot drift apart.
RECYCLE_SCENARIO = "tlb-stale-vmcb-5.13.yaml"


def recycle_steps() -> list[dict[str, Any]]:
    """Guest a runs on CPU 0 and is destroyed; guest c recycles its ASID and gets its VMCB page
    back, then enters on CPU 0."""
    text = resources.files("kvmsev.scenario").joinpath("builtin", RECYCLE_SCENARIO).read_text()
    steps: list[dict[str, Any]] = yaml.safe_load(text)["steps"]
    return steps


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


def guest_demo(style: Style) -> str:
    """A short guest run: ASID recycling with a reused VMCB page, on four kernels."""
    rows = []
    steps = recycle_steps()
    for label, kernel, apply in (
        ("v5.12", "v5.12", ()),
        ("v5.13", "v5.13", ()),
        ("v5.13 + off-by-one-fix (5.14)", "v5.13", ("off-by-one-fix",)),
        ("v5.13 + last-vmentry-cpu-minus-one (5.14)", "v5.13", ("last-vmentry-cpu-minus-one",)),
    ):
        host = {"profile": "lab", "kernel": kernel, "apply": list(apply), "params": ["kvm_amd.sev=1"]}
        report = runner.run(schema.parse({"host": host, "steps": steps}, "recycle"))
        last = report["steps"][-1]["result"]
        broken = [v for v in report["invariants"]["violations"] if v["invariant"] == "tlb_isolation"]
        verdict = style("stale TLB entries used", "red") if broken else style("isolated", "green")
        rows.append([label, "yes" if last["tlb_flush"] else style("no", "red"), verdict])
    intro = style(
        "Guest run: guest c recycles guest a's ASID, gets a's VMCB page back, first enters on CPU 0", "bold"
    )
    return f"{intro}\n\n{table(rows, ['kernel', 'TLB flush on first entry', 'tlb_isolation'])}\n\n" + (
        "Replay it step by step: kvmsev run examples/tlb-stale-vmcb-5.13.yaml"
    )
