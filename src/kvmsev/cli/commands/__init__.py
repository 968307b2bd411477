"""One module per ``kvmsev`` subcommand, each with ``add(subparsers)`` registering its options and
an ``execute(args, style) -> exit code`` the parser's defaults point at."""

from __future__ import annotations

from types import ModuleType

from kvmsev.cli.commands import (
    boot,
    check,
    cpuid,
    demo,
    kernels,
    measure,
    patches,
    probe,
    profiles,
    run,
    schema,
)

#: in the order ``kvmsev --help`` lists them
COMMANDS: tuple[ModuleType, ...] = (
    boot,
    run,
    check,
    probe,
    measure,
    cpuid,
    profiles,
    kernels,
    patches,
    schema,
    demo,
)
