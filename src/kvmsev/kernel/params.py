"""Module parameter parsing and sysfs rendering, as ``kernel/params.c`` and ``lib/kstrtox.c`` do it.

A module's parameters arrive as ``name[=value]`` words (modprobe collects them from
``/proc/cmdline`` as ``kvm_amd.name=value`` and from its own options) and go through
``parse_args()`` at ``load_module()`` time:

* the name is matched with ``-`` and ``_`` treated as equal (``parameq``);
* an unknown name is not an error for a module: ``unknown_module_param_cb`` warns
  ``"kvm_amd: unknown parameter 'NAME' ignored"`` and the load goes on;
* a value the setter rejects prints ``"kvm_amd: `VALUE' invalid for parameter `NAME'"``,
  parsing continues with the next word, and the load fails with the last setter error
  (``-EINVAL``, or ``-ERANGE`` for an out-of-range int);
* a missing value is accepted only by parameter types with ``KERNEL_PARAM_OPS_FL_NOARG``
  (bool: it means true); an int without value fails with ``-EINVAL``.

Sysfs shows an int with ``"%i\\n"`` and a bool as ``"Y\\n"``/``"N\\n"`` (``param_get_int``,
``param_get_bool``). Texts here are stored without the trailing newline.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmsev.errors import Errno

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1


class ParamType(enum.Enum):
    """The ``kernel_param_ops`` a parameter is declared with."""

    INT = "int"
    UINT = "uint"
    BOOL = "bool"


ULLONG_MAX = 2**64 - 1


def _kstrtoull(text: str) -> int | Errno:
    """``_kstrtoull(s, 0, &res)``: digits only (no sign), auto-detected base, one trailing newline.

    Base 0 means ``0x`` + hex digit -> 16, a leading ``0`` -> 8, otherwise 10. No whitespace is
    skipped; an overflow of the ``unsigned long long`` accumulator is ``-ERANGE`` before anything
    after the digits is looked at. Source: lib/kstrtox.c ``_parse_integer_fixup_radix``,
    ``_parse_integer_limit``, ``_kstrtoull``.
    """
    s = text[:-1] if text.endswith("\n") else text
    if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        base, digits = 16, s[2:]
    elif s.startswith("0"):
        base, digits = 8, s[1:] if len(s) > 1 else s
    else:
        base, digits = 10, s
    alphabet = "0123456789abcdef"[:base]
    value = 0
    used = 0
    for c in digits:
        if c.lower() not in alphabet:
            break
        value = value * base + alphabet.index(c.lower())
        used += 1
        if value > ULLONG_MAX:
            return Errno.ERANGE
    if not used or used != len(digits):
        return Errno.EINVAL
    return value


def kstrtoint(text: str) -> int | Errno:
    """``kstrtoint(s, 0, &res)`` (``param_set_int``): one optional sign, then :func:`_kstrtoull`.

    Values outside ``int`` give ``-ERANGE``. Source: lib/kstrtox.c ``kstrtoll`` (``-`` handled
    there, ``+`` skipped by ``kstrtoull``) and ``kstrtoint``.
    """
    negative = text.startswith("-")
    value = _kstrtoull(text[1:] if text[:1] in ("-", "+") else text)
    if isinstance(value, Errno):
        return value
    if negative:
        value = -value
    if not INT_MIN <= value <= INT_MAX:
        return Errno.ERANGE
    return value


def kstrtouint(text: str) -> int | Errno:
    """``kstrtouint(s, 0, &res)`` (``param_set_uint``): an optional ``+``, no ``-`` (``-EINVAL``,
    even for ``-0``); values above ``UINT_MAX`` give ``-ERANGE``.

    Source: lib/kstrtox.c ``kstrtoull`` and ``kstrtouint``.
    """
    value = _kstrtoull(text[1:] if text.startswith("+") else text)
    if isinstance(value, Errno):
        return value
    return Errno.ERANGE if value > UINT_MAX else value


class BoolLetters(enum.Enum):
    """Which first letters ``kstrtobool()`` takes for true and for false, by kernel.

    ``on``/``of`` (either case) are accepted by every modeled kernel; before 5.14 the function is
    ``strtobool()`` in lib/string.c, with the same letters.
    """

    #: 5.12 to 5.18: ``y Y 1`` / ``n N 0``
    YES_NO = "yes-no"
    #: 0d6ea3ac94ca "lib/kstrtox.c: add "false"/"true" support to kstrtobool()" (5.19): ``t T``/``f F``
    TRUE_FALSE = "true-false"
    #: ae5b3500856f "kstrtox: add support for enabled and disabled in kstrtobool()" (6.16): ``e E``/``d D``
    ENABLED_DISABLED = "enabled-disabled"

    @property
    def letters(self) -> tuple[str, str]:
        """The first letters meaning true, and those meaning false."""
        return _LETTERS[self]


_LETTERS = {
    BoolLetters.YES_NO: ("yY1", "nN0"),
    BoolLetters.TRUE_FALSE: ("yYtT1", "nNfF0"),
    BoolLetters.ENABLED_DISABLED: ("eEyYtT1", "dDnNfF0"),
}


def kstrtobool(text: str, letters: BoolLetters = BoolLetters.YES_NO) -> bool | Errno:
    """``kstrtobool()``: only the first one or two characters count.

    A first letter from ``letters`` decides; ``on`` -> true and ``of`` -> false (either case);
    anything else is ``-EINVAL``. So ``10`` is true and ``offxyz`` false, and ``true`` is an
    error before 5.19. Source: lib/string.c ``strtobool`` (5.12/5.13), lib/kstrtox.c
    ``kstrtobool`` (5.14 on).
    """
    first = text[:1]
    truthy, falsy = letters.letters
    if first and first in truthy:
        return True
    if first and first in falsy:
        return False
    if first in ("o", "O"):
        second = text[1:2]
        if second in ("n", "N"):
            return True
        if second in ("f", "F"):
            return False
    return Errno.EINVAL


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """One ``module_param``: its sysfs name, type and compiled-in default."""

    name: str
    type: ParamType
    default: int | bool

    def parse(self, value: str | None, letters: BoolLetters = BoolLetters.YES_NO) -> int | bool | Errno:
        """Run the parameter's ``set`` op on ``value`` (``None`` when no ``=`` was given)."""
        if self.type is ParamType.BOOL:
            return kstrtobool("1" if value is None else value, letters)
        if value is None:
            return Errno.EINVAL
        return kstrtouint(value) if self.type is ParamType.UINT else kstrtoint(value)

    def render(self, value: int | bool) -> str:
        """The sysfs file's text, without its trailing newline."""
        if self.type is ParamType.BOOL:
            return "Y" if value else "N"
        return str(int(value))


def parameq(a: str, b: str) -> bool:
    """Parameter names compare equal with ``-`` and ``_`` interchangeable (``parameq``)."""
    return a.replace("-", "_") == b.replace("-", "_")


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """What ``parse_args()`` did with a module's argument words."""

    values: dict[str, int | bool]
    dmesg: tuple[str, ...]
    error: Errno | None


def parse_module_args(
    module: str,
    words: list[tuple[str, str | None]],
    decls: list[ParamDecl],
    letters: BoolLetters = BoolLetters.YES_NO,
) -> ParseOutcome:
    """Apply ``words`` in order to the declared parameters of ``module``.

    Later words override earlier ones, as successive ``set`` calls do. Every word is processed
    even after a failure; the returned error is the last one (``parse_args``).
    """
    values: dict[str, int | bool] = {d.name: d.default for d in decls}
    dmesg: list[str] = []
    error: Errno | None = None
    for name, value in words:
        decl = next((d for d in decls if parameq(d.name, name)), None)
        if decl is None:
            dmesg.append(f"{module}: unknown parameter '{name}' ignored")
            continue
        parsed = decl.parse(value, letters)
        if isinstance(parsed, Errno):
            dmesg.append(f"{module}: `{value or ''}' invalid for parameter `{name}'")
            error = parsed
            continue
        values[decl.name] = parsed
    return ParseOutcome(values, tuple(dmesg), error)
