"""``kvmsev patches``: the modeled commits and the behaviour switch each one sets."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli import render
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style
from kvmsev.kvm.patches import PATCHES

SCHEMA = "kvmsev.patches/1"


def add(sub: Any) -> None:
    p = sub.add_parser("patches", help="list the modeled patches and the behaviour each one switches")
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    items = [p.as_dict() for p in PATCHES]
    emit({"schema": SCHEMA, "patches": items}, args.json, render.patches(items, style))
    return 0
