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
from kvmsev.hw import profile_schema
from kvmsev.hw.cpuid import Cpuid8000001F

MAX_CPUS = profile_schema.MAX_CPUS
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
    #: CPUID Fn8000_000A EDX (SVM features) and Fn8000_0021 EAX
    svm_edx: int = 0x0013BCFF
    ext21_eax: int = 0
    #: sockets a board can hold (1 or 2); ``threads`` counts one
    max_sockets: int = 1

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model_name": self.model_name,
            "codename": self.codename,
            "family": self.family,
            "model": self.model,
            "threads": self.threads,
            "max_sockets": self.max_sockets,
            "cpuid_8000001f": self.leaf.as_dict(),
            "sev_firmware": self.sev_firmware,
            "sev_api": None
            if self.sev_api is None
            else f"{self.sev_api.major}.{self.sev_api.minor} build {self.sev_api.build}",
            "bios_options": sorted(self.bios),
            "sources": dict(self.sources),
        }


def from_dict(data: Any, where: str) -> Profile:
    """Validate a profile document (:mod:`kvmsev.hw.profile_schema`); every problem names the
    field."""
    model = profile_schema.validate(data, where)
    api = model.sev_api
    return Profile(
        name=model.name,
        model_name=model.model_name,
        codename=model.codename,
        vendor=model.vendor,
        family=model.family,
        model=model.model,
        threads=model.threads,
        max_sockets=model.max_sockets,
        leaf=Cpuid8000001F(
            model.cpuid_8000001f.eax,
            model.cpuid_8000001f.ebx,
            model.cpuid_8000001f.ecx,
            model.cpuid_8000001f.edx,
        ),
        syscfg=model.syscfg,
        hwcr=model.hwcr,
        sev_firmware=model.sev_firmware,
        sev_api=None if api is None else SevApi(api.major, api.minor, api.build),
        bios=model.bios.model_dump(exclude_none=True),
        sources=dict(model.sources),
        svm_nasid=model.svm_nasid,
        svm_edx=model.cpuid_8000000a_edx,
        ext21_eax=model.cpuid_80000021_eax,
    )


def builtin_names() -> list[str]:
    """Names of the profiles shipped with kvmsev, sorted."""
    folder = resources.files("kvmsev.hw").joinpath("profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


#: the largest profile file read (a real one is about 2 KiB)
MAX_PROFILE = 1 << 20


def load(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path (anything ending in ``.json``)."""
    if name_or_path.endswith(".json"):
        path = Path(name_or_path)
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_PROFILE + 1)
        except OSError as exc:
            raise InputError("--profile", f"cannot read {name_or_path}: {exc.strerror}") from None
        where = path.name
        if len(raw) > MAX_PROFILE:
            raise InputError("--profile", f"{where} is larger than {MAX_PROFILE >> 10} KiB")
    else:
        if name_or_path not in builtin_names():
            raise InputError(
                "--profile",
                f"unknown profile {name_or_path!r} (known: {', '.join(builtin_names())}, or a .json file)",
            )
        raw = resources.files("kvmsev.hw").joinpath("profiles", name_or_path + ".json").read_bytes()
        where = name_or_path
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError("--profile", f"{where} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError("--profile", f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InputError("--profile", f"{where} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # integers longer than Python converts (int_max_str_digits)
        raise InputError("--profile", f"{where} is not valid JSON: {exc}") from None
    return from_dict(data, where)
