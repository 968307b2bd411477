"""How kvmsev reads a number the user wrote, wherever it is written.

Command-line counts (``--cpus``, ``--depth``, ``--seed`` ...), BIOS values and integers in scenario
files all take the same forms: decimal (``509``), ``0x`` hex (``0x1FD``), ``0o`` octal and ``0b``
binary, with ``_`` between digits -- what Python's ``int(text, 0)`` reads. A leading zero without
a base prefix (``010``) is refused rather than guessed. (Module parameters are different: the
modeled kernel parses them, with ``kstrtoint``'s own rules.)
"""

from __future__ import annotations

import re

#: longest number text read; far beyond any value the model has a use for (2**64 has 20 digits)
MAX_DIGITS = 100


_DECIMAL = re.compile(r"[0-9]{1,20}", re.ASCII)


def decimal(text: str) -> int | None:
    """Plain ASCII decimal digits (what the kernel writes in /proc and sysfs files), or None:
    ``str.isdigit`` would also take ``²`` and ``int`` would refuse it, or take thousands of digits."""
    stripped = text.strip()
    return int(stripped) if _DECIMAL.fullmatch(stripped) else None


def parse_int(text: str) -> int:
    """The integer ``text`` spells; ValueError with a readable reason otherwise."""
    cleaned = text.strip()
    if len(cleaned) > MAX_DIGITS:
        raise ValueError(f"{cleaned[:20]}... is longer than {MAX_DIGITS} characters")
    try:
        return int(cleaned, 0)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r} (decimal, or 0x-prefixed hex)") from None
