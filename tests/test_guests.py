"""KVM's SEV ioctl surface: errno values, firmware status copy-back, and wrong-order use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kvmsev.cli.main import main
from kvmsev.scenario import runner, schema


def run(steps: list[dict[str, Any]], **host: Any) -> list[dict[str, Any]]:
    host.setdefault("profile", "lab")
    report = runner.run(schema.parse({"host": host, "steps": steps}))
    out: list[dict[str, Any]] = report["steps"]
    return out


def launch(vm: str = "g", policy: int = 0) -> list[dict[str, Any]]:
    return [
        {"op": "vm_create", "vm": vm},
        {"op": "sev_init", "vm": vm},
        {"op": "launch_start", "vm": vm, "policy": policy},
        {"op": "mem_write", "vm": vm, "uaddr": 0x7F0000100000, "data": "11" * 4096},
        {"op": "launch_update_data", "vm": vm, "uaddr": 0x7F0000100000, "len": 4096},
        {"op": "launch_measure", "vm": vm},
    ]


def test_commands_before_launch_start_use_fd_zero_and_get_ebadf() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "guest_status", "vm": "g"},
            {"op": "launch_finish", "vm": "g"},
        ]
    )
    assert [s["errno"] for s in steps[2:]] == ["EBADF", "EBADF"]
    assert all(not s["events"] for s in steps[2:]), "the firmware is never reached"


def test_commands_on_a_non_sev_vm_are_enotty_and_unknown_ids_einval() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "launch_start", "vm": "g"},
            {"op": "mem_enc_op", "vm": "g", "id": 19},
            {"op": "mem_enc_op", "vm": "g", "id": 99},
            {"op": "reg_region", "vm": "g", "uaddr": 4096, "size": 4096},
        ]
    )
    assert [s["errno"] for s in steps[1:]] == ["ENOTTY", "EINVAL", "EINVAL", "ENOTTY"]


def test_double_init_is_ebusy_and_an_invalid_sev_fd_ebadf() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "launch_start", "vm": "g", "sev_fd": 7},
        ]
    )
    assert steps[2]["errno"] == "EBUSY"
    assert steps[3]["errno"] == "EBADF"


def test_memlock_limit_is_enforced_per_vm_with_the_kernel_message() -> None:
    steps = run(
        [
            *launch()[:3],
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"zero": 17 * 4096}},
            {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 17 * 4096},
        ]
    )
    assert steps[-1]["errno"] == "ENOMEM"
    assert {"kind": "dmesg", "text": "SEV: 17 locked pages exceed the lock limit of 16."} in steps[-1][
        "events"
    ]
    allowed = run(
        [
            *launch()[:3],
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"zero": 17 * 4096}},
            {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 17 * 4096},
        ],
        cap_ipc_lock=True,
    )
    assert allowed[-1]["ret"] == 0


HUGE = 1 << 44  # 2**32 pages: more than INT_MAX, which pin_user_pages_fast() cannot take


def test_a_region_of_more_than_int_max_pages_is_einval_with_one_warning() -> None:
    """sev_pin_memory (5.12 on): WARN_ON_ONCE(npages > INT_MAX) -> -EINVAL, the splat printed
    once per boot."""
    region = {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": HUGE}
    steps = run([*launch()[:3], region, region], cap_ipc_lock=True, kernel="v5.13")
    assert [s["errno"] for s in steps[-2:]] == ["EINVAL", "EINVAL"]
    warning = {"kind": "dmesg", "text": "WARNING: at arch/x86/kvm/svm/sev.c sev_pin_memory [kvm_amd]"}
    assert steps[-2]["events"] == [warning]
    assert steps[-1]["events"] == []


def test_a_reloaded_kvm_amd_warns_again_while_the_page_allocator_does_not() -> None:
    """A WARN_ON_ONCE's flag lives in its module's data: a fresh kvm_amd warns again. The page
    allocator is built in, so its warning (a 126 MB ASID bitmap here) stays once per boot."""
    region = {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": HUGE}
    reload = [{"op": "vm_destroy", "vm": "g"}, {"op": "module_unload"}, {"op": "module_load"}]
    steps = run([*launch()[:3], region, *reload, *launch()[:3], region], cap_ipc_lock=True, kernel="v5.13")
    pin_warning = "WARNING: at arch/x86/kvm/svm/sev.c sev_pin_memory [kvm_amd]"
    assert [[e["text"] for e in s["events"] if e["kind"] == "dmesg"] for s in (steps[3], steps[-1])] == [
        [pin_warning],
        [pin_warning],
    ]
    huge_bitmap = {"kernel": "v5.13", "cpuid": "0x3:0x0:0x3c167f13:0x1076571", "cpus": 2}
    report = runner.run(schema.parse({"host": huge_bitmap, "steps": [{"op": "module_unload"}, *reload[2:]]}))
    allocator_warning = "WARNING: at mm/page_alloc.c __alloc_pages"
    assert allocator_warning in report["boot"]["dmesg"]
    assert [e for e in report["steps"][1]["events"] if e.get("text") == allocator_warning] == []


def test_the_memlock_limit_is_checked_before_the_int_max_bound_up_to_6_17() -> None:
    region = {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": HUGE}
    steps = run([*launch()[:3], region], kernel="v5.13")
    assert steps[-1]["errno"] == "ENOMEM"
    assert steps[-1]["events"] == [
        {"kind": "dmesg", "text": f"SEV: {HUGE >> 12} locked pages exceed the lock limit of 16."}
    ]


def test_from_7_1_the_int_max_bound_comes_first_and_warns_no_more() -> None:
    """8acffeef5ef7 (7.1): -EINVAL before the memlock check, with no splat; 7.1's memlock
    refusal reads 'total pages would exceed'."""
    region = {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": HUGE}
    for kernel, events in (
        ("v7.0", ["SEV: 4294967296 locked pages exceed the lock limit of 16."]),
        ("v7.1", []),
    ):
        steps = run([*launch()[:3], region], kernel=kernel)
        assert steps[-1]["errno"] == ("ENOMEM" if events else "EINVAL"), kernel
        assert [e["text"] for e in steps[-1]["events"]] == events, kernel
    over = [
        *launch()[:3],
        {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"zero": 17 * 4096}},
        {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 17 * 4096},
    ]
    steps = run(over, kernel="v7.1")
    assert steps[-1]["errno"] == "ENOMEM"
    assert [e["text"] for e in steps[-1]["events"]] == [
        "SEV: 17 total pages would exceed the lock limit of 16."
    ]

    steps = run([*launch()[:3], {"op": "reg_region", "vm": "g", "uaddr": 0x7E0000000000, "size": 8192}])
    assert steps[-1]["errno"] == "ENOMEM"
    assert {"kind": "dmesg", "text": "SEV: Failure locking 2 pages."} in steps[-1]["events"]


def test_unregister_needs_an_exact_match_and_flushes_caches() -> None:
    steps = run(
        [
            *launch()[:3],
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000000000, "data": {"zero": 8192}},
            {"op": "reg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 8192},
            {"op": "unreg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 4096},
            {"op": "unreg_region", "vm": "g", "uaddr": 0x7F0000000000, "size": 8192},
        ]
    )
    assert steps[-2]["errno"] == "EINVAL"
    assert steps[-1]["ret"] == 0 and [e["kind"] for e in steps[-1]["events"]] == ["wbinvd"]


def test_launch_secret_lands_in_guest_memory_and_a_bad_mac_is_refused() -> None:
    secret = "53" * 32
    steps = run(
        [
            *launch(),
            {"op": "launch_secret", "vm": "g", "secret": secret, "guest_uaddr": 0x7F0000100100},
            {
                "op": "launch_secret",
                "vm": "g",
                "secret": secret,
                "mac": "00" * 32,
                "guest_uaddr": 0x7F0000100100,
            },
            {"op": "launch_finish", "vm": "g"},
            {"op": "dbg_decrypt", "vm": "g", "src_uaddr": 0x7F0000100100, "len": 32},
        ]
    )
    assert steps[6]["ret"] == 0
    assert steps[7]["fw_error"] == {"code": 0x0B, "name": "BAD_MEASUREMENT"}
    assert steps[9]["result"]["data"] == secret


def test_launch_secret_needs_contiguous_guest_pages() -> None:
    steps = run(
        [
            *launch(),
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000300FF0, "data": "00" * 16},
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000301000, "data": "00" * 16},
            {"op": "launch_secret", "vm": "g", "secret": "00" * 32, "guest_uaddr": 0x7F0000300FF0},
        ]
    )
    assert steps[-1]["errno"] == "EINVAL"


def test_module_unload_is_refused_while_vms_exist_and_reload_keeps_the_firmware() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "module_unload"},
            {"op": "vm_destroy", "vm": "g"},
            {"op": "module_unload"},
            {"op": "vm_create", "vm": "h"},
            {"op": "module_load"},
            {"op": "vm_create", "vm": "h"},
            {"op": "sev_init", "vm": "h"},
        ]
    )
    assert steps[2]["errno"] == "EBUSY"
    assert steps[4]["ret"] == 0 and steps[4]["result"]["flushed"] is True, (
        "the freed ASID is flushed at unload"
    )
    assert steps[5]["errno"] == "ENOENT", "no /dev/kvm without kvm_amd"
    assert steps[8]["result"] == {"asid": 3}


def test_an_injected_fault_fails_the_next_command_it_names_once() -> None:
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "launch_start", "vm": "g"},
            {"op": "fw_fault", "cmd": "LAUNCH_MEASURE"},
            {"op": "launch_measure", "vm": "g"},
            {"op": "launch_measure", "vm": "g"},
        ]
    )
    assert steps[4]["errno"] == "EIO" and steps[4]["fw_error"]["name"] == "HWSEV_RET_UNSAFE"
    assert steps[5]["errno"] is None


def test_the_boot_cpu_has_no_online_file_and_stays_online() -> None:
    steps = run(
        [
            {"op": "cpu_offline", "cpu": 0},
            {"op": "cpu_offline", "cpu": 1},
            {"op": "cpu_online", "cpu": 0},
            {"op": "cpu_online", "cpu": 1},
        ]
    )
    assert [s["errno"] for s in steps] == ["ENOENT", None, "ENOENT", None]


def test_5_13_maps_every_asid_failure_to_ebusy_even_a_zero_capacity() -> None:
    steps = run(
        [{"op": "vm_create", "vm": "g"}, {"op": "sev_init", "vm": "g"}],
        kernel="v5.13",
        bios=["sev_es_asid_space_limit=5"],
    )
    assert steps[1]["errno"] == "EBUSY", "misc_cg_try_charge said -EINVAL (capacity 0)"


SCENARIO_ERRORS = [
    ({"steps": [{"op": "frobnicate"}]}, "steps[0].op: unknown op 'frobnicate'"),
    ({"steps": [{"op": "sev_init", "vm": "ghost"}]}, "steps[0].vm: no VM 'ghost'"),
    ({"steps": [{"op": "cpu_offline", "cpu": 999}]}, "steps[0].cpu: CPU 999 does not exist"),
    (
        {"steps": [{"op": "vm_create", "vm": "a"}, {"op": "vcpu_run", "vm": "a", "vcpu": "x", "cpu": 0}]},
        "steps[1].vcpu: expected an integer",
    ),
    ({"steps": [{"op": "vm_create"}]}, "steps[0].vm: required by vm_create"),
    (
        {"steps": [{"op": "vm_create", "vm": "a", "colour": "red"}]},
        "steps[0].colour: not a field of vm_create",
    ),
    ({"host": {"profile": "lab", "cpus": "two"}, "steps": []}, "host.cpus: expected an integer"),
    ({"host": {"turbo": True}, "steps": []}, "host.turbo: unknown field"),
    (
        {"steps": [{"op": "vm_create", "vm": "a"}, {"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 0}]},
        "steps[1].vcpu: VM 'a' has 0 vCPUs",
    ),
]


@pytest.mark.parametrize(("doc", "message"), SCENARIO_ERRORS)
def test_bad_scenarios_exit_2_naming_step_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    code = main(["run", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and message in err


def test_malformed_yaml_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps: [ {op: vm_create, vm: a}\n")
    assert main(["run", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_run_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "examples/sev-launch.yaml", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "kvmsev.run/1"
    first = report["steps"][2]
    assert set(first) >= {"op", "ret", "errno", "fw_error", "result", "events", "violations"}
    assert first["events"][0] == {
        "kind": "fw",
        "cmd": "LAUNCH_START",
        "ret": 0,
        "status": "SUCCESS",
        "code": 0,
    }
    assert set(report["final"]) >= {"kvm", "firmware"}
    assert report["invariants"]["violations"] == []


def test_cpuid_edx_zero_makes_every_sev_init_fail_with_ebusy() -> None:
    """min_sev_asid 0: the SEV search starts at (unsigned long)-1 and the SEV-ES range ends at -1
    (sev_asid_new's int bounds), so no allocation succeeds and none recycles."""
    for kernel, params in (("v5.12", ["kvm_amd.sev=1", "kvm_amd.sev_es=1"]), ("v5.13", [])):
        steps = run(
            [
                {"op": "vm_create", "vm": "a"},
                {"op": "sev_init", "vm": "a"},
                {"op": "vm_create", "vm": "b"},
                {"op": "sev_es_init", "vm": "b"},
                {"op": "sev_init", "vm": "b"},
            ],
            kernel=kernel,
            params=params,
            cpuid="0xB:0x16F:4:0",
        )
        assert [s["errno"] for s in steps] == [None, "EBUSY", None, "EBUSY", "EBUSY"], kernel
        assert not any(e["kind"] in ("wbinvd", "fw") for s in steps for e in s["events"]), kernel


def test_cpuid_edx_zero_reports_empty_ranges_and_the_kernels_wrapped_counts(booted: Any) -> None:
    for kernel, params in (("v5.12", ("kvm_amd.sev=1", "kvm_amd.sev_es=1")), ("v5.13", ())):
        report = booted(profile="lab", cpuid="0xB:0x16F:4:0", kernel=kernel, params=params)
        assert report["sev_enabled"] and report["sev_es_enabled"], kernel
        assert report["sev_asid_range"] is None and report["sev_es_asid_range"] is None, kernel
        assert "SEV-ES supported: 4294967295 ASIDs" in report["dmesg"], kernel
    assert report["misc_capacity"] == {"sev": 5, "sev_es": 4294967295}


def _host(**config: Any) -> Any:
    from kvmsev.host.config import HostConfig
    from kvmsev.host.host import Host

    host = Host.boot(HostConfig(profile="lab", **config))
    host.load_kvm_amd()
    return host


def test_launch_start_copies_the_dh_certificate_and_the_session_independently() -> None:
    """Each blob is copied only when its address is non-zero (psp_copy_user_blob): a session
    without a DH certificate is not looked at; a DH certificate without a session reaches the
    firmware with no session, which wants 128 bytes (INVALID_LEN)."""
    from kvmsev.host import ops
    from kvmsev.kvm.sev_cmd import SevCmd

    host = _host()
    for name in ("a", "b"):
        ops.vm_create(host, name)
        ops.sev_cmd(host, name, SevCmd.INIT, {})
    blob = ops.write_user(host, "a", None, bytes(128))
    no_dh = ops.sev_cmd(host, "a", SevCmd.LAUNCH_START, {"session_uaddr": blob, "session_len": 128})
    assert no_dh.ret == 0, "no DH certificate: no session, whatever the session fields say"
    cert = ops.write_user(host, "b", None, bytes(0x824))
    no_session = ops.sev_cmd(host, "b", SevCmd.LAUNCH_START, {"dh_uaddr": cert, "dh_len": 0x824})
    assert (no_session.ret, no_session.error) == (-5, 0x04)
    too_long = ops.sev_cmd(host, "b", SevCmd.LAUNCH_START, {"dh_uaddr": cert, "dh_len": 0x4001})
    assert too_long.ret == -22 and too_long.error == 0, "over SEV_FW_BLOB_MAX_SIZE, before the firmware"


def test_unmapped_user_buffers_fault_with_efault() -> None:
    from kvmsev.host import ops
    from kvmsev.kvm.sev_cmd import SevCmd

    host = _host()
    ops.vm_create(host, "g")
    ops.sev_cmd(host, "g", SevCmd.INIT, {})
    unmapped = 0x7E0000000000
    start = ops.sev_cmd(host, "g", SevCmd.LAUNCH_START, {"dh_uaddr": unmapped, "dh_len": 0x824})
    assert start.ret == -14 and start.error == 0, "memdup_user faults before the firmware"
    assert ops.sev_cmd(host, "g", SevCmd.LAUNCH_START, {}).ret == 0
    measure = ops.sev_cmd(host, "g", SevCmd.LAUNCH_MEASURE, {"uaddr": unmapped, "len": 48})
    assert measure.ret == -14, "the firmware answered, the copy to userspace faulted"
    assert host.env.psp.guests[1].state.name == "LSECRET"
    status = ops.sev_cmd(host, "g", SevCmd.GUEST_STATUS, {}, data_fault=True)
    assert status.ret == -14, "the parameters cannot be written back"


def test_the_ccp_driver_caches_init_before_a_failing_df_flush() -> None:
    """__sev_platform_init_locked sets SEV_STATE_INIT right after INIT: when the DF_FLUSH that
    follows fails, probe reports it, and KVM_SEV_INIT later succeeds without another try."""
    from kvmsev.firmware.psp import Psp
    from kvmsev.kernel import ccp

    psp = Psp(present=True, mem_encrypt_enabled=True, enabled_threads=0b11, max_asid=4, min_sev_asid=3)
    driver = ccp.SevDriver()
    issued = ccp.sev_pci_init(
        psp, driver, lambda: psp.wbinvd(0b01), cpu_has_sev=True, requires_sev_feature=True
    )
    assert [f"{c.command.name}:{c.status.name if c.status is not None else None}" for c in issued] == [
        "PLATFORM_STATUS:SUCCESS",
        "INIT:SUCCESS",
        "DF_FLUSH:WBINVD_REQUIRED",
    ]
    assert driver.log[-1] == "ccp 0000:22:00.1: SEV: failed to INIT error 0xe"
    log: list[object] = []
    assert ccp.sev_platform_init(psp, driver, lambda: None, log.append) == (0, 0) and log == []


def test_init_is_retried_on_secure_data_invalid_only_at_probe() -> None:
    from kvmsev.firmware.psp import Psp
    from kvmsev.firmware.status import Command, Status
    from kvmsev.kernel import ccp

    psp = Psp(present=True, mem_encrypt_enabled=True, enabled_threads=1, max_asid=4, min_sev_asid=3)
    psp.faults[Command.INIT] = Status.SECURE_DATA_INVALID
    driver = ccp.SevDriver()
    issued = ccp.sev_pci_init(psp, driver, lambda: psp.wbinvd(1), cpu_has_sev=True, requires_sev_feature=True)
    assert [c.command.name for c in issued] == ["PLATFORM_STATUS", "INIT", "INIT", "DF_FLUSH"]
    assert driver.initialized
    late = Psp(present=True, mem_encrypt_enabled=True, enabled_threads=1, max_asid=4, min_sev_asid=3)
    late.faults[Command.INIT] = Status.SECURE_DATA_INVALID
    log: list[object] = []
    ret, error = ccp.sev_platform_init(late, ccp.SevDriver(dev_sev=True), lambda: None, log.append)
    assert (ret, error) == (-5, 0x18) and len(log) == 1, "KVM_SEV_INIT's path does not retry"


@pytest.mark.parametrize(("kernel", "limit"), [("v5.13", 288), ("v5.15", 1024), ("v6.12", 1024)])
def test_a_vm_creates_at_most_kvm_max_vcpus_and_the_next_is_einval(kernel: str, limit: int) -> None:
    """``kvm_vm_ioctl_create_vcpu``: -EINVAL once ``created_vcpus`` reaches KVM_MAX_VCPUS (288,
    1024 from 074c82c8f7cf in 5.15); the refused call allocates nothing."""
    creates = [{"op": "vcpu_create", "vm": "g"}] * (limit + 2)
    steps = run([{"op": "vm_create", "vm": "g"}, {"op": "sev_es_init", "vm": "g"}, *creates], kernel=kernel)
    vcpus = steps[2:]
    assert [s["ret"] for s in vcpus[:limit]] == [0] * limit
    assert vcpus[limit - 1]["result"]["vcpu"] == limit - 1
    assert [(s["ret"], s["errno"], s["result"]) for s in vcpus[limit:]] == [(-22, "EINVAL", None)] * 2


def _launched_pattern() -> list[dict[str, Any]]:
    """A guest whose two pages at 0x7f0000200000 hold 00 01 .. 0f repeated, launched (policy 0
    allows debugging)."""
    base = 0x7F0000200000
    return [
        {"op": "vm_create", "vm": "g"},
        {"op": "sev_init", "vm": "g"},
        {"op": "launch_start", "vm": "g", "policy": 0},
        {
            "op": "mem_write",
            "vm": "g",
            "uaddr": base,
            "data": {"pattern": bytes(range(16)).hex(), "len": 8192},
        },
        {"op": "launch_update_data", "vm": "g", "uaddr": base, "len": 8192},
        {"op": "launch_measure", "vm": "g"},
        {"op": "launch_finish", "vm": "g"},
    ]


def _report(steps: list[dict[str, Any]], **host: Any) -> dict[str, Any]:
    host.setdefault("profile", "lab")
    report: dict[str, Any] = runner.run(schema.parse({"host": host, "steps": steps}))
    return report


@pytest.mark.parametrize("kernel", ["v5.13", "v6.12", "v7.1"])
def test_an_unaligned_dbg_encrypt_writes_round_up_len_from_the_aligned_start_and_drops_the_tail(
    kernel: str,
) -> None:
    """``__sev_dbg_encrypt_user`` decrypts the 32 bytes around 16 bytes at offset 8, copies the
    data in at 8, and encrypts back ``round_up(16, 16)`` = 16 bytes from offset 0: the data's
    last 8 bytes never reach the guest (5.12 to 7.1 alike)."""
    data = bytes(range(0xA0, 0xB0))
    r = _report(
        [
            *_launched_pattern(),
            {"op": "dbg_encrypt", "vm": "g", "data": data.hex(), "dst_uaddr": 0x7F0000200008},
            {"op": "dbg_decrypt", "vm": "g", "src_uaddr": 0x7F0000200000, "len": 32},
        ],
        kernel=kernel,
    )
    pattern = bytes(range(16)) * 2
    encrypt, decrypt = r["steps"][7], r["steps"][8]
    assert [e["cmd"] for e in encrypt["events"] if e["kind"] == "fw"] == ["DBG_DECRYPT", "DBG_ENCRYPT"]
    assert bytes.fromhex(decrypt["result"]["data"]) == pattern[:8] + data[:8] + pattern[16:]
    assert r["invariants"]["violations"] == []


@pytest.mark.parametrize(
    ("kernel", "apply"), [("v6.12", ()), ("v6.12", ("dbg-piece-within-dst-page",)), ("v7.1", ())]
)
def test_a_dbg_piece_past_the_destination_page_end_is_an_out_of_bounds_write_until_78ee2d50185a(
    kernel: str, apply: tuple[str, ...]
) -> None:
    """A source page starting a piece that the destination page cannot hold: before
    78ee2d50185a the firmware writes past the pinned destination page (DBG_DECRYPT, aligned:
    straight into it) and an unaligned DBG_ENCRYPT decrypts past its intermediate page; after,
    the piece stops at the destination page's end and the rest follows in another piece."""
    fixed = kernel == "v7.1" or bool(apply)
    r = _report(
        [
            *_launched_pattern(),
            {"op": "mem_write", "vm": "g", "uaddr": 0x7F0000400000, "data": {"zero": 8192}},
            {
                "op": "dbg_decrypt",
                "vm": "g",
                "src_uaddr": 0x7F0000200000,
                "dst_uaddr": 0x7F0000400FF0,
                "len": 32,
            },
            {
                "op": "dbg_encrypt",
                "vm": "g",
                "data": {"pattern": "ee", "len": 4096},
                "dst_uaddr": 0x7F0000200001,
            },
            {"op": "dbg_decrypt", "vm": "g", "src_uaddr": 0x7F0000200000, "len": 4112},
        ],
        kernel=kernel,
        apply=list(apply),
    )
    decrypt, encrypt, check = r["steps"][8], r["steps"][9], r["steps"][10]
    assert (decrypt["ret"], encrypt["ret"]) == (0, 0)
    found = [v["detail"] for v in r["invariants"]["violations"] if v["invariant"] == "writes_in_bounds"]
    if fixed:
        assert found == []
        assert [e["cmd"] for e in decrypt["events"] if e["kind"] == "fw"] == ["DBG_DECRYPT"] * 2
    else:
        assert [v["step"] for v in r["invariants"]["violations"]] == [8, 9]
        assert found[0].startswith("DBG_DECRYPT wrote 16 bytes past the pinned destination page")
        assert found[1] == (
            "DBG_ENCRYPT decrypted 4112 bytes into its one-page intermediate buffer (16 past its end)"
        )
    pattern = bytes(range(16)) * 512
    written = bytes.fromhex(check["result"]["data"])
    assert written[:1] == pattern[:1]
    # before the fix the one piece at offset 1 is encrypted back as round_up(4096, 16) = 4096
    # bytes from offset 0, so its last byte (at 0x1000) is lost; after it, two pieces lose nothing
    lost = 0 if fixed else 1
    assert written[1 : 4097 - lost] == b"\xee" * (4096 - lost)
    assert written[4097 - lost :] == pattern[4097 - lost : 4112]


@pytest.mark.parametrize("kernel", ["v5.13", "v7.1"])
def test_a_short_launch_measure_buffer_keeps_its_len_and_only_a_query_learns_48(kernel: str) -> None:
    """sev_launch_measure writes ``len`` back on the query path and after success, not after a
    firmware error: INVALID_LEN for a 32-byte buffer leaves 32."""
    steps = run(
        [
            {"op": "vm_create", "vm": "g"},
            {"op": "sev_init", "vm": "g"},
            {"op": "launch_start", "vm": "g"},
            {"op": "launch_measure", "vm": "g", "len": 32},
            {"op": "launch_measure", "vm": "g", "len": 0},
            {"op": "launch_measure", "vm": "g", "len": 4096},
        ],
        kernel=kernel,
    )
    short, query, full = steps[3:]
    assert (short["errno"], short["fw_error"]["name"], short["result"]) == ("EIO", "INVALID_LEN", {"len": 32})
    assert (query["errno"], query["fw_error"]["name"], query["result"]) == ("EIO", "INVALID_LEN", {"len": 48})
    assert full["errno"] is None and full["result"]["len"] == 48 and len(full["result"]["measurement"]) == 96
