"""The README's console examples are what the commands print today.

Each ``$ kvmsev ...`` line in a ``console`` block is run in-process and its output compared with
the lines under it. Examples that pipe into another tool, change directory or continue on the
next line are shell sessions and are not run here; a run time (``kvmsev check``'s first line) is
compared up to the number. ``KVMSEV_REGEN_README=1`` rewrites the README from the output instead.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmsev.cli.main import main

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
TIMING = re.compile(r"[\d.]+ s \([\d,]+ states/s\)")


def _examples(text: str) -> Iterator[tuple[str, str]]:
    """(command, expected output) for every runnable example, in README order."""
    for block in BLOCK.finditer(text):
        command: str | None = None
        output: list[str] = []
        for line in block.group(1).splitlines(keepends=True):
            if line.startswith("$ "):
                if command is not None:
                    yield command, "".join(output)
                command, output = line[2:].rstrip("\n"), []
            else:
                output.append(line)
        if command is not None:
            yield command, "".join(output)


def _runnable(command: str) -> bool:
    if any(mark in command for mark in ("|", "\\", "cd ")) or not command.startswith("kvmsev "):
        return False
    # measure without --ovmf reads the distribution's OVMF build
    return not (command.startswith("kvmsev measure") and "--ovmf" not in command)


def _output(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        capsys.readouterr()
        main(shlex.split(command)[1:])
        return capsys.readouterr().out
    finally:
        os.chdir(cwd)


EXAMPLES = [(c, out) for c, out in _examples(README.read_text()) if _runnable(c)]


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example_prints_what_the_command_prints(
    command: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    actual = _output(command, capsys)
    if os.environ.get("KVMSEV_REGEN_README"):
        text = README.read_text()
        old = f"$ {command}\n{expected}"
        assert text.count(old) == 1, command
        README.write_text(text.replace(old, f"$ {command}\n{actual}"))
        return
    assert TIMING.sub("<time>", actual) == TIMING.sub("<time>", expected)


def test_the_readme_has_runnable_examples_of_every_everyday_command() -> None:
    covered = {shlex.split(c)[1] for c, _ in EXAMPLES}
    assert {"boot", "run", "check", "probe", "patches", "cpuid", "profiles", "demo"} <= covered
