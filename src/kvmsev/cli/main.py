"""``kvmsev``: boot a modeled AMD host and see what Linux KVM decides about SEV.

Every command prints a human view, or with ``--json`` the documented JSON contract. Input the
tool cannot act on gets one line on stderr and exit code 2; a command whose answer is "something
is wrong" (an invariant broken, a probe check failed) exits 1.
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
from collections.abc import Sequence

from kvmsev.cli.parser import EXIT_INPUT, build_parser
from kvmsev.cli.style import Style
from kvmsev.errors import InputError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process: parsing does not change it, and building it is most
    of what a quick command costs (a fuzz run calls ``main`` thousands of times)."""
    return build_parser()


def run(argv: Sequence[str]) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # the subcommand's parser, so the message points at its --help
        shown = " ".join(a if a.isprintable() else repr(a) for a in extra)
        args.parser.error(f"unrecognized arguments: {shown}")
    code: int = args.execute(args, Style())
    return code


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # a file name that is not UTF-8 reaches the output as surrogates: show them escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    except InputError as exc:
        # one line whatever the message quotes
        print(f"kvmsev: error: {exc}".replace("\n", "\\n"), file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("\nkvmsev: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
