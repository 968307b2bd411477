"""The probe's human output: a tree of checks by category, capacity, and model vs reality."""

from __future__ import annotations

from typing import Any

from kvmsev.cli.style import Style

_COLOURS = {"PASS": "green", "FAIL": "red", "WARN": "yellow", "SKIP": "dim"}


def tree(report: dict[str, Any], style: Style) -> str:
    out: list[str] = []
    category = None
    for t in report["tests"]:
        if t["category"] != category:
            category = t["category"]
            out.append(style(category, "bold"))
        out.append(f"  [ {style(t['status'], _COLOURS[t['status']])} ] {t['name']}: {t['message']}")
        if t["fix_hint"] and t["status"] in ("FAIL", "WARN"):
            out.append(style(f"           fix: {t['fix_hint']}", "cyan"))
    cap = report["capacity"]
    out.append("")
    out.append(
        style(f"Capacity: {cap['sev']} SEV and {cap['sev_es']} SEV-ES guests", "bold") + f" ({cap['source']})"
    )
    model = report["model"]
    out.append("")
    out.append(style("Model vs reality", "bold") + f" (kernel preset {report.get('model_kernel') or '-'})")
    if not model["agree"] and not model["disagree"]:
        out.append("  nothing to compare (not an AMD host, or CPUID 0x8000001F unreadable)")
    for a in model["agree"]:
        out.append(f"  {style('agree', 'green')}     {a['item']}")
    for d in model["disagree"]:
        out.append(
            f"  {style('DISAGREE', 'red')}  {d['item']}: host {d['observed']!r}, model {d['predicted']!r}"
        )
        out.append(style(f"            suspect the {d['suspect']}: {d['why']}", "dim"))
    s = report["summary"]
    out.append("")
    out.append(
        f"{s['total']} checks: {s['passed']} passed, {s['failed']} failed, {s['warned']} warned, "
        f"{s['skipped']} skipped"
    )
    return "\n".join(out)
