"""``kvmsev run FILE``: run a scenario and print its trace; exit 1 when an invariant breaks."""

from __future__ import annotations

import argparse
from typing import Any

from kvmsev.cli.commands import invariant_options
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_host_options, add_json, host_options, number
from kvmsev.cli.style import Style
from kvmsev.host.config import resolve
from kvmsev.scenario import render, runner, schema


def add(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a scenario file (YAML or JSON), print its trace; exit 1 if an invariant breaks",
        description="Host options given here override the scenario's (every host of it).",
    )
    p.add_argument("file", help="scenario file (docs/scenarios.md)")
    add_host_options(p, defaults=False)
    p.add_argument("--seed", type=number, help="override the scenario's seed")
    invariant_options.add(p)
    add_json(p, "docs/scenarios.md")
    p.set_defaults(execute=execute, parser=p)


def given(args: argparse.Namespace) -> schema.HostOverride:
    return schema.HostOverride(**host_options(args), seed=args.seed)


def execute(args: argparse.Namespace, style: Style) -> int:
    invariants = invariant_options.chosen(args)
    scenario = schema.override(schema.load(args.file), given(args))
    for config in scenario.hosts.values():
        # the file's hosts were checked as written; what is wrong now comes from the options
        resolve(config)
    report = runner.run(scenario, invariants)
    emit(report, args.json, render.trace(report, style))
    return 1 if report["invariants"]["violations"] or report["crashed"] else 0
