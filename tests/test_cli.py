"""The command line as a user runs it: outputs, the JSON contract, and refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvmsev.cli.main import main
from kvmsev.kvm.kernels import RELEASES
from kvmsev.kvm.patches import PATCHES

CONTRACT_KEYS = {
    "kernel",
    "profile",
    "host_cpuid_8000001f",
    "supported_cpuid_8000001f",
    "loaded",
    "load_error",
    "sev_enabled",
    "sev_es_enabled",
    "min_sev_asid",
    "max_sev_asid",
    "sysfs",
    "misc_capacity",
    "dmesg",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_boot_json_carries_every_contract_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "boot", "--json", "--unload", "--cpus", "2")
    report = json.loads(out)
    assert code == 0
    assert report.keys() >= CONTRACT_KEYS
    assert report["schema"] == "kvmsev.boot/1"
    assert set(report["unload"]) >= {"flushed", "firmware", "dmesg", "leaked_bytes"}
    assert report["misc_capacity"] == {"sev": 509, "sev_es": 0}


def test_boot_human_output_names_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "boot", "--kernel", "v5.12", "--param", "kvm_amd.sev=1", "--unload", "--cpus", "2"
    )
    assert code == 0
    assert "SEV supported: 509 ASIDs" in out
    assert "WBINVD on all CPUs + DF_FLUSH" in out


def test_invalid_parameter_value_is_modeled_not_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "boot", "--json", "--param", "kvm_amd.sev=maybe")
    report = json.loads(out)
    assert code == 0
    assert report["loaded"] is False and report["load_error"] == "EINVAL"
    assert report["dmesg"] == ["kvm_amd: `maybe' invalid for parameter `sev'"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["boot", "--profile", "epyc-0000"], "--profile"),
        (["boot", "--apply", "nonsense"], "--apply"),
        (["boot", "--kernel", "v9.9"], "--kernel"),
        (["boot", "--cpuid", "1:2:3:zz"], "--cpuid EDX"),
        (["boot", "--config", "CONFIG_NOPE=y"], "--config"),
        (["boot", "--config", "CONFIG_KVM_AMD_SEV=m"], "--config"),
        (["boot", "--bios", "smee=maybe"], "--bios smee"),
        (["boot", "--bios", "sev_es_asid_space_limit=9999"], "--bios sev_es_asid_space_limit"),
        (
            ["boot", "--profile", "epyc-9654", "--bios", "sev_asid_count=253"],
            "--bios sev_asid_count",
        ),
        (["boot", "--bios", "turbo=on"], "--bios"),
        (["boot", "--cpus", "100000"], "--cpus"),
        (["boot", "--cpus", "0"], "--cpus"),
        (["boot", "--param", "kvm.ignore_msrs=1"], "--param"),
        (["boot", "--fail-alloc", "iopm"], "--fail-alloc"),
        (["cpuid", "decode", "1", "2", "3", "0x1FFFFFFFF"], "EDX"),
    ],
)
def test_bad_input_gets_one_line_naming_the_field_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"kvmsev: error: {field}")


def test_usage_errors_are_one_line_too() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kvmsev.cli.main", "boot", "--cpus", "many"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_cpuid_decode(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cpuid", "decode", "0x0001FC3F", "0x00004173", "0x1FD", "1", "--json")
    decoded = json.loads(out)
    assert code == 0
    assert decoded["c_bit"] == 51 and decoded["max_sev_asid"] == 509
    assert "SEV_ES" in decoded["features"]


def test_profiles_lists_every_builtin_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "profiles", "--json")
    document = json.loads(out)
    assert document["schema"] == "kvmsev.profiles/1"
    items = document["profiles"]
    names = {p["name"] for p in items}
    assert {
        "epyc-7551p",
        "epyc-7742",
        "epyc-7763",
        "epyc-9654",
        "epyc-9124",
        "epyc-9754",
        "epyc-9655",
        "epyc-4124p",
        "ryzen-3950x",
        "lab",
    } <= names
    assert all(p["sources"]["cpuid_8000001f"] for p in items)


def test_patches_lists_kind_and_commit(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "patches", "--json")
    document = json.loads(out)
    assert document["schema"] == "kvmsev.patches/1"
    items = document["patches"]
    assert len([i for i in items if i["group"] == "series"]) == 15
    assert [i["name"] for i in items] == [p.name for p in PATCHES]
    assert {i["group"] for i in items} - {"series", "v4", "5.13", "stable"} <= set(RELEASES)
    assert {i["name"]: i["changes_behaviour"] for i in items}["append-enabled"] is True


def test_demo_compares_both_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0
    assert out.count("v5.12") >= 8 and out.count("v5.13") >= 8


def test_user_profile_file_is_validated(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "mine.json"
    path.write_text(
        json.dumps(
            {
                "name": "mine",
                "model_name": "x",
                "vendor": "AuthenticAMD",
                "family": 25,
                "model": 1,
                "threads": "many",
                "cpuid_8000001f": {},
                "sources": {},
            }
        )
    )
    code, _, err = run(capsys, "boot", "--profile", str(path))
    assert code == 2
    assert "mine.json: cpuid_8000001f: eax" in err or "mine.json: threads" in err


def test_export_root_that_cannot_be_a_directory_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "file"
    plain.write_text("keep")
    for target in (plain, plain / "below"):
        code, out, err = run(capsys, "boot", "--export-root", str(target))
        assert (code, out, err.count("\n")) == (2, "", 1)
        assert err.startswith("kvmsev: error: --export-root")
    assert plain.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
