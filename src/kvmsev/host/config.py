"""``HostConfig``: everything ``kvmsev boot`` accepts, validated before anything runs.

Validation here is about the *tool's* input (unknown profile, malformed CPUID value, unknown
Kconfig symbol, invalid BIOS value, absurd CPU count): each problem raises
:class:`~kvmsev.errors.InputError` naming the field. Module parameter *values* are not checked
here -- the modeled kernel answers them as the real one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.errors import InputError
from kvmsev.hw import bios as bios_mod
from kvmsev.hw.cpuid import Cpuid8000001F, parse_leaf
from kvmsev.hw.profiles import MAX_CPUS, Profile, load
from kvmsev.kernel import cmdline as cmdline_mod
from kvmsev.kernel import kconfig as kconfig_mod
from kvmsev.kvm import kernels
from kvmsev.kvm.behaviour import Behaviour
from kvmsev.numbers import decimal

DEFAULT_PROFILE = "epyc-7763"
DEFAULT_KERNEL = "v5.13"


@dataclass(frozen=True, slots=True)
class HostConfig:
    """A host to boot, in the words a user types them."""

    profile: str = DEFAULT_PROFILE
    cpuid: str | None = None
    kernel: str = DEFAULT_KERNEL
    apply: tuple[str, ...] = ()
    revert: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    cmdline: str = ""
    config: tuple[str, ...] = ()
    bios: tuple[str, ...] = ()
    cpus: int | None = None
    #: processors on the board (1 or 2, up to the profile's ``max_sockets``)
    sockets: int = 1
    fail_alloc: tuple[str, ...] = ()
    #: seed for everything the model leaves to chance (firmware keys and nonces, the initial
    #: content of uninitialised memory)
    seed: int = 0
    #: (cpu, index, value): fixed initial content of uninitialised ``sev_vmcbs`` entries
    sev_vmcbs_garbage: tuple[tuple[int, int, int], ...] = ()
    #: the VMM process's RLIMIT_MEMLOCK in bytes (64 KiB, the default before 5.16) and CAP_IPC_LOCK
    memlock_limit: int = 64 * 1024
    cap_ipc_lock: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A validated :class:`HostConfig`: typed pieces ready to assemble a host."""

    source: HostConfig
    profile: Profile
    platform: bios_mod.Platform
    behaviour: Behaviour
    kconfig: kconfig_mod.Kconfig
    boot_args: cmdline_mod.BootArgs
    nr_cpus: int
    fail_alloc: frozenset[str] = field(default_factory=frozenset)


FAIL_SITES = ("sev_asid_bitmap", "sev_reclaim_asid_bitmap", "sev_vmcbs")


def _fail_site(text: str, nr_cpus: int) -> str:
    base, _, rest = text.partition("[")
    if base not in FAIL_SITES:
        raise InputError(
            "--fail-alloc",
            f"unknown allocation site {text!r} (known: {', '.join(FAIL_SITES)}, sev_vmcbs[N])",
        )
    if rest:
        if base != "sev_vmcbs" or not rest.endswith("]") or decimal(rest[:-1]) is None:
            raise InputError("--fail-alloc", f"{text!r}: only sev_vmcbs takes a CPU index, as sev_vmcbs[N]")
        if int(rest[:-1].strip()) >= nr_cpus:
            raise InputError("--fail-alloc", f"{text!r}: CPU {rest[:-1]} does not exist (host has {nr_cpus})")
    return text


def resolve(config: HostConfig, profile: Profile | None = None) -> ResolvedConfig:
    """Check every field and build the typed configuration; nothing is modified on error.

    ``profile`` replaces the lookup of ``config.profile`` (the probe builds one from a real host).
    """
    if profile is None:
        profile = load(config.profile)
    override: Cpuid8000001F | None = parse_leaf(config.cpuid) if config.cpuid is not None else None
    choices: dict[str, str] = {}
    for text in config.bios:
        key, setting = bios_mod.parse_assignment(text)
        choices[key] = setting
    platform = bios_mod.apply(profile, choices, override)
    behaviour = kernels.build(config.kernel, list(config.apply), list(config.revert))
    requested: dict[str, bool] = {}
    for text in config.config:
        symbol, enabled = kconfig_mod.parse_assignment(text)
        requested[symbol] = enabled
    kconf = kconfig_mod.resolve(requested)
    boot_args = cmdline_mod.parse(config.cmdline, list(config.params))
    if not isinstance(config.sockets, int) or not 1 <= config.sockets <= profile.max_sockets:
        raise InputError(
            "--sockets", f"{config.sockets!r} is outside 1..{profile.max_sockets} for {profile.name}"
        )
    # with SMT turned off in the BIOS the OS sees one thread of each core's two
    threads = profile.threads // 2 if platform.bios.get("smt") == "off" else profile.threads
    nr_cpus = threads * config.sockets if config.cpus is None else config.cpus
    if not isinstance(nr_cpus, int) or not 1 <= nr_cpus <= MAX_CPUS:
        raise InputError("--cpus", f"{nr_cpus!r} is outside 1..{MAX_CPUS}")
    fail = frozenset(_fail_site(t, nr_cpus) for t in config.fail_alloc)
    return ResolvedConfig(config, profile, platform, behaviour, kconf, boot_args, nr_cpus, fail)
