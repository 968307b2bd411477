"""Every command answers the same way: bad input is exit 2 with one line naming the file or option
and the field, nothing is written, and "something is wrong" answers are exit 1."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kvmsev.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "hosts"
EXAMPLES = Path(__file__).parent.parent / "examples"
LAB_PROFILE = Path(__file__).parent.parent / "src" / "kvmsev" / "hw" / "profiles" / "lab.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``argv``, assert it is an input error (exit 2, one stderr line, no output); the line."""
    code, out, err = run(capsys, *argv)
    assert (code, out, err.count("\n")) == (2, "", 1), (code, out, err)
    assert err.startswith("kvmsev: error: ")
    return err.strip()


def host_copy(tmp_path: Path, name: str = "naples-11-asids") -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


# -- exit codes ---------------------------------------------------------------------------------


def test_run_exits_1_when_an_invariant_breaks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", str(EXAMPLES / "early-run-lost-flush.yaml"))
    assert code == 1 and "tlb_isolation" in out
    code, _, _ = run(capsys, "run", str(EXAMPLES / "sev-launch.yaml"))
    assert code == 0


def test_run_can_leave_the_breaking_invariant_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "run",
        str(EXAMPLES / "early-run-lost-flush.yaml"),
        "--skip-invariant",
        "tlb_isolation",
        "--json",
    )
    assert code == 0
    assert "tlb_isolation" not in json.loads(out)["invariants"]["checked"]


def test_check_with_only_the_holding_invariants_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--no-early-runs", "--skip-invariant", "teardown_clean", "--json")
    report = json.loads(out)
    assert code == 0 and report["complete"] and report["violations"] == []
    assert "teardown_clean" not in report["invariants"]
    code, out, _ = run(capsys, "check", "--no-early-runs", "--invariant", "teardown_clean", "--json")
    assert code == 1 and [v["invariant"] for v in json.loads(out)["violations"]] == ["teardown_clean"]


def test_unknown_invariant_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--invariant: unknown invariant 'tlb'" in refused(capsys, "check", "--invariant", "tlb")
    every = [a for name in _invariants() for a in ("--skip-invariant", name)]
    assert "leaves no invariant" in refused(capsys, "check", *every)


def _invariants() -> list[str]:
    from kvmsev.check.invariants import ALL

    return list(ALL)


# -- the JSON contract --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "schema"),
    [
        (["boot", "--cpus", "2"], "kvmsev.boot/1"),
        (["cpuid", "decode", "0x1", "0x16f", "0xf", "0x1"], "kvmsev.cpuid/1"),
        (["profiles"], "kvmsev.profiles/1"),
        (["patches"], "kvmsev.patches/1"),
        (["run", str(EXAMPLES / "sev-launch.yaml")], "kvmsev.run/1"),
        (["check", "--depth", "2"], "kvmsev.check/1"),
        (["probe", "--root", str(FIXTURES / "naples-11-asids")], "kvmsev.probe/1"),
        (["demo"], "kvmsev.demo/1"),
    ],
)
def test_every_json_output_names_its_schema(
    capsys: pytest.CaptureFixture[str], argv: list[str], schema: str
) -> None:
    _, out, _ = run(capsys, *argv, "--json")
    assert json.loads(out)["schema"] == schema


def test_demo_json_has_the_tables_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "demo", "--json")
    data = json.loads(out)
    smee_off = [r for r in data["hosts"] if r["host"] == "Milan 7763, BIOS SMEE off"]
    assert [r["kernel"] for r in smee_off] == ["v5.12", "v5.13"]
    assert not any(r["sev_enabled"] for r in smee_off)
    early = [g for g in data["guest_runs"] if g["scenario"] == "examples/early-run-lost-flush.yaml"]
    assert early and not any(g["tlb_isolation"] for g in early)
    assert early[0]["entries"][0] == {"flush_by": ["kvm_mmu_load"], "entered": False}


# -- numbers and options ------------------------------------------------------------------------


def test_cpus_takes_the_number_forms_every_option_takes(capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("0x4", "4", "0b100"):
        code, out, _ = run(capsys, "boot", "--cpus", text, "--json")
        assert code == 0 and json.loads(out)["cpus"] == 4
    assert "--cpus" in refused(capsys, "boot", "--cpus", "four")


def test_an_unrecognised_argument_points_at_the_subcommands_help(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "check", "--depht", "3")
    assert "unrecognized arguments: --depht 3" in line and "see 'kvmsev check --help'" in line


def test_run_takes_every_host_option_and_it_overrides_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys,
        "run",
        str(EXAMPLES / "sev-launch.yaml"),
        "--profile",
        "epyc-7763",
        "--bios",
        "sev_asid_count=253",
        "--cpus",
        "8",
        "--json",
    )
    boot = json.loads(out)["boot"]
    assert (boot["profile"], boot["cpus"], boot["max_sev_asid"]) == ("epyc-7763", 8, 253)


# -- scenario files -----------------------------------------------------------------------------


def test_a_scenario_host_error_names_the_file_field_not_an_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("host: {profile: epyc-7763, bios: [sev_asid_count=7]}\nsteps: []\n")
    assert refused(capsys, "run", str(path)).startswith("kvmsev: error: b.yaml: host.bios.sev_asid_count: ")
    path.write_text("hosts: {a: {profile: lab}, b: {profile: lab, kernel: v9}}\nsteps: []\n")
    assert refused(capsys, "run", str(path)).startswith("kvmsev: error: b.yaml: hosts.b.kernel: ")
    assert "--kernel" in refused(capsys, "run", str(EXAMPLES / "sev-launch.yaml"), "--kernel", "v9")


def test_yaml_aliases_cannot_stand_for_billions_of_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["host: {profile: lab}", "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "steps: *x9"]) + "\n")
    assert "once YAML aliases are expanded" in refused(capsys, "run", str(path))


def test_a_yaml_syntax_error_names_the_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("host: {profile: lab}\nsteps: [{op: vm_create, vm: a}\n")
    line = refused(capsys, "run", str(path))
    assert line.startswith("kvmsev: error: b.yaml: not valid YAML: ")
    assert line.endswith("(line 3, column 1)")


def test_yaml_indented_two_thousand_levels_deep_is_refused_as_too_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fuzzer's deepest block nesting: one ``-`` per line, each a space further in (2 MB)."""
    path = tmp_path / "deep.yaml"
    path.write_text("".join(" " * i + "- \n" for i in range(2000)))
    line = refused(capsys, "run", str(path))
    assert line.startswith("kvmsev: error: deep.yaml: not valid YAML: ")
    assert "nest" in line


def test_a_dbg_decrypt_reported_as_data_is_held_to_16_mib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fuzzer's input: 2 GiB decrypted into a buffer the VMM maps, then reported as data."""
    path = tmp_path / "dbg.yaml"
    step = "{op: dbg_decrypt, vm: a, src_uaddr: 0x7f0000100000, len: 2147483648}"
    path.write_text(f"host: {{profile: lab}}\nsteps: [{{op: vm_create, vm: a}}, {step}]\n")
    line = refused(capsys, "run", str(path))
    assert line.startswith("kvmsev: error: dbg.yaml: steps[1].len: 2147483648 is over 16 MiB")
    path.write_text(
        f"host: {{profile: lab}}\nsteps: [{{op: vm_create, vm: a}}, {step[:-1]}, dst_uaddr: 0x1000}}]\n"
    )
    code, _, _ = run(capsys, "run", str(path))
    assert code == 0, "with a destination the kernel's answer is reported (here -ENOTTY: no SEV)"


def test_scenario_data_over_64_mib_in_total_are_refused_before_they_are_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five 16 MiB values, four through a YAML alias: each is within the 16 MiB a value may have,
    together they are over the scenario's 64 MiB, and the fifth is refused before it is built."""
    step = "{op: launch_update_data, vm: a, data: {zero: 16777216}}"
    lines = ["host: {profile: lab}", "steps:", "  - {op: vm_create, vm: a}", f"  - &big {step}"]
    path = tmp_path / "big.yaml"
    path.write_text("\n".join([*lines, *["  - *big"] * 3]) + "\n")
    assert run(capsys, "run", str(path))[0] == 0, "64 MiB in all is accepted"
    path.write_text("\n".join([*lines, *["  - *big"] * 4]) + "\n")
    line = refused(capsys, "run", str(path))
    assert line == (
        "kvmsev: error: big.yaml: steps[5].data: the scenario's data add up to more than 64 MiB, "
        "the most kvmsev reads for one scenario"
    )


def test_a_file_named_by_many_steps_is_read_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kvmsev import files

    reads: list[str] = []
    read_bounded = files.read_bounded

    def counted(path: str, limit: int) -> bytes:
        reads.append(path)
        return read_bounded(path, limit)

    monkeypatch.setattr(files, "read_bounded", counted)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 16)
    step = "{op: launch_update_data, vm: a, data: {file: blob.bin}}"
    path = tmp_path / "many.yaml"
    path.write_text("host: {profile: lab}\nsteps:\n  - {op: vm_create, vm: a}\n" + f"  - {step}\n" * 50)
    assert run(capsys, "run", str(path))[0] == 0
    assert reads == [str(tmp_path / "blob.bin")]


def test_a_run_that_would_write_past_the_model_s_budget_stops_with_the_step_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second input class: a measurement buffer of 4 GiB the VMM maps (LAUNCH_MEASURE then
    fails, -EINVAL), then DBG_DECRYPT over that buffer in place, which the kernel takes a page at
    a time. With the budget made 1 MiB the run stops at the decrypt, with nothing reported."""
    from kvmsev.scenario import runner

    monkeypatch.setattr(runner, "WRITE_BUDGET", 1 << 20)
    path = tmp_path / "dbg.yaml"
    buffer = "0x7f0000000000"
    path.write_text(
        "host: {profile: lab}\nsteps:\n"
        + "".join(f"  - {{op: {op}, vm: a}}\n" for op in ("vm_create", "sev_init", "launch_start"))
        + "  - {op: launch_measure, vm: a, len: 0xfffff000}\n"
        + "  - {op: launch_finish, vm: a}\n"
        + f"  - {{op: dbg_decrypt, vm: a, src_uaddr: {buffer}, dst_uaddr: {buffer}, len: 0xfffff000}}\n"
    )
    line = refused(capsys, "run", str(path))
    assert line.startswith(
        "kvmsev: error: dbg.yaml: steps[5]: dbg_decrypt: the run writes more than 1 MiB of guest memory"
    )


def test_snp_guest_pages_count_against_the_budget_so_a_2_40_byte_launch_update_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNP_LAUNCH_UPDATE encrypts each page in place; the model holds none of their bytes, but
    counts them, so ZERO pages over 2**40 bytes (2**28 firmware commands: the kernel's memslot
    would end it, which the model has not got) stop at the budget, here set to
    1 MiB; half a MiB of them is a launch like any other."""
    from kvmsev.scenario import runner

    monkeypatch.setattr(runner, "WRITE_BUDGET", 1 << 20)
    path = tmp_path / "snp.yaml"
    path.write_text(
        "host: {profile: epyc-9124, kernel: v6.12, cpus: 2, bios: [sev_es_asid_space_limit=100, snp=on]}\n"
        "steps:\n"
        "  - {op: vm_create, vm: a, type: 4}\n"
        "  - {op: sev_init2, vm: a}\n"
        "  - {op: snp_launch_start, vm: a}\n"
        "  - {op: snp_launch_update, vm: a, type: 3, len: 0x10000000000}\n"
    )
    line = refused(capsys, "run", str(path))
    assert line.startswith(
        "kvmsev: error: snp.yaml: steps[3]: snp_launch_update: the run writes more than 1 MiB of guest memory"
    )
    path.write_text(path.read_text().replace("len: 0x10000000000", "len: 0x80000"))
    assert run(capsys, "run", str(path))[0] == 0


def test_the_write_budget_is_one_for_all_the_hosts_of_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """640 KiB decrypted in place on each of two hosts (aligned, so the firmware writes the
    destination directly, once): either host alone is within a 1 MiB budget, the second one's
    takes the run over it."""
    from kvmsev.scenario import runner

    monkeypatch.setattr(runner, "WRITE_BUDGET", 1 << 20)
    buffer, size = "0x7f0000000000", "0xa0000"
    flow = [
        *(f"{{op: {op}, vm: x, host: HOST}}" for op in ("vm_create", "sev_init", "launch_start")),
        f"{{op: launch_measure, vm: x, len: {size}, host: HOST}}",
        "{op: launch_finish, vm: x, host: HOST}",
        f"{{op: dbg_decrypt, vm: x, src_uaddr: {buffer}, dst_uaddr: {buffer}, len: {size}, host: HOST}}",
    ]
    path = tmp_path / "two.yaml"
    head = "hosts: {a: {profile: lab}, b: {profile: lab}}\nsteps:\n"
    path.write_text(head + "".join(f"  - {s.replace('HOST', 'a')}\n" for s in flow))
    assert run(capsys, "run", str(path))[0] == 0
    path.write_text(head + "".join(f"  - {s.replace('HOST', h)}\n" for h in "ab" for s in flow))
    assert refused(capsys, "run", str(path)).startswith(
        "kvmsev: error: two.yaml: steps[11]: dbg_decrypt: the run writes more than 1 MiB"
    )


def test_a_kernel_that_cannot_be_hashed_is_read_once_however_many_steps_name_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link to ``/dev/zero`` is read to the 1 GiB limit before it is refused (about a second);
    five steps naming it cost one read, and the error names the first."""
    from kvmsev import files

    reads: list[str] = []

    def refusing(path: str, limit: int) -> bytes:
        reads.append(path)
        raise ValueError("larger than 1 GiB")

    monkeypatch.setattr(files, "sha256_bounded", refusing)
    (tmp_path / "vmlinuz").symlink_to("/dev/zero")
    step = "{op: launch_update_data, vm: a, data: {sev_hashes: {kernel: vmlinuz}}}"
    path = tmp_path / "hashes.yaml"
    path.write_text("host: {profile: lab}\nsteps:\n  - {op: vm_create, vm: a}\n" + f"  - {step}\n" * 5)
    line = refused(capsys, "run", str(path))
    assert line.startswith("kvmsev: error: hashes.yaml: steps[1].data: ")
    assert "file 'vmlinuz': larger than 1 GiB" in line
    assert reads == [str(tmp_path / "vmlinuz")]


def test_an_unknown_vm_is_named_with_at_most_twenty_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vms.yaml"
    creates = "".join(f"  - {{op: vm_create, vm: v{i}}}\n" for i in range(25))
    path.write_text(f"host: {{profile: lab}}\nsteps:\n{creates}  - {{op: sev_init, vm: nope}}\n")
    line = refused(capsys, "run", str(path))
    known = ", ".join(f"v{i}" for i in range(20))
    assert line.endswith(f"steps[25].vm: no VM 'nope' (known: {known} and 5 more)")


# -- profiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sev_firmware": "false"}, "sev_firmware"),
        ({"turbo": True}, "turbo"),
        ({"bios": {"smee": {"default": "on"}, "hyperthreading": {}}}, "bios.hyperthreading"),
        ({"bios": {"sev_es_asid_space_limit": {"min": 6, "max": 5}}}, "bios.sev_es_asid_space_limit"),
        ({"bios": {"sev_asid_count": {"choices": [2, 4], "default": 3}}}, "bios.sev_asid_count"),
        ({"threads": 0}, "threads"),
        ({"cpuid_8000001f": {"eax": "0xB", "ebx": "0x16F", "ecx": "0x4"}}, "cpuid_8000001f.edx"),
    ],
)
def test_a_profile_is_validated_field_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], field: str
) -> None:
    document = json.loads(LAB_PROFILE.read_text()) | change
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(document))
    assert refused(capsys, "boot", "--profile", str(path)).startswith(f"kvmsev: error: mine.json: {field}")


# -- output directories -------------------------------------------------------------------------


def test_capture_into_the_root_it_reads_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = host_copy(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert "overlaps" in refused(capsys, "probe", "--root", str(root), "--capture", str(root / "again"))
    assert "overlaps" in refused(capsys, "probe", "--root", str(root), "--capture", str(root))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_capture_into_a_non_empty_directory_is_refused_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = host_copy(tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep").write_text("x")
    assert "is not empty" in refused(capsys, "probe", "--root", str(root), "--capture", str(busy))
    assert [p.name for p in busy.iterdir()] == ["keep"]
    plain = tmp_path / "file"
    plain.write_text("x")
    assert "not a directory" in refused(capsys, "probe", "--root", str(root), "--capture", str(plain))


def test_a_capture_appears_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = host_copy(tmp_path)
    code, _, _ = run(capsys, "probe", "--root", str(root), "--capture", str(tmp_path / "copy"))
    assert code in (0, 1)
    assert (tmp_path / "copy" / ".kvmsev" / "probe.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.")]


def test_check_out_that_is_a_file_is_refused_before_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "cex"
    plain.write_text("x")
    assert "--out: " in refused(capsys, "check", "--out", str(plain))


def test_an_output_path_through_a_dangling_link_is_refused_before_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mkdir through a symbolic link to nothing fails with EEXIST: say so before the work."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for target in ("dangling", "dangling/below"):
        line = refused(capsys, "check", "--progress", "--out", str(tmp_path / target), "--max-states", "50")
        assert line.endswith(f"{tmp_path / 'dangling'} is a symbolic link to nothing"), line
    line = refused(capsys, "boot", "--export-root", str(tmp_path / "dangling" / "root"))
    assert "is a symbolic link to nothing" in line


def test_a_yaml_scenario_over_4_mib_is_refused_before_parsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyYAML without libyaml takes about a second per MiB: a 64 MiB file would take minutes."""
    text = "steps: [" + "{op: vm_create, vm: a}, " * 200_000 + "]\n"
    (tmp_path / "big.yaml").write_text(text)
    (tmp_path / "big.json").write_text('{"steps": [' + '{"op": "vm_create", "vm": "a"}, ' * 200_000 + "{}]}")
    line = refused(capsys, "run", str(tmp_path / "big.yaml"))
    assert line == "kvmsev: error: big.yaml: larger than 4 MiB of YAML (JSON may have up to 64 MiB)"
    assert "larger than" not in refused(capsys, "run", str(tmp_path / "big.json"))


def test_a_parameter_that_is_not_utf8_is_exported_as_its_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shell passes bytes; Python hands undecodable ones over as surrogates (surrogateescape)."""
    root = tmp_path / "root"
    code, _, err = run(capsys, "boot", "--param=\udcff", "--export-root", str(root))
    assert (code, err) == (0, "")
    assert any(b"\xff" in p.read_bytes() for p in root.rglob("*") if p.is_file())
    code, _, err = run(capsys, "probe", "--root", str(root))
    assert code in (0, 1) and "Traceback" not in err


# -- recorded hosts -----------------------------------------------------------------------------


def test_probe_of_an_empty_or_unrelated_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "holds no recorded host" in refused(capsys, "probe", "--root", str(tmp_path))
    (tmp_path / "notes.txt").write_text("hello")
    assert "holds no recorded host" in refused(capsys, "probe", "--root", str(tmp_path))
    assert "empty path" in refused(capsys, "probe", "--root", "")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"cpuid": {"0x8000001f": "fast"}}, "cpuid.0x8000001f"),
        ({"uid": "root"}, "uid"),
        ({"sev_platform_status": {"api_major": 300}}, "sev_platform_status.api_major"),
    ],
)
def test_a_probe_record_of_the_wrong_shape_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], field: str
) -> None:
    root = host_copy(tmp_path)
    (root / ".kvmsev" / "probe.json").write_text(json.dumps(document))
    assert f"probe.json: {field}" in refused(capsys, "probe", "--root", str(root))


def test_a_probe_record_that_is_not_utf8_or_too_deep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = host_copy(tmp_path)
    record = root / ".kvmsev" / "probe.json"
    record.write_bytes(b'{"uid": "\xff"}')
    assert "not UTF-8" in refused(capsys, "probe", "--root", str(root))
    record.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in refused(capsys, "probe", "--root", str(root))


def test_damaged_files_of_a_recorded_host_are_reported_not_crashed_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = host_copy(tmp_path)
    (root / "proc" / "sys" / "kernel" / "osrelease").write_bytes(b"5.13\0garbage\n")
    (root / "sys" / "devices" / "system" / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "devices" / "system" / "cpu" / "online").write_text("0-,x\n")
    for config in (root / "boot").glob("config-*"):
        config.unlink()
    (root / "proc" / "config.gz").write_bytes(gzip.compress(b"CONFIG_KVM_AMD_SEV=y\n" * 1000)[:40])
    dmesg = root / ".kvmsev" / "dmesg.txt"
    dmesg.unlink()
    dmesg.symlink_to("/dev/zero")
    (root / "proc" / "cpuinfo").write_text("vendor_id\t: AuthenticAMD\n")
    code, out, err = run(capsys, "probe", "--root", str(root), "--json")
    assert code in (0, 1) and err == ""
    report = json.loads(out)
    assert report["host"]["release"] is None


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs a /proc file system")
def test_an_output_directory_the_file_system_refuses_is_refused_before_the_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Root passes every access() check; /proc still refuses new entries."""
    line = refused(capsys, "check", "--out", "/proc/kvmsev-out", "--max-states", "50")
    assert line.startswith("kvmsev: error: --out: cannot create /proc/kvmsev-out")
    line = refused(capsys, "boot", "--export-root", "/proc/kvmsev-root")
    assert line.startswith("kvmsev: error: --export-root: cannot create /proc/kvmsev-root")


def test_guest_data_for_a_vm_when_kvm_amd_is_not_loaded_is_an_enoent_step(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With no module there are no VMs to name-check, and no process memory to write to."""
    scenario = tmp_path / "s.yaml"
    steps = "[{op: snp_launch_update, vm: b, data: ''}, {op: mem_write, vm: c, data: '00'}]"
    scenario.write_text(f"host: {{kernel: v6.12, fail_alloc: [sev_vmcbs]}}\nsteps: {steps}\n")
    code, out, err = run(capsys, "run", str(scenario), "--json")
    assert (code, err) == (0, "")
    assert [s["errno"] for s in json.loads(out)["steps"]] == ["ENOENT", "ENOENT"]
