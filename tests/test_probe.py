"""The probe: live on whatever machine runs the tests, and on recorded hosts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kvmsev.cli.main import main
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.host.rootfs import export
from kvmsev.hw.profiles import builtin_names
from kvmsev.kvm.kernels import PRESETS
from kvmsev.probe.reader import HostReader
from kvmsev.probe.run import capture, probe

FIXTURES = Path(__file__).parent / "fixtures" / "hosts"


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["status"] for t in report["tests"]}


def test_live_probe_reads_this_machine_without_crashing() -> None:
    report = probe("/")
    assert report["schema"] == "kvmsev.probe/1" and report["root"] == "live"
    assert set(report["summary"]) == {"total", "passed", "failed", "warned", "skipped"}
    host = report["host"]
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert host["kvm_api_version"] == 12, "KVM_GET_API_VERSION read by ioctl"
        # KVM_GET_DEVICE_ATTR answers with a value, or names the errno (-ENXIO without
        # kvm_amd's SEV attributes, -EINVAL before 5.17)
        assert host["sev_vmsa_features"] is not None or host["sev_vmsa_features_reason"] in (
            "KVM_GET_DEVICE_ATTR: No such device or address",
            "KVM_GET_DEVICE_ATTR: Invalid argument",
        )
    else:
        assert host["kvm_api_version"] is None and host["kvm_reason"]
    if not Path("/dev/sev").exists():
        assert host["dev_sev"] is None and "/dev/sev" in host["dev_sev_reason"]
    for test in report["tests"]:
        assert test["status"] in ("PASS", "FAIL", "WARN", "SKIP") and test["message"]


def test_live_cpuid_read_matches_the_kernel_view_when_available() -> None:
    leaf = HostReader("/").cpuid(0x0)
    if leaf.ok:
        vendor = b"".join(r.to_bytes(4, "little") for r in (leaf.value[1], leaf.value[3], leaf.value[2]))
        cpuinfo = Path("/proc/cpuinfo").read_text()
        assert f"vendor_id\t: {vendor.decode()}" in cpuinfo
    else:
        assert leaf.reason


def test_capture_then_replay_gives_the_same_observation(tmp_path: Path) -> None:
    capture(tmp_path / "live", "/")
    live, replay = probe("/")["host"], probe(str(tmp_path / "live"))["host"]
    for key in (
        "vendor",
        "model_name",
        "cpuid_8000001f",
        "syscfg",
        "release",
        "kvm_api_version",
        "supported_cpuid_8000001f",
        "sev_vmsa_features",
        "sev_vmsa_features_reason",
        "sysfs",
        "cpus_online",
        "cpus_present",
        "rlimit_memlock",
    ):
        assert replay[key] == live[key], key


@pytest.mark.parametrize("profile", builtin_names())
@pytest.mark.parametrize("kernel", list(PRESETS))
def test_every_exported_model_host_agrees_with_the_model(tmp_path: Path, profile: str, kernel: str) -> None:
    host = Host.boot(HostConfig(profile=profile, kernel=kernel, cpus=4, cmdline="kvm_amd.sev=1"))
    host.load_kvm_amd()
    export(host, tmp_path)
    report = probe(str(tmp_path))
    assert report["model"]["disagree"] == []
    assert any(a["item"].startswith("sysfs sev") for a in report["model"]["agree"])


def test_a_host_whose_kvm_offers_other_vmsa_features_than_the_model_says_is_a_disagreement(
    tmp_path: Path,
) -> None:
    """KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, VMSA_FEATURES) is compared where kvm_amd answered it:
    a 6.12 Genoa offers DebugSwap (0x20); a recorded 0 is the host's to explain."""
    host = Host.boot(
        HostConfig(profile="epyc-9654", kernel="v6.12", cpus=4, bios=("sev_es_asid_space_limit=100",))
    )
    host.load_kvm_amd()
    export(host, tmp_path)
    agree = {a["item"]: a["value"] for a in probe(str(tmp_path))["model"]["agree"]}
    assert agree["KVM_GET_DEVICE_ATTR SEV VMSA features"] == 0x20
    recorded = tmp_path / ".kvmsev" / "probe.json"
    data = json.loads(recorded.read_text())
    data["kvm_sev_vmsa_features"] = 0
    recorded.write_text(json.dumps(data))
    disagree = probe(str(tmp_path))["model"]["disagree"]
    assert [(d["item"], d["observed"], d["predicted"]) for d in disagree] == [
        ("KVM_GET_DEVICE_ATTR SEV VMSA features", 0, 0x20)
    ]


EXPECTED: dict[str, dict[str, Any]] = {
    "milan-edx1": {
        "checks": {
            "SEV enabled in KVM": "PASS",
            "SEV-ES ASID space": "FAIL",
            "SEV-ES enabled in KVM": "FAIL",
        },
        "capacity": (509, 0),
    },
    "milan-253-asids": {"checks": {"SEV ASIDs": "PASS"}, "capacity": (253, 0)},
    "genoa-split-253-6.11": {
        "checks": {"SEV-ES enabled in KVM": "PASS", "Kernel version": "PASS"},
        "capacity": (754, 252),
    },
    "naples-11-asids": {
        "checks": {"SEV enabled in KVM": "PASS", "SEV-ES enabled in KVM": "FAIL"},
        "capacity": (11, 0),
    },
    "smee-off": {
        "checks": {
            "Memory encryption (SMEE)": "FAIL",
            "/dev/sev": "FAIL",
            "SEV enabled in KVM": "FAIL",
        },
        "capacity": (0, 0),
    },
    "sev-param-0": {
        "checks": {"SEV enabled in KVM": "FAIL", "Memory encryption (SMEE)": "PASS"},
        "capacity": (0, 0),
    },
    "cpu-offline": {"checks": {"CPUs online": "WARN"}, "capacity": (1006, 0)},
    "intel-host": {"checks": {"AMD CPU": "FAIL"}, "capacity": (0, 0)},
    "guest-vm": {"checks": {"Bare metal": "WARN"}, "capacity": (0, 0)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_situations_are_diagnosed(name: str) -> None:
    report = probe(str(FIXTURES / name))
    want = EXPECTED[name]
    got = statuses(report)
    for check, status in want["checks"].items():
        assert got.get(check) == status, (check, got.get(check))
    assert (report["capacity"]["sev"], report["capacity"]["sev_es"]) == want["capacity"]
    disagree = {d["item"]: d["suspect"] for d in report["model"]["disagree"]}
    assert disagree == want.get("disagree", {})


def test_every_fixture_has_a_source_and_an_expectation() -> None:
    names = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert names == set(EXPECTED)
    assert all((FIXTURES / n / "SOURCE").read_text().strip() for n in names)


def test_failing_hints_name_the_fix() -> None:
    report = probe(str(FIXTURES / "sev-param-0"))
    sev = next(t for t in report["tests"] if t["name"] == "SEV enabled in KVM")
    assert "kvm_amd.sev=1" in sev["fix_hint"]
    smee = next(
        t for t in probe(str(FIXTURES / "smee-off"))["tests"] if t["name"] == "Memory encryption (SMEE)"
    )
    assert "SMEE" in smee["fix_hint"]
    es = next(t for t in probe(str(FIXTURES / "milan-edx1"))["tests"] if t["name"] == "SEV-ES ASID space")
    assert "SEV-ES ASID Space Limit" in es["fix_hint"]


def test_probe_cli_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["probe", "--root", str(FIXTURES / "genoa-split-253-6.11"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"tests", "summary", "host", "model"}
    assert set(report["tests"][0]) == {"name", "status", "category", "message", "fix_hint"}
    assert main(["probe", "--root", str(FIXTURES / "smee-off")]) == 1
    capsys.readouterr()
    assert main(["probe", "--root", str(tmp_path / "missing")]) == 2
    assert "--root" in capsys.readouterr().err


def test_boot_export_root_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boot", "--profile", "lab", "--export-root", str(tmp_path / "lab"), "--json"]) == 0
    capsys.readouterr()
    assert (tmp_path / "lab" / "sys/module/kvm_amd/parameters/sev").read_text() == "Y\n"
    assert main(["probe", "--root", str(tmp_path / "lab")]) == 0
