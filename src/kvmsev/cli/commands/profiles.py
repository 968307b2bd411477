"""``kvmsev profiles``: the built-in CPU profiles."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli import render
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style
from kvmsev.hw import profiles

SCHEMA = "kvmsev.profiles/1"


def add(sub: Any) -> None:
    p = sub.add_parser("profiles", help="list the built-in CPU profiles")
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    items = [profiles.load(n).summary() for n in profiles.builtin_names()]
    emit({"schema": SCHEMA, "profiles": items}, args.json, render.profiles(items, style))
    return 0
