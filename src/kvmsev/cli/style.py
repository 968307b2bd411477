"""Terminal styling: colours only on a TTY and never with ``NO_COLOR`` set."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


class Style:
    def __init__(self, stream: TextIO | None = None) -> None:
        s = stream if stream is not None else sys.stdout
        self.enabled = s.isatty() and "NO_COLOR" not in os.environ

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"

    def yes_no(self, value: bool | None) -> str:
        if value is None:
            return self("-", "dim")
        return self("yes", "green") if value else self("no", "red")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_width(cell: str) -> int:
    return len(_ANSI.sub("", cell))


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain left-aligned table; cells may carry ANSI codes (widths ignore them)."""
    width = visible_width

    cols = len(headers)
    widths = [max(width(r[i]) for r in [headers, *rows]) for i in range(cols)]
    lines = []
    for r in [headers, ["-" * w for w in widths], *rows]:
        lines.append("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)
