"""``kvmsev probe``: read this host or a recorded one, diagnose SEV, compare with the model."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style
from kvmsev.outdir import check_new_tree
from kvmsev.probe import render
from kvmsev.probe import run as probe_run


def add(sub: Any) -> None:
    p = sub.add_parser(
        "probe", help="read this host (or a recorded one), diagnose SEV, compare with the model"
    )
    p.add_argument("--root", metavar="DIR", help="read a recorded host from DIR instead of this machine")
    p.add_argument(
        "--capture",
        metavar="DIR",
        help="record this host (or --root) into DIR, which must not exist yet or be empty",
    )
    add_json(p, "docs/probe.md")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    root = "/" if args.root is None else probe_run.check_root(args.root)
    if args.capture is not None:
        inputs = () if args.root is None else (root,)
        probe_run.capture(check_new_tree(args.capture, "--capture", inputs=inputs), root)
    probed = probe_run.probe(root)
    emit(probed, args.json, render.tree(probed, style))
    return 1 if probed["summary"]["failed"] else 0
