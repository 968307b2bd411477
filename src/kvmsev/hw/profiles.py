"""CPU profiles: real processors' CPUID 0x8000001F values and platform facts, as data files.

Each profile is a JSON file in ``hw/profiles/`` (or any path the user names) whose ``sources``
object cites where every value comes from. A profile describes the part with its BIOS defaults;
:mod:`kvmsev.hw.bios` applies the user's BIOS choices on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kvmsev.errors import InputError
from kvmsev.hw.cpuid import Cpuid8000001F, parse_register

MAX_CPUS = 8192  # x86_64 NR_CPUS upper bound (CONFIG_MAXSMP)
#: CPUID Fn8000_000A EBX (NASID), the number of ASIDs SVM offers: 0x00008000 in the InstLatx64
#: dump of the EPYC 7763 (AuthenticAMD0A00F11_K19_Milan_02_CPUID.txt). A profile that does not
#: give ``svm_nasid`` gets this value (assumed the same on every Zen part).
DEFAULT_SVM_NASID = 0x8000


@dataclass(frozen=True, slots=True)
class SevApi:
    major: int
    minor: int
    build: int


@dataclass(frozen=True, slots=True)
class Profile:
    """One processor as shipped, with the BIOS options its platforms offer."""

    name: str
    model_name: str
    codename: str
    vendor: str
    family: int
    model: int
    threads: int
    leaf: Cpuid8000001F
    syscfg: int
    hwcr: int
    sev_firmware: bool
    sev_api: SevApi | None
    bios: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)
    #: CPUID Fn8000_000A EBX: ASIDs SVM offers; KVM's per-CPU ``max_asid`` is this minus one
    svm_nasid: int = DEFAULT_SVM_NASID

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model_name": self.model_name,
            "codename": self.codename,
            "family": self.family,
            "model": self.model,
            "threads": self.threads,
            "cpuid_8000001f": self.leaf.as_dict(),
            "sev_firmware": self.sev_firmware,
            "sev_api": None
            if self.sev_api is None
            else f"{self.sev_api.major}.{self.sev_api.minor} build {self.sev_api.build}",
            "bios_options": sorted(self.bios),
            "sources": dict(self.sources),
        }


_REQUIRED = (
    "name",
    "model_name",
    "vendor",
    "family",
    "model",
    "threads",
    "cpuid_8000001f",
    "sources",
)


def _expect(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{where}: {key}", f"expected {kind.__name__}, got {value!r}")
    return value


def _register(data: dict[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 0xFFFF_FFFF:
            raise InputError(f"{where}: {key}", f"{value} does not fit in 32 bits")
        return value
    if isinstance(value, str):
        return parse_register(value, f"{where}: {key}")
    raise InputError(f"{where}: {key}", f"expected a register value, got {value!r}")


def from_dict(data: Any, where: str) -> Profile:
    """Validate a profile document; every problem names the field."""
    if not isinstance(data, dict):
        raise InputError(where, "a profile must be a JSON object")
    for key in _REQUIRED:
        if key not in data:
            raise InputError(f"{where}: {key}", "missing")
    leaf_data = _expect(data, "cpuid_8000001f", dict, where)
    leaf = Cpuid8000001F(
        *(_register(leaf_data, r, f"{where}: cpuid_8000001f") for r in ("eax", "ebx", "ecx", "edx"))
    )
    threads = _expect(data, "threads", int, where)
    if not 1 <= threads <= MAX_CPUS:
        raise InputError(f"{where}: threads", f"{threads} is outside 1..{MAX_CPUS}")
    api_data = data.get("sev_api")
    api = None
    if api_data is not None:
        if not isinstance(api_data, dict):
            raise InputError(f"{where}: sev_api", "expected an object with major, minor, build")
        api = SevApi(*(_expect(api_data, k, int, f"{where}: sev_api") for k in ("major", "minor", "build")))
    bios = data.get("bios", {})
    if not isinstance(bios, dict) or not all(isinstance(v, dict) for v in bios.values()):
        raise InputError(f"{where}: bios", "expected an object of option objects")
    sources = _expect(data, "sources", dict, where)
    nasid = _register(data, "svm_nasid", where) if "svm_nasid" in data else DEFAULT_SVM_NASID
    if nasid < 2:
        raise InputError(f"{where}: svm_nasid", f"{nasid} leaves no ASID for guests (SVM needs at least 2)")
    return Profile(
        name=_expect(data, "name", str, where),
        model_name=_expect(data, "model_name", str, where),
        codename=str(data.get("codename", "")),
        vendor=_expect(data, "vendor", str, where),
        family=_expect(data, "family", int, where),
        model=_expect(data, "model", int, where),
        threads=threads,
        leaf=leaf,
        syscfg=_register(data, "syscfg", where) if "syscfg" in data else 0,
        hwcr=_register(data, "hwcr", where) if "hwcr" in data else 1,
        sev_firmware=bool(data.get("sev_firmware", False)),
        sev_api=api,
        bios=bios,
        sources={str(k): str(v) for k, v in sources.items()},
        svm_nasid=nasid,
    )


def builtin_names() -> list[str]:
    """Names of the profiles shipped with kvmsev, sorted."""
    folder = resources.files("kvmsev.hw").joinpath("profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path (anything ending in ``.json``)."""
    if name_or_path.endswith(".json"):
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError("--profile", f"cannot read {name_or_path}: {exc.strerror}") from None
        where = path.name
    else:
        if name_or_path not in builtin_names():
            raise InputError(
                "--profile",
                f"unknown profile {name_or_path!r} (known: {', '.join(builtin_names())}, or a .json file)",
            )
        text = resources.files("kvmsev.hw").joinpath("profiles", name_or_path + ".json").read_text()
        where = name_or_path
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("--profile", f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return from_dict(data, where)
