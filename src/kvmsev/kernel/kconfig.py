"""The Kconfig symbols that decide SEV in ``kvm_amd``, with Kconfig's dependency rules.

Defaults describe a typical distribution kernel of the era (Debian, Ubuntu, RHEL/Fedora build
``kvm_amd`` as a module with ``AMD_MEM_ENCRYPT=y`` and SME *not* active by default). The upstream
defaults differ: ``AMD_MEM_ENCRYPT`` has no default (n) and ``AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT``
still said ``default y`` in 5.11-5.14 (dropped by 711885906b5c, "x86/Kconfig: Do not enable
AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT automatically").

* ``CONFIG_KVM_AMD_SEV``: ``def_bool y``, ``depends on KVM_AMD && X86_64`` and ``CRYPTO_DEV_SP_PSP``
  (arch/x86/kvm/Kconfig, 5.13).
* ``CONFIG_AMD_MEM_ENCRYPT``: host SME and SEV guest support (arch/x86/Kconfig).
* ``CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT``: ``depends on AMD_MEM_ENCRYPT``; before 5.13 it also
  set the default of ``kvm_amd.sev`` / ``kvm_amd.sev_es``.
* ``CONFIG_CGROUP_MISC``: the misc cgroup controller (new in 5.13); when off, the charge and
  capacity helpers are stubs that succeed (include/linux/misc_cgroup.h).

A symbol whose dependency is unmet is forced to n, as ``make olddefconfig`` does; the
resolution lists such a symbol under ``forced_off``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kvmsev.errors import InputError

KVM_AMD_SEV = "CONFIG_KVM_AMD_SEV"
AMD_MEM_ENCRYPT = "CONFIG_AMD_MEM_ENCRYPT"
AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT = "CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT"
CGROUP_MISC = "CONFIG_CGROUP_MISC"

#: symbol -> (distribution default, symbol it depends on or None)
SYMBOLS: dict[str, tuple[bool, str | None]] = {
    KVM_AMD_SEV: (True, None),
    AMD_MEM_ENCRYPT: (True, None),
    AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT: (False, AMD_MEM_ENCRYPT),
    CGROUP_MISC: (True, None),
}


@dataclass(frozen=True, slots=True)
class Kconfig:
    """A resolved configuration: every symbol's effective value."""

    values: Mapping[str, bool]
    forced_off: tuple[str, ...] = ()

    def __getitem__(self, symbol: str) -> bool:
        return self.values[symbol]

    def as_dict(self) -> dict[str, str]:
        return {sym: "y" if on else "n" for sym, on in self.values.items()}


def resolve(requested: Mapping[str, bool]) -> Kconfig:
    """Apply the user's choices over the defaults, then force unmet dependencies to n."""
    for symbol in requested:
        if symbol not in SYMBOLS:
            raise InputError("--config", f"unknown Kconfig symbol {symbol!r} (known: {', '.join(SYMBOLS)})")
    values = {sym: requested.get(sym, default) for sym, (default, _) in SYMBOLS.items()}
    forced: list[str] = []
    for sym, (_, dep) in SYMBOLS.items():
        if dep is not None and values[sym] and not values[dep]:
            values[sym] = False
            forced.append(sym)
    return Kconfig(values, tuple(forced))


def parse_assignment(text: str) -> tuple[str, bool]:
    """Parse ``CONFIG_X=y|n`` (also ``X=y``; ``m`` is refused: these symbols are bool)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise InputError("--config", f"{text!r} must look like CONFIG_X=y or CONFIG_X=n")
    if not name.startswith("CONFIG_"):
        name = "CONFIG_" + name
    v = value.strip().lower()
    if v not in ("y", "n"):
        raise InputError("--config", f"{text!r}: value must be y or n (these symbols are bool)")
    if name not in SYMBOLS:
        raise InputError("--config", f"unknown Kconfig symbol {name!r} (known: {', '.join(SYMBOLS)})")
    return name, v == "y"
