"""``kvmsev kernels``: every kernel preset and what changes at each one."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style, table
from kvmsev.kvm.kernels import RELEASES, changes_in
from kvmsev.kvm.later import LATER
from kvmsev.kvm.patches import SERIES_AND_5_13

SCHEMA = "kvmsev.kernels/1"


def add(sub: Any) -> None:
    p = sub.add_parser("kernels", help="list the kernel presets and the changes each one brings")
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def data() -> dict[str, Any]:
    presets = []
    for release in RELEASES:
        if release == "5.12":
            changes: list[dict[str, object]] = []
        elif release == "5.13":
            changes = [p.as_dict() for p in SERIES_AND_5_13 if p.group in ("series", "5.13") and p.field]
        else:
            changes = [p.as_dict() for p in changes_in(release)]
        presets.append({"kernel": f"v{release}", "changes": changes})
    stable = [p.as_dict() for p in LATER if p.group == "stable"]
    return {"schema": SCHEMA, "presets": presets, "stable": stable}


def render(document: dict[str, Any], style: Style) -> str:
    rows = []
    for preset in document["presets"]:
        changes = preset["changes"]
        if preset["kernel"] == "v5.12":
            text = "the base: before 'KVM: SVM: Misc SEV cleanups'"
        elif preset["kernel"] == "v5.13":
            text = (
                f"the series and the other 5.13 SEV changes ({len(changes)} switches; see 'kvmsev patches')"
            )
        else:
            text = ", ".join(f"{c['name']} ({c['commit']})" for c in changes) or style(
                "no modeled change", "dim"
            )
        rows.append([preset["kernel"], text])
    intro = (
        "Each preset is the one above it plus the changes listed; each change is also a switch "
        "(--apply/--revert)."
    )
    later = "".join(
        f"\n  {c['name']} ({c['commit']}, mainline {c['number']}): {c['change']}" for c in document["stable"]
    )
    if later:
        later = f"\n\nMerged after the newest preset and backported to stable trees (in no preset):{later}"
    return f"{table(rows, ['kernel', 'changes modeled'])}{later}\n\n{intro}"


def execute(args: argparse.Namespace, style: Style) -> int:
    document = data()
    emit(document, args.json, render(document, style))
    return 0
