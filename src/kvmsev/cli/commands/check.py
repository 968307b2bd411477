"""``kvmsev check``: explore every sequence of entry points within bounds; check the invariants."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kvmsev.check import defaults, report
from kvmsev.check.actions import VM_NAMES, Bounds
from kvmsev.check.explore import explore
from kvmsev.cli.commands import invariant_options
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_host_options, add_json, host_config, number
from kvmsev.cli.style import Style
from kvmsev.errors import InputError
from kvmsev.host.config import resolve
from kvmsev.outdir import check_out_dir

#: what the explorer holds per distinct state, measured on the default host (``benchmarks/check.py``)
BYTES_PER_STATE = 2300
#: above this estimate a search warns before it starts
WARN_BYTES = 1 << 30


def add(sub: Any) -> None:
    p = sub.add_parser(
        "check", help="explore every sequence of entry points up to a bound; check the invariants"
    )
    add_host_options(p)
    p.add_argument(
        "--depth",
        type=number,
        default=defaults.DEPTH,
        help=f"moves per path (default {defaults.DEPTH}: until no new state on small hosts)",
    )
    p.add_argument(
        "--max-states",
        type=number,
        default=defaults.MAX_STATES,
        help=f"stop once this many distinct states are known (default {defaults.MAX_STATES:,}, "
        f"about {defaults.MAX_STATES * BYTES_PER_STATE >> 20} MiB)",
    )
    p.add_argument("--vms", type=number, default=1, help="VMs alive at once (default 1)")
    p.add_argument("--vcpus", type=number, default=1, help="vCPUs per VM (default 1)")
    p.add_argument("--faults", action="store_true", help="also explore allocation and firmware failures")
    p.add_argument("--no-early-runs", action="store_true", help="do not run vCPUs before LAUNCH_FINISH")
    invariant_options.add(p)
    p.add_argument(
        "--out", metavar="DIR", help="write each counterexample as a scenario file in DIR (created if needed)"
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="print a line per explored level on stderr (a terminal gets a live line without it)",
    )
    add_json(p, "docs/check.md")
    p.set_defaults(execute=execute, parser=p)


def _bounds(args: argparse.Namespace) -> Bounds:
    for option, value, highest in (
        ("--depth", args.depth, defaults.MAX_DEPTH),
        ("--vms", args.vms, len(VM_NAMES)),
        ("--vcpus", args.vcpus, 4),
        ("--max-states", args.max_states, None),
    ):
        if value < 1 or (highest is not None and value > highest):
            limits = "must be at least 1" if highest is None else f"is outside 1..{highest}"
            raise InputError(option, f"{value} {limits}")
    return Bounds(
        depth=args.depth,
        vms=args.vms,
        vcpus=args.vcpus,
        faults=args.faults,
        early_runs=not args.no_early_runs,
        max_states=args.max_states,
    )


def _progress(args: argparse.Namespace) -> tuple[Callable[[int, int, int], None] | None, bool]:
    """A per-level reporter: a line each with ``--progress``, one rewritten line on a terminal."""
    if args.progress:

        def lines(depth: int, states: int, frontier: int) -> None:
            print(f"depth {depth}: {states} states, frontier {frontier}", file=sys.stderr, flush=True)

        return lines, False
    if sys.stderr.isatty() and not args.json:

        def live(depth: int, states: int, frontier: int) -> None:
            print(
                f"\rdepth {depth}: {states} states, frontier {frontier}   ",
                end="",
                file=sys.stderr,
                flush=True,
            )

        return live, True
    return None, False


def execute(args: argparse.Namespace, style: Style) -> int:
    config = defaults.host(host_config(args, default_profile=defaults.PROFILE), bool(args.profile))
    resolve(config)
    bounds = _bounds(args)
    invariants = invariant_options.chosen(args)
    out = check_out_dir(args.out, "--out") if args.out is not None else None
    memory = bounds.max_states * BYTES_PER_STATE if bounds.max_states else 0
    if memory > WARN_BYTES:
        print(
            f"kvmsev: note: up to {bounds.max_states:,} states may take about {memory / (1 << 30):.1f} GiB "
            "of memory",
            file=sys.stderr,
        )
    progress, live = _progress(args)
    result = explore(config, bounds, progress, invariants=invariants)
    if live:
        print(file=sys.stderr)
    data = report.as_dict(result, out)
    emit(data, args.json, report.human(data, style))
    return 0 if result.holds else 1
