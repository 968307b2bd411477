"""``kvmsev``: boot a modeled AMD host and see what Linux KVM decides about SEV.

Every command prints a human view, or with ``--json`` the documented JSON contract. Input the
tool cannot act on gets one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kvmsev import __version__
from kvmsev.check import defaults as check_defaults
from kvmsev.check import report as check_report
from kvmsev.check.actions import VM_NAMES, Bounds
from kvmsev.check.explore import explore
from kvmsev.cli import render
from kvmsev.cli.demo import demo
from kvmsev.cli.style import Style
from kvmsev.errors import InputError
from kvmsev.host.config import DEFAULT_KERNEL, DEFAULT_PROFILE, HostConfig, resolve
from kvmsev.host.report import boot_report
from kvmsev.hw import profiles as profiles_mod
from kvmsev.hw.cpuid import Cpuid8000001F, parse_register
from kvmsev.kvm.patches import PATCHES
from kvmsev.probe import render as probe_render
from kvmsev.probe import run as probe_run
from kvmsev.scenario import render as scenario_render
from kvmsev.scenario import runner as scenario_runner
from kvmsev.scenario import schema as scenario_schema

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"kvmsev: error: {message} (see '{self.prog} --help')\n")


def _whole_number(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def add_host_options(p: argparse.ArgumentParser) -> None:
    """The options that describe a host; shared by every command that boots one."""
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
        default=DEFAULT_KERNEL,
        help=f"kernel preset: v5.12 or v5.13 (default {DEFAULT_KERNEL})",
    )
    g.add_argument(
        "--apply",
        action="append",
        default=[],
        metavar="PATCH",
        help="apply a series patch (repeatable; see 'kvmsev patches')",
    )
    g.add_argument(
        "--revert",
        action="append",
        default=[],
        metavar="PATCH",
        help="revert a series patch (repeatable)",
    )
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="kvm_amd.NAME=VALUE",
        help="modprobe option (repeatable)",
    )
    g.add_argument("--cmdline", default="", help='kernel command line, e.g. "mem_encrypt=on kvm_amd.sev=1"')
    g.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="CONFIG_X=y|n",
        help="Kconfig choice (repeatable)",
    )
    g.add_argument(
        "--bios",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="BIOS option: smee, sev_es_asid_space_limit, sev_asid_count (repeatable)",
    )
    g.add_argument("--cpus", type=_whole_number, help="number of CPUs (default: the profile's thread count)")
    g.add_argument(
        "--fail-alloc",
        action="append",
        default=[],
        metavar="SITE",
        help="make an allocation fail: sev_asid_bitmap, sev_reclaim_asid_bitmap, sev_vmcbs[N]",
    )


def host_config(args: argparse.Namespace, default_profile: str = DEFAULT_PROFILE) -> HostConfig:
    return HostConfig(
        profile=args.profile or default_profile,
        cpuid=args.cpuid,
        kernel=args.kernel,
        apply=tuple(args.apply),
        revert=tuple(args.revert),
        params=tuple(args.param),
        cmdline=args.cmdline,
        config=tuple(args.config),
        bios=tuple(args.bios),
        cpus=args.cpus,
        fail_alloc=tuple(args.fail_alloc),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kvmsev",
        description="An executable model of AMD SEV / SEV-ES host support in Linux KVM.",
    )
    parser.add_argument("--version", action="version", version=f"kvmsev {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("boot", help="boot a modeled host, load kvm_amd, report what KVM decides")
    add_host_options(p)
    p.add_argument("--unload", action="store_true", help="unload kvm_amd right after loading and report it")
    p.add_argument(
        "--export-root",
        metavar="DIR",
        help="also write the host in the recorded-host format (kvmsev probe --root)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/json.md)")

    p = sub.add_parser("cpuid", help="CPUID 0x8000001F tools")
    csub = p.add_subparsers(dest="cpuid_command", required=True, parser_class=_Parser)
    d = csub.add_parser("decode", help="decode the four registers of leaf 0x8000001F")
    for reg in ("eax", "ebx", "ecx", "edx"):
        d.add_argument(reg.upper(), help=f"{reg.upper()} value (0x-hex, 8-digit hex or decimal)")
    d.add_argument("--json", action="store_true")

    p = sub.add_parser("profiles", help="list the built-in CPU profiles")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("patches", help="list the 'KVM: SVM: Misc SEV cleanups' patches and their switches")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("run", help="run a scenario file (YAML or JSON) and print its trace")
    p.add_argument("file", help="scenario file")
    p.add_argument("--kernel", help="override the scenario's kernel preset")
    p.add_argument(
        "--apply", action="append", default=[], metavar="PATCH", help="apply a patch on top (repeatable)"
    )
    p.add_argument(
        "--revert", action="append", default=[], metavar="PATCH", help="revert a patch (repeatable)"
    )
    p.add_argument("--seed", type=_whole_number, help="override the scenario's seed")
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/json.md)")

    p = sub.add_parser(
        "check", help="explore every sequence of entry points up to a bound; check the invariants"
    )
    add_host_options(p)
    p.add_argument(
        "--depth",
        type=_whole_number,
        default=check_defaults.DEPTH,
        help=f"moves per path (default {check_defaults.DEPTH}: until no new state on small hosts)",
    )
    p.add_argument(
        "--max-states",
        type=_whole_number,
        default=check_defaults.MAX_STATES,
        help=f"stop once this many distinct states are known (default {check_defaults.MAX_STATES:,})",
    )
    p.add_argument("--vms", type=_whole_number, default=1, help="VMs alive at once (default 1)")
    p.add_argument("--vcpus", type=_whole_number, default=1, help="vCPUs per VM (default 1)")
    p.add_argument("--faults", action="store_true", help="also explore allocation and firmware failures")
    p.add_argument("--no-early-runs", action="store_true", help="do not run vCPUs before LAUNCH_FINISH")
    p.add_argument("--out", metavar="DIR", help="write each counterexample as a scenario file in DIR")
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/check.md)")

    p = sub.add_parser(
        "probe", help="read this host (or a recorded one), diagnose SEV, compare with the model"
    )
    p.add_argument("--root", metavar="DIR", help="read a recorded host from DIR instead of this machine")
    p.add_argument("--capture", metavar="DIR", help="record this host (or --root) into DIR")
    p.add_argument("--json", action="store_true", help="print the JSON report (docs/probe.md)")

    sub.add_parser("demo", help="v5.12 vs v5.13 side by side on a few real hosts")
    return parser


def _emit(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(human)


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    style = Style()
    if args.command == "boot":
        report = boot_report(host_config(args), unload=args.unload, export_root=args.export_root)
        _emit(report, args.json, render.boot(report, style))
    elif args.command == "cpuid":
        regs = [parse_register(getattr(args, r.upper()), r.upper()) for r in ("eax", "ebx", "ecx", "edx")]
        decoded = Cpuid8000001F(*regs).decode()
        _emit(decoded, args.json, render.cpuid(decoded, style))
    elif args.command == "profiles":
        items = [profiles_mod.load(n).summary() for n in profiles_mod.builtin_names()]
        _emit(items, args.json, render.profiles(items, style))
    elif args.command == "patches":
        items = [p.as_dict() for p in PATCHES]
        _emit(items, args.json, render.patches(items, style))
    elif args.command == "run":
        scenario = scenario_schema.load(args.file)
        scenario = scenario_schema.override(scenario, args.kernel, args.apply, args.revert, args.seed)
        report = scenario_runner.run(scenario)
        _emit(report, args.json, scenario_render.trace(report, style))
    elif args.command == "check":
        config = check_defaults.host(
            host_config(args, default_profile=check_defaults.PROFILE), bool(args.profile)
        )
        resolve(config)
        for option, value, highest in (
            ("--depth", args.depth, check_defaults.MAX_DEPTH),
            ("--vms", args.vms, len(VM_NAMES)),
            ("--vcpus", args.vcpus, 4),
            ("--max-states", args.max_states, None),
        ):
            if value < 1 or (highest is not None and value > highest):
                limits = "must be at least 1" if highest is None else f"is outside 1..{highest}"
                raise InputError(option, f"{value} {limits}")
        bounds = Bounds(
            depth=args.depth,
            vms=args.vms,
            vcpus=args.vcpus,
            faults=args.faults,
            early_runs=not args.no_early_runs,
            max_states=args.max_states,
        )
        progress = None
        if sys.stderr.isatty() and not args.json:

            def progress(depth: int, states: int, frontier: int) -> None:
                print(
                    f"\rdepth {depth}: {states} states, frontier {frontier}   ",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

        result = explore(config, bounds, progress)
        if progress is not None:
            print(file=sys.stderr)
        report = check_report.as_dict(result, Path(args.out) if args.out else None)
        _emit(report, args.json, check_report.human(report, style))
        return 0 if result.holds else 1
    elif args.command == "probe":
        root = args.root or "/"
        if args.root is not None and not Path(args.root).is_dir():
            raise InputError("--root", f"{args.root} is not a directory")
        if args.capture:
            probe_run.capture(args.capture, root)
        probed = probe_run.probe(root)
        _emit(probed, args.json, probe_render.tree(probed, style))
        return 1 if probed["summary"]["failed"] else 0
    elif args.command == "demo":
        print(demo(style))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except InputError as exc:
        print(f"kvmsev: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("\nkvmsev: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
