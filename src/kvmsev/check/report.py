"""``kvmsev check`` output: the JSON contract and the human summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvmsev.check import counterexample
from kvmsev.check.explore import SOMETIMES, Result, statement
from kvmsev.cli.style import Style

SCHEMA = "kvmsev.check/1"


def as_dict(result: Result, out_dir: Path | None) -> dict[str, Any]:
    violations = []
    for v in result.violations:
        scenario = counterexample.write(result.config, v, out_dir) if out_dir is not None else None
        violations.append(
            {
                "invariant": v.invariant,
                "statement": statement(v.invariant),
                "detail": v.detail,
                "trace": [
                    a.step() | ({"sev_vmcbs_garbage": list(a.garbage)} if a.garbage else {}) for a in v.path
                ],
                "scenario": None if scenario is None else str(scenario),
            }
        )
    return {
        "schema": SCHEMA,
        "states": result.states,
        "transitions": result.transitions,
        "depth": result.depth,
        "complete": result.complete,
        "limit": result.limit,
        "seconds": round(result.seconds, 3),
        "bounds": {
            "depth": result.bounds.depth,
            "vms": result.bounds.vms,
            "vcpus": result.bounds.vcpus,
            "faults": result.bounds.faults,
            "early_runs": result.bounds.early_runs,
            "max_states": result.bounds.max_states,
        },
        "invariants": list(result.invariants),
        "violations": violations,
        "sometimes": [
            {"property": k, "statement": SOMETIMES[k], "reached": v} for k, v in result.sometimes.items()
        ],
    }


def human(report: dict[str, Any], style: Style) -> str:
    rate = report["states"] / report["seconds"] if report["seconds"] else 0.0
    if report["complete"]:
        scope = f"complete ({report['depth']} deep)"
    elif report["limit"] == "max_states":
        scope = f"stopped at the state budget (--max-states) during depth {report['depth']}"
    else:
        scope = f"bounded at depth {report['depth']}"
    out = [
        style(
            f"{report['states']} states, {report['transitions']} transitions, {scope}, "
            f"{report['seconds']:.1f} s ({rate:,.0f} states/s)",
            "bold",
        )
    ]
    if not report["violations"]:
        where = "in every reachable state" if report["complete"] else "within the bound"
        out.append(style(f"every invariant holds {where}", "green"))
    for v in report["violations"]:
        out.append("")
        out.append(style(f"BROKEN {v['invariant']}", "red") + f": {v['statement']}")
        out.append(f"  {v['detail']}")
        if not v["trace"]:
            out.append("  already at boot")
        for i, step in enumerate(v["trace"]):
            args = " ".join(f"{k}={val}" for k, val in step.items() if k != "op")
            out.append(f"  {i:>2}. {step['op']} {args}".rstrip())
        if v["scenario"]:
            out.append(style(f"  replay: kvmsev run {v['scenario']}", "cyan"))
    out.append("")
    for s in report["sometimes"]:
        mark = style("reached", "green") if s["reached"] else style("NOT reached", "yellow")
        out.append(f"sometimes {s['property']}: {mark} ({s['statement']})")
    return "\n".join(out)
