"""``--invariant`` / ``--skip-invariant``, shared by the commands that check invariants."""

from __future__ import annotations

import argparse

from kvmsev.check.invariants import ALL, select


def add(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--invariant",
        action="append",
        default=[],
        metavar="NAME",
        help=f"check only this invariant (repeatable; names: {', '.join(ALL)})",
    )
    p.add_argument(
        "--skip-invariant",
        action="append",
        default=[],
        metavar="NAME",
        help="leave this invariant out (repeatable)",
    )


def chosen(args: argparse.Namespace) -> tuple[str, ...]:
    return select(args.invariant, args.skip_invariant)
