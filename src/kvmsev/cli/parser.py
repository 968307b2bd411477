"""The ``kvmsev`` argument parser: options every command shares, and the number forms.

Each subcommand lives in :mod:`kvmsev.cli.commands` and registers itself here; a usage error is
one line naming the subcommand's help, exit code 2.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from kvmsev import __version__
from kvmsev.host.config import DEFAULT_KERNEL, DEFAULT_PROFILE, HostConfig
from kvmsev.kvm.kernels import NEWEST
from kvmsev.numbers import parse_int

EXIT_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line, point at this (sub)command's help, and exit 2."""

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        """``--opt=--`` gives the value "--": argparse would take it for the end-of-options marker
        and hand over an empty list, which no option means."""
        if action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"kvmsev: error: {message} (see '{self.prog} --help')\n")


def number(text: str) -> int:
    """An option's integer, in the forms :mod:`kvmsev.numbers` accepts everywhere."""
    try:
        return parse_int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_json(p: argparse.ArgumentParser, where: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print the JSON report instead ({where})")


def add_host_options(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """The options that describe a host. ``defaults`` False leaves every option unset (None or
    empty) so that a command can tell what the user gave (``run`` overrides a scenario's host)."""
    g = p.add_argument_group("host")
    g.add_argument(
        "--profile",
        default=None,
        help=f"CPU profile name or .json file (default {DEFAULT_PROFILE}; check: lab with 2 ASIDs; "
        "see 'kvmsev profiles')",
    )
    g.add_argument(
        "--cpuid",
        metavar="EAX:EBX:ECX:EDX",
        help="override CPUID 0x8000001F (0x-hex, 8-digit hex or decimal)",
    )
    g.add_argument(
        "--kernel",
        default=DEFAULT_KERNEL if defaults else None,
        help=f"kernel preset: v5.12 ... v{NEWEST}, one per release (default {DEFAULT_KERNEL}; "
        "see 'kvmsev kernels')",
    )
    repeatable = (
        ("--apply", "PATCH", "apply a patch (repeatable; see 'kvmsev patches')"),
        ("--revert", "PATCH", "revert a patch (repeatable)"),
        ("--param", "kvm_amd.NAME=VALUE", "modprobe option (repeatable)"),
        ("--config", "CONFIG_X=y|n", "Kconfig choice (repeatable)"),
        (
            "--bios",
            "KEY=VALUE",
            "BIOS option: smee, sev_es_asid_space_limit, sev_asid_count, snp, smt (repeatable)",
        ),
        (
            "--fail-alloc",
            "SITE",
            "make an allocation fail: sev_asid_bitmap, sev_reclaim_asid_bitmap, sev_vmcbs[N] (repeatable)",
        ),
    )
    for flag, metavar, text in repeatable:
        g.add_argument(flag, action="append", default=[], metavar=metavar, help=text)
    g.add_argument(
        "--cmdline",
        default="" if defaults else None,
        help='kernel command line, e.g. "mem_encrypt=on kvm_amd.sev=1"',
    )
    g.add_argument(
        "--cpus", type=number, help="number of CPUs (default: the profile's thread count per socket)"
    )
    g.add_argument(
        "--sockets", type=number, help="processors on the board: 1 (default) or 2, where the part allows"
    )


#: (argparse destination, HostConfig field) of every host option; the repeatable ones become tuples
HOST_FIELDS = (
    ("profile", "profile"),
    ("cpuid", "cpuid"),
    ("kernel", "kernel"),
    ("apply", "apply"),
    ("revert", "revert"),
    ("param", "params"),
    ("cmdline", "cmdline"),
    ("config", "config"),
    ("bios", "bios"),
    ("cpus", "cpus"),
    ("sockets", "sockets"),
    ("fail_alloc", "fail_alloc"),
)


#: the options that may be given several times
REPEATABLE = frozenset({"apply", "revert", "param", "config", "bios", "fail_alloc"})


def host_options(args: argparse.Namespace) -> dict[str, Any]:
    """The host options as given, keyed by HostConfig field."""
    out: dict[str, Any] = {}
    for dest, name in HOST_FIELDS:
        value = getattr(args, dest)
        if value is None:
            continue
        if dest in REPEATABLE:
            value = tuple(value)
        elif isinstance(value, list):  # argparse hands "--cpuid=--" over as an empty list
            value = " ".join(value)
        out[name] = value
    return out


def host_config(args: argparse.Namespace, default_profile: str = DEFAULT_PROFILE) -> HostConfig:
    return HostConfig(**(host_options(args) | {"profile": args.profile or default_profile}))


def build_parser() -> argparse.ArgumentParser:
    # the commands import this module for the shared options, so they are imported here
    from kvmsev.cli.commands import COMMANDS

    parser = Parser(
        prog="kvmsev",
        description="An executable model of AMD SEV / SEV-ES host support in Linux KVM.",
    )
    parser.add_argument("--version", action="version", version=f"kvmsev {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add(sub)
    return parser
