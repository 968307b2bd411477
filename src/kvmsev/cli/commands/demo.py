"""``kvmsev demo``: v5.12 and v5.13 side by side on a few real hosts, and the guest-run table."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli import demo as tables
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style


def add(sub: Any) -> None:
    p = sub.add_parser("demo", help="v5.12 vs v5.13 side by side on a few real hosts")
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    data = tables.demo_data()
    emit(data, args.json, tables.render(data, style))
    return 0
