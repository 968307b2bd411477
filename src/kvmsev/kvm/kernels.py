"""Kernel presets: ``v5.12``, ``v5.13`` and every release after, each built from the one before.

``v5.12`` and ``v5.13`` are written out in :mod:`kvmsev.kvm.behaviour` (the series' two ends).
Every later preset is the previous one with its release's changes from :mod:`kvmsev.kvm.later`
applied, so ``v6.12`` is exactly ``v5.13`` plus each modeled change of 5.14 to 6.12. Releases in
which no modeled change landed are presets all the same, so that the probe can name the host's
own release.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvmsev.errors import InputError
from kvmsev.kvm.behaviour import V5_12, V5_13, Behaviour
from kvmsev.kvm.later import LATER
from kvmsev.kvm.patch import Patch
from kvmsev.kvm.patches import lookup

#: every release the model has a preset for, oldest first
RELEASES: tuple[str, ...] = (
    "5.12",
    "5.13",
    "5.14",
    "5.15",
    "5.16",
    "5.17",
    "5.18",
    "5.19",
    "6.0",
    "6.1",
    "6.2",
    "6.3",
    "6.4",
    "6.5",
    "6.6",
    "6.7",
    "6.8",
    "6.9",
    "6.10",
    "6.11",
    "6.12",
    "6.13",
    "6.14",
    "6.15",
    "6.16",
    "6.17",
    "6.18",
    "6.19",
    "7.0",
    "7.1",
)
#: the newest release whose source the model follows
NEWEST = RELEASES[-1]


def changes_in(release: str) -> tuple[Patch, ...]:
    """The catalogued changes that first appeared in ``release`` (``"6.9"``)."""
    return tuple(p for p in LATER if p.group == release)


def _presets() -> dict[str, Behaviour]:
    presets = {"v5.12": V5_12, "v5.13": V5_13}
    current = V5_13
    for release in RELEASES[2:]:
        for patch in changes_in(release):
            assert patch.field is not None
            current = current.with_fields(**{patch.field: patch.applied})
        presets[f"v{release}"] = current
    return presets


PRESETS: dict[str, Behaviour] = _presets()


def preset(name: str) -> Behaviour:
    try:
        return PRESETS[name]
    except KeyError:
        known = f"v5.12 ... v{NEWEST}, one per release; see 'kvmsev kernels'"
        raise InputError("--kernel", f"unknown kernel {name!r} (known: {known})") from None


def build(kernel: str, apply: Sequence[str] = (), revert: Sequence[str] = ()) -> Behaviour:
    """A preset with patches reverted, then applied, each one on its own.

    Reverts go first so that ``--revert cpuid-mask --apply cpuid-mask-v4`` swaps one version of a
    patch for the other. Applying a patch the kernel already has, or reverting one it lacks, is
    refused: the request would silently do nothing, which is never what the user meant. So is
    a second switch of the same direction on a field an earlier one already set (the
    ``debug_swap`` steps of 6.6, 6.8 and 6.10): which one wins would be an accident of order.
    """
    behaviour = preset(kernel)
    for option, names in (("--revert", revert), ("--apply", apply)):
        setter: dict[str, str] = {}
        for name in names:
            patch, field = lookup(name, option)
            if field in setter:
                raise InputError(option, f"{name!r} and {setter[field]!r} both set {field}; give one of them")
            setter[field] = name
            if option == "--revert" and getattr(behaviour, field) != patch.applied:
                raise InputError(option, f"{name!r} is not in {kernel}")
            if option == "--apply" and getattr(behaviour, field) == patch.applied:
                raise InputError(option, f"{name!r} is already in {kernel}")
            value = patch.reverted if option == "--revert" else patch.applied
            behaviour = behaviour.with_fields(**{field: value})
    return behaviour
