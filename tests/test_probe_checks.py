"""Every check of the diagnosis on its passing and its failing path, by editing a recorded host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.host.rootfs import export
from kvmsev.probe.run import probe


def recorded(tmp_path: Path, **config: object) -> Path:
    config.setdefault("profile", "epyc-9124")
    config.setdefault("cpus", 4)
    config.setdefault("bios", ("sev_es_asid_space_limit=100",))
    host = Host.boot(HostConfig(**config))  # type: ignore[arg-type]
    host.load_kvm_amd()
    export(host, tmp_path)
    return tmp_path


def edit_probe(root: Path, **changes: object) -> None:
    path = root / ".kvmsev/probe.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def cpuinfo(root: Path, old: str, new: str) -> None:
    path = root / "proc/cpuinfo"
    path.write_text(path.read_text().replace(old, new))


Mutation = Callable[[Path], object]


def seq(*steps: Mutation) -> Mutation:
    def run(root: Path) -> None:
        for step in steps:
            step(root)

    return run


CASES: list[tuple[str, str, Mutation]] = [
    ("EPYC processor", "WARN", lambda r: cpuinfo(r, "AMD EPYC 9124 16-Core Processor", "AMD Ryzen 9 3950X")),
    ("SEV in CPUID", "FAIL", lambda r: edit_probe(r, cpuid={"0x8000001f": [1, 0xB3, 0, 0]})),
    ("SEV in CPUID", "SKIP", seq(lambda r: edit_probe(r, cpuid=None), lambda r: cpuinfo(r, " sev", ""))),
    ("SEV-ES in CPUID", "FAIL", lambda r: edit_probe(r, cpuid={"0x8000001f": [3, 0x16F, 4, 3]})),
    ("Memory encryption (SMEE)", "FAIL", lambda r: edit_probe(r, msr={"0xc0010010": 0})),
    (
        "Memory encryption (SMEE)",
        "FAIL",
        seq(lambda r: edit_probe(r, msr=None), lambda r: cpuinfo(r, " sev", "")),
    ),
    ("SEV ASIDs", "FAIL", lambda r: edit_probe(r, cpuid={"0x8000001f": [0xB, 0x16F, 0, 1]})),
    ("ASID split", "FAIL", lambda r: edit_probe(r, cpuid={"0x8000001f": [0xB, 0x16F, 4, 9]})),
    ("SEV-ES ASID space", "FAIL", lambda r: edit_probe(r, cpuid={"0x8000001f": [0xB, 0x16F, 4, 1]})),
    ("Kernel version", "SKIP", lambda r: (r / "proc/sys/kernel/osrelease").unlink()),
    (
        "CONFIG_KVM_AMD_SEV",
        "FAIL",
        lambda r: next(r.glob("boot/config-*")).write_text("CONFIG_KVM_AMD_SEV=n\n"),
    ),
    ("CONFIG_KVM_AMD_SEV", "SKIP", lambda r: next(r.glob("boot/config-*")).unlink()),
    ("kvm_amd loaded", "FAIL", lambda r: __import__("shutil").rmtree(r / "sys/module/kvm_amd")),
    (
        "/dev/kvm",
        "FAIL",
        lambda r: edit_probe(r, kvm_api_version=None, kvm_api_version_reason="Permission denied"),
    ),
    (
        "/dev/kvm",
        "SKIP",
        lambda r: edit_probe(
            r, kvm_api_version=None, dev={"/dev/sev": {"mode": "0600", "readable": True, "writable": True}}
        ),
    ),
    ("SEV enabled in KVM", "FAIL", lambda r: (r / "sys/module/kvm_amd/parameters/sev").write_text("N\n")),
    ("SEV enabled in KVM", "FAIL", lambda r: (r / "sys/module/kvm_amd/parameters/sev").unlink()),
    (
        "SEV-ES enabled in KVM",
        "FAIL",
        lambda r: (r / "sys/module/kvm_amd/parameters/sev_es").write_text("N\n"),
    ),
    (
        "KVM_GET_SUPPORTED_CPUID 0x8000001F",
        "WARN",
        lambda r: edit_probe(r, kvm_supported_cpuid_8000001f=[0, 0, 0, 0]),
    ),
    (
        "/dev/sev",
        "FAIL",
        lambda r: edit_probe(r, dev={"/dev/kvm": {"mode": "0666", "readable": True, "writable": True}}),
    ),
    (
        "/dev/sev",
        "WARN",
        lambda r: edit_probe(r, dev={"/dev/sev": {"mode": "0600", "readable": False, "writable": False}}),
    ),
    ("SEV platform status", "SKIP", lambda r: edit_probe(r, sev_platform_status=None)),
    (
        "SEV platform status",
        "FAIL",
        lambda r: edit_probe(
            r,
            sev_platform_status={
                "api_major": 1,
                "api_minor": 51,
                "state": 0,
                "flags": 0,
                "build": 3,
                "guest_count": 0,
            },
        ),
    ),
    (
        "SEV-ES initialized",
        "WARN",
        lambda r: edit_probe(
            r,
            sev_platform_status={
                "api_major": 1,
                "api_minor": 51,
                "state": 1,
                "flags": 0,
                "build": 3,
                "guest_count": 0,
            },
        ),
    ),
    ("CPUs online", "WARN", lambda r: (r / "sys/devices/system/cpu/online").write_text("0\n")),
    ("Guest capacity", "FAIL", lambda r: (r / "proc/cmdline").write_text("kvm_amd.sev=0\n")),
    ("Bare metal", "WARN", lambda r: cpuinfo(r, "flags\t\t: fpu", "flags\t\t: fpu hypervisor")),
    ("AMD CPU", "FAIL", lambda r: cpuinfo(r, "AuthenticAMD", "GenuineIntel")),
    ("AMD CPU", "SKIP", lambda r: (r / "proc/cpuinfo").unlink()),
]


def test_the_unedited_host_passes_every_check(tmp_path: Path) -> None:
    report = probe(str(recorded(tmp_path)))
    failing = [(t["name"], t["status"]) for t in report["tests"] if t["status"] != "PASS"]
    assert failing == []
    names = {t["name"] for t in report["tests"]}
    assert {name for name, _, _ in CASES} <= names | {"ASID split", "SEV-ES ASID space"}


@pytest.mark.parametrize(("check", "status", "mutate"), CASES, ids=[f"{c}-{s}" for c, s, _ in CASES])
def test_each_check_reports_its_failure(tmp_path: Path, check: str, status: str, mutate: Mutation) -> None:
    root = recorded(tmp_path)
    mutate(root)
    report = probe(str(root))
    got = {t["name"]: t for t in report["tests"]}
    assert check in got, sorted(got)
    assert got[check]["status"] == status, got[check]
    if status in ("FAIL", "WARN") and check not in ("Bare metal",):
        assert got[check]["fix_hint"], "a failing check says how to fix it"
