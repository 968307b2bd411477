"""``kvmsev cpuid decode``: the four registers of CPUID Fn8000_001F, field by field."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli import render
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import Parser, add_json
from kvmsev.cli.style import Style
from kvmsev.hw.cpuid import Cpuid8000001F, parse_register

SCHEMA = "kvmsev.cpuid/1"


def add(sub: Any) -> None:
    p = sub.add_parser("cpuid", help="CPUID 0x8000001F tools")
    csub = p.add_subparsers(dest="cpuid_command", required=True, parser_class=Parser)
    d = csub.add_parser("decode", help="decode the four registers of leaf 0x8000001F")
    for reg in ("EAX", "EBX", "ECX", "EDX"):
        d.add_argument(reg, help=f"{reg} value (0x-hex, 8-digit hex or decimal)")
    add_json(d, "docs/json.md")
    d.set_defaults(execute=execute, parser=d)


def execute(args: argparse.Namespace, style: Style) -> int:
    regs = [parse_register(getattr(args, r), r) for r in ("EAX", "EBX", "ECX", "EDX")]
    decoded = {"schema": SCHEMA, **Cpuid8000001F(*regs).decode()}
    emit(decoded, args.json, render.cpuid(decoded, style))
    return 0
