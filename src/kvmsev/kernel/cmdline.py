"""The kernel command line and modprobe options, as the words reach ``kvm_amd``.

``next_arg()`` (lib/cmdline.c) splits the line at spaces outside double quotes and strips one
pair of quotes around a value. With ``kvm_amd`` built as a module, the boot parser ignores dotted
words (init/main.c ``unknown_bootoption``: "modprobe will find them in /proc/cmdline"), and
libkmod turns ``kvm_amd.NAME=VALUE`` (or ``kvm-amd.NAME``) into module options that reach
``load_module()`` ahead of options given to modprobe itself. ``mem_encrypt=on|off`` is read by
``sme_enable()`` (arch/x86/mm/mem_encrypt_identity.c) and only affects host SME.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.errors import InputError

MODULE = "kvm_amd"


def split_words(line: str) -> list[str]:
    """Split like ``next_arg``: spaces separate words except inside double quotes."""
    words: list[str] = []
    current: list[str] = []
    in_quote = False
    for ch in line:
        if ch == '"':
            in_quote = not in_quote
            current.append(ch)
        elif ch.isspace() and not in_quote:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if in_quote:
        raise InputError("--cmdline", f"unterminated double quote in {line!r}")
    if current:
        words.append("".join(current))
    return words


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value.replace('"', "")


def split_param(word: str) -> tuple[str, str | None]:
    """``name=value`` -> (name, value); a word without ``=`` has no value."""
    name, sep, value = word.partition("=")
    return _unquote(name), (_unquote(value) if sep else None)


@dataclass(frozen=True, slots=True)
class BootArgs:
    """What the command line and modprobe options say that the model cares about."""

    kvm_amd: list[tuple[str, str | None]] = field(default_factory=list)
    mem_encrypt: str | None = None
    words: tuple[str, ...] = ()


def _module_param(word: str) -> tuple[str, str | None] | None:
    name, value = split_param(word)
    module, dot, param = name.partition(".")
    if dot and module.replace("-", "_") == MODULE and param:
        return param, value
    return None


def parse(cmdline: str, params: list[str]) -> BootArgs:
    """Combine ``--cmdline`` (a whole kernel command line) and ``--param`` words.

    ``--param`` takes ``kvm_amd.NAME=VALUE`` or plain ``NAME=VALUE`` (as after
    ``modprobe kvm_amd``); naming another module there is an input error, whereas the command
    line may carry anything (other modules' words are simply not ``kvm_amd``'s).
    """
    words = split_words(cmdline)
    kvm_amd: list[tuple[str, str | None]] = []
    mem_encrypt: str | None = None
    for word in words:
        param = _module_param(word)
        if param is not None:
            kvm_amd.append(param)
            continue
        name, value = split_param(word)
        if name == "mem_encrypt":
            mem_encrypt = value
    for text in params:
        stripped = text.strip()
        if not stripped or " " in stripped:
            raise InputError("--param", f"{text!r} must be one word like kvm_amd.sev=1")
        param = _module_param(stripped)
        if param is None:
            name, value = split_param(stripped)
            if "." in name:
                raise InputError("--param", f"{text!r} names another module; --param sets kvm_amd parameters")
            param = (name, value)
        kvm_amd.append(param)
    return BootArgs(kvm_amd, mem_encrypt, tuple(words))
