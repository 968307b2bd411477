"""``kvmsev boot``: boot a modeled host, load kvm_amd, report what KVM decided."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli import render
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_host_options, add_json, host_config
from kvmsev.cli.style import Style
from kvmsev.host.report import boot_report


def add(sub: Any) -> None:
    p = sub.add_parser("boot", help="boot a modeled host, load kvm_amd, report what KVM decides")
    add_host_options(p)
    p.add_argument("--unload", action="store_true", help="unload kvm_amd right after loading and report it")
    p.add_argument(
        "--export-root",
        metavar="DIR",
        help="also write the host in the recorded-host format (kvmsev probe --root) into DIR, "
        "which must not exist yet or be empty",
    )
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    report = boot_report(host_config(args), unload=args.unload, export_root=args.export_root)
    emit(report, args.json, render.boot(report, style))
    return 0
