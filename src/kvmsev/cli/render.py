"""Human-readable renderings of the reports (the JSON forms are the contract; these are views)."""

from __future__ import annotations

from typing import Any

from kvmsev.cli.style import Style, table
from kvmsev.hw.cpuid import Cpuid8000001F


def _leaf_line(style: Style, leaf: dict[str, int] | None) -> str:
    if leaf is None:
        return style("not reported (no /dev/kvm)", "dim")
    value = Cpuid8000001F(**leaf)
    names = value.features
    feats = " ".join(names[:6]) + (f" +{len(names) - 6} more" if len(names) > 6 else "") or "none"
    return f"{value.hex()}  features: {feats}; C-bit {value.c_bit}; ECX {value.ecx}; EDX {value.edx}"


def _range(r: Any) -> str:
    return "-" if r is None else f"{r[0]}..{r[1]} ({r[1] - r[0] + 1})"


def boot(report: dict[str, Any], style: Style) -> str:
    out: list[str] = []
    patches = report["patches"]
    mods = "".join(f" +{p}" for p in patches["applied"]) + "".join(f" -{p}" for p in patches["reverted"])
    out.append(
        style(
            f"{report['model_name']} ({report['profile']}), {report['cpus']} CPUs, "
            f"Linux {report['kernel']}{mods}",
            "bold",
        )
    )
    out.append(f"  host CPUID 0x8000001F  {_leaf_line(style, report['host_cpuid_8000001f'])}")
    flags = " ".join(report["host_cpu_flags"]) or "none"
    out.append(f"  /proc/cpuinfo flags    {flags}")
    fw = report["firmware"]
    if fw["present"]:
        cmds = ", ".join(f"{c['cmd']}={c['status'] or c['ret']}" for c in fw["boot_commands"])
        out.append(f"  SEV firmware           present; at boot: {cmds}")
    else:
        out.append(f"  SEV firmware           {style('absent', 'yellow')} (no /dev/sev)")
    out.append("")
    if not report["loaded"]:
        out.append(style(f"modprobe kvm_amd failed: {report['load_error']}", "red"))
    else:
        out.append(style("kvm_amd loaded", "green"))
        out.append(
            f"  SEV     {style.yes_no(report['sev_enabled'])}   ASIDs {_range(report['sev_asid_range'])}"
        )
        out.append(
            f"  SEV-ES  {style.yes_no(report['sev_es_enabled'])}   "
            f"ASIDs {_range(report['sev_es_asid_range'])}"
        )
        out.append(f"  NPT     {style.yes_no(report['npt_enabled'])}")
        out.append(f"  min_sev_asid {report['min_sev_asid']}, max_sev_asid {report['max_sev_asid']}")
        vm = report["sev_vmcbs"]
        if vm is not None:
            zeroed = "zeroed" if vm["zeroed"] else style("uninitialised", "yellow")
            out.append(f"  sev_vmcbs: {vm['cpus']} CPUs x {vm['entries']} entries, {zeroed}")
        out.append(
            f"  KVM_GET_SUPPORTED_CPUID 0x8000001F  {_leaf_line(style, report['supported_cpuid_8000001f'])}"
        )
    out.append("")
    out.append(style("/sys/module/kvm_amd/parameters", "bold"))
    if report["sysfs"]:
        for name, text in report["sysfs"].items():
            out.append(f"  {name:8} {text}")
    else:
        out.append(style("  (no files)", "dim"))
    misc = report["misc_capacity_file"]
    out.append(style("/sys/fs/cgroup/misc.capacity", "bold"))
    if misc is None:
        out.append(style("  (no misc controller)", "dim"))
    else:
        out.extend(f"  {line}" for line in misc.splitlines() or [style("(empty)", "dim")])
    current = report["misc_current_file"]
    if current is not None:
        out.append(style("/sys/fs/cgroup/misc.current", "bold"))
        out.extend(f"  {line}" for line in current.splitlines() or [style("(empty)", "dim")])
    out.append(style("dmesg", "bold"))
    out.extend(f"  {line}" for line in report["boot_dmesg"] + report["dmesg"])
    unload = report.get("unload")
    if unload is not None:
        out.append("")
        out.append(style("rmmod kvm_amd", "bold"))
        if unload["oops"]:
            out.append("  " + style(unload["oops"], "red"))
        flushed = "WBINVD on all CPUs + DF_FLUSH" if unload["flushed"] else "no cache flush"
        out.append(f"  {flushed}")
        for cmd in unload["firmware"]:
            out.append(f"  firmware {cmd['cmd']}: ret {cmd['ret']}, status {cmd['status']}")
        out.extend(f"  dmesg: {line}" for line in unload["dmesg"])
        leaked = unload["leaked_bytes"]
        out.append(
            f"  leaked: {style(str(leaked) + ' bytes', 'red') if leaked else '0 bytes'}"
            + (f" ({', '.join(unload['leaked'])})" if leaked else "")
        )
    return "\n".join(out)


def cpuid(decoded: dict[str, Any], style: Style) -> str:
    leaf = Cpuid8000001F(decoded["eax"], decoded["ebx"], decoded["ecx"], decoded["edx"])
    rows = [
        ["EAX", f"{leaf.eax:#010x}", " ".join(decoded["features"]) or "none"],
        [
            "EBX",
            f"{leaf.ebx:#010x}",
            f"C-bit {decoded['c_bit']}, PA reduction {decoded['phys_addr_reduction']}, "
            f"VMPLs {decoded['num_vmpls']}",
        ],
        ["ECX", f"{leaf.ecx:#010x}", f"max_sev_asid {leaf.ecx}"],
        ["EDX", f"{leaf.edx:#010x}", f"min_sev_asid {leaf.edx}"],
    ]
    ranges = (
        f"SEV ASIDs {_range(decoded['sev_asid_range'])}, SEV-ES ASIDs {_range(decoded['sev_es_asid_range'])}"
    )
    return table(rows, ["reg", "value", "meaning"]) + "\n" + ranges


def profiles(items: list[dict[str, Any]], style: Style) -> str:
    rows = []
    for p in items:
        leaf = Cpuid8000001F(**p["cpuid_8000001f"])
        rows.append(
            [
                p["name"],
                p["model_name"],
                p["codename"],
                str(p["threads"]),
                leaf.hex(),
                "yes" if p["sev_firmware"] else style("no", "yellow"),
                ", ".join(p["bios_options"]) or "-",
            ]
        )
    return table(rows, ["profile", "model", "codename", "CPUs", "CPUID 0x8000001F", "SEV fw", "BIOS options"])


def patches(items: list[dict[str, Any]], style: Style) -> str:
    rows = []
    for p in items:
        kind = {
            "behaviour": style("behaviour", "yellow"),
            "refactor": "refactor",
            "cosmetic": style("cosmetic", "dim"),
        }[p["kind"]]
        rows.append([p["number"], p["name"], p["commit"], kind, p["subject"]])
    text = table(rows, ["#", "switch", "commit", "kind", "subject"])
    notes = [f"  {p['name']}: {p['change']}" for p in items]
    return text + "\n\nWhat each changes:\n" + "\n".join(notes)
