"""The human-readable trace of a scenario run."""

from __future__ import annotations

from typing import Any

from kvmsev.cli.style import Style


def _event(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "fw":
        status = e["status"] if e["status"] is not None else f"ret {e['ret']}"
        return f"fw {e['cmd']} -> {status}"
    if kind == "wbinvd":
        cpus = e["cpus"]
        span = (
            f"{cpus[0]}-{cpus[-1]}"
            if len(cpus) > 3 and cpus == list(range(cpus[0], cpus[-1] + 1))
            else ",".join(map(str, cpus))
        )
        return f"WBINVD on CPUs {span}"
    if kind == "tlb_flush":
        which = "every ASID" if e["asid"] is None else f"ASID {e['asid']}"
        text = f"TLB flush {which} on CPU {e['cpu']} ({' + '.join(e['by'])})"
        return text if e["performed"] else f"{text} lost: VMRUN failed"
    return f"dmesg: {e['text']}"


def _result(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    parts = []
    for key, value in result.items():
        if key == "measurement":
            value = str(value)[:16] + "..."
        elif "uaddr" in key and isinstance(value, int):
            value = f"{value:#x}"
        parts.append(f"{key}={value}")
    return "  " + " ".join(parts)


def _boot(name: str, boot: dict[str, Any], style: Style) -> list[str]:
    out = [style(f"{name}: {boot['profile']}, {boot['cpus']} CPUs, Linux {boot['kernel']}", "bold")]
    if not boot["loaded"]:
        out.append(style(f"  kvm_amd failed to load: {boot['load_error']}", "red"))
    else:
        out.append(
            f"  SEV {'on' if boot['sev_enabled'] else 'off'}, "
            f"SEV-ES {'on' if boot['sev_es_enabled'] else 'off'}, "
            f"ASIDs {boot['min_sev_asid']}..{boot['max_sev_asid']}"
        )
    return out


def _final(final: dict[str, Any]) -> str:
    fw = final["firmware"]
    kvm = final.get("kvm")
    if kvm is None:
        return f"kvm_amd not loaded; firmware {fw['state']}"
    return (
        f"ASIDs allocated {kvm['sev_asid_bitmap']}, awaiting reclaim {kvm['sev_reclaim_asid_bitmap']}; "
        f"firmware {fw['state']}, non-clean ASIDs {fw['asids']}"
    )


def trace(report: dict[str, Any], style: Style) -> str:
    hosts = report.get("hosts")
    out: list[str] = []
    if hosts is None:
        out += _boot(report["scenario"], report["boot"], style)
    else:
        out.append(style(f"{report['scenario']}: {len(hosts)} hosts", "bold"))
        for name, host in hosts.items():
            out += ["  " + line for line in _boot(name, host["boot"], style)]
    for step in report["steps"]:
        ret = step["ret"]
        status = style("ok", "green") if ret == 0 else style(f"{ret} {step['errno']}", "red")
        if step["fw_error"]:
            status += style(f" fw {step['fw_error']['name']} ({step['fw_error']['code']:#x})", "yellow")
        target = f" {step['vm']}" if step["vm"] else ""
        where = f"[{step['host']}] " if "host" in step else ""
        out.append(f"{step['step']:>3} {where}{step['op']}{target}: {status}{_result(step['result'])}")
        for e in step["events"]:
            out.append(style(f"      {_event(e)}", "dim"))
        for v in step["violations"]:
            out.append(style(f"      VIOLATION {v['invariant']}: {v['detail']}", "red"))
    if report.get("crashed"):
        ran = len(report["steps"])
        out.append(style(f"  kernel oops: {report['crashed']}", "red"))
        if ran < report.get("planned_steps", ran):
            out.append(style(f"  the steps after step {ran - 1} were not run", "red"))
    violations = report["invariants"]["violations"]
    out.append("")
    if violations:
        out.append(style(f"{len(violations)} invariant violation(s)", "red"))
        for v in violations:
            at = "at boot" if v["step"] is None else f"step {v['step']}"
            host = f"{v['host']}, " if hosts is not None else ""
            out.append(f"  {v['invariant']} ({host}{at}): {v['detail']}")
    else:
        out.append(
            style(f"all {len(report['invariants']['checked'])} invariants held after every step", "green")
        )
    if hosts is None:
        out.append(f"final: {_final(report['final'])}")
    else:
        out += [f"final {name}: {_final(host['final'])}" for name, host in hosts.items()]
    return "\n".join(out)
