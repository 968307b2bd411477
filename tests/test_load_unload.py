"""Module load failures, the OOM paths, and what survives an unload."""

from __future__ import annotations

from pathlib import Path

from kvmsev.cli.main import main
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from tests.conftest import boot


def test_vmcb_array_oom_fails_the_load_with_enomem_and_frees_everything() -> None:
    for kernel in ("v5.12", "v5.13"):
        report = boot(kernel=kernel, params="kvm_amd.sev=1", cpus=4, fail_alloc="sev_vmcbs[2]")
        assert not report["loaded"]
        assert report["load_error"] == "ENOMEM"
        assert report["allocated_bytes"] == 0
        assert report["sysfs"] == {}
        assert report["supported_cpuid_8000001f"] is None


def test_load_error_path_flushes_before_the_series_but_not_after() -> None:
    before = boot(kernel="v5.12", params="kvm_amd.sev=1", cpus=2, fail_alloc="sev_vmcbs[1]")
    after = boot(kernel="v5.13", cpus=2, fail_alloc="sev_vmcbs[1]")
    assert [e["kind"] for e in before["load_events"]] == ["wbinvd", "fw"]
    assert after["load_events"] == []


def test_asid_bitmap_oom_leaves_sev_off_silently() -> None:
    report = boot(kernel="v5.13", cpus=2, fail_alloc="sev_asid_bitmap")
    assert report["loaded"] and not report["sev_enabled"]
    assert not any("SEV" in line for line in report["dmesg"])
    assert report["supported_cpuid_8000001f"] == {"eax": 0, "ebx": 0, "ecx": 0, "edx": 0}
    assert report["misc_capacity_file"] == ""


def test_misc_capacities_are_reset_at_unload() -> None:
    host = Host.boot(HostConfig(profile="epyc-9654", bios=("sev_es_asid_space_limit=100",), cpus=2))
    host.load_kvm_amd()
    assert host.env.misc.capacity_file() == "sev 907\nsev_es 99\n"
    result = host.unload_kvm_amd()
    assert host.env.misc.capacity_file() == ""
    assert result.leaked_bytes == 0 and not result.flushed


def test_reload_gives_the_same_answer_and_the_firmware_keeps_its_state() -> None:
    host = Host.boot(HostConfig(kernel="v5.12", params=("kvm_amd.sev=1",), cpus=2))
    first = host.load_kvm_amd()
    host.unload_kvm_amd()
    state_after_unload = host.env.psp.state
    second = host.load_kvm_amd()
    assert first.dmesg == second.dmesg
    assert host.env.psp.state is state_after_unload
    assert host.env.psp.wbinvd_done == 0b11, "WBINVD flags set by the unload flush survive"


def test_distribution_defaults_without_cgroup_misc_have_no_capacity_file() -> None:
    report = boot(kernel="v5.13", config="CONFIG_CGROUP_MISC=n", cpus=2)
    assert report["misc_capacity"] is None and report["misc_capacity_file"] is None
    assert report["sev_enabled"]
    assert boot(kernel="v5.12", cpus=2)["misc_capacity"] is None


def test_offline_cpu_keeps_the_wbinvd_flag_it_set_at_boot() -> None:
    """The firmware checks WBINVD_DONE on every thread enabled at boot. A CPU offlined after
    the boot-time flush still has its flag (only DEACTIVATE, INIT and SNP_INIT clear it), so the
    unload flush succeeds although the IPI skipped it."""
    host = Host.boot(HostConfig(kernel="v5.12", params=("kvm_amd.sev=1",), cpus=4))
    host.load_kvm_amd()
    host.env.online &= ~0b100  # CPU 2 taken offline after boot
    result = host.unload_kvm_amd()
    assert result.wbinvd_cpus == (0, 1, 3)
    assert result.firmware == ({"cmd": "DF_FLUSH", "ret": 0, "status": "SUCCESS", "code": 0},)


def test_df_flush_fails_while_an_offline_cpu_lacks_its_wbinvd_flag() -> None:
    host = Host.boot(HostConfig(kernel="v5.12", params=("kvm_amd.sev=1",), cpus=4))
    host.load_kvm_amd()
    host.env.online &= ~0b100
    host.env.psp.wbinvd_done = 0  # as after a DEACTIVATE of an in-use ASID
    result = host.unload_kvm_amd()
    assert result.firmware == ({"cmd": "DF_FLUSH", "ret": -5, "status": "WBINVD_REQUIRED", "code": 14},)
    assert result.dmesg == ("SEV: DF_FLUSH failed, ret=-5, error=0xe",)


def test_root_misc_current_exists_from_6_5_and_counts_charges_below_it() -> None:
    """e973dfe92994 (6.5) gave the root cgroup misc.current; before it only child cgroups had it."""
    es = ("sev_es_asid_space_limit=100",)
    assert boot(kernel="v6.4", profile="epyc-9654", bios=es, cpus=2)["misc_current_file"] is None
    assert (
        boot(kernel="v6.5", profile="epyc-9654", bios=es, cpus=2)["misc_current_file"] == "sev 0\nsev_es 0\n"
    )
    assert boot(kernel="v6.5", profile="epyc-9654", cpus=2)["misc_current_file"] == "sev 0\n"
    host = Host.boot(HostConfig(kernel="v6.5", profile="epyc-9654", bios=es, cpus=2))
    host.load_kvm_amd()
    misc = host.env.misc
    assert misc.try_charge("sev", misc.create("/tenant")) == (0, [])
    assert misc.current_file("/") == "sev 1\nsev_es 0\n"
    assert misc.current_file("/tenant") == "sev 1\nsev_es 0\n"


def test_exported_root_has_root_misc_current_only_where_the_kernel_does(tmp_path: Path) -> None:
    for kernel, present in (("v6.4", False), ("v6.5", True)):
        root = tmp_path / kernel
        assert main(["boot", "--kernel", kernel, "--cpus", "2", "--export-root", str(root)]) == 0
        assert (root / "sys/fs/cgroup/misc.current").exists() is present
        assert (root / "sys/fs/cgroup/misc.capacity").exists()


def test_asid_bitmaps_over_kmalloc_max_leave_sev_off_with_one_page_allocator_warning() -> None:
    """bitmap_zalloc of 1,008,107,283 bits is 126 MB: above KMALLOC_MAX_SIZE, the page allocator
    warns once and returns NULL, and sev_hardware_setup gives up on SEV."""
    report = boot(kernel="v5.13", cpuid="0x3:0x0:0x3c167f13:0x1076571", cpus=2)
    assert report["loaded"] and not report["sev_enabled"]
    assert report["dmesg"].count("WARNING: at mm/page_alloc.c __alloc_pages") == 1
    assert report["allocated_bytes"] == 0, "nothing allocated, so nothing to free"


def test_sev_vmcbs_over_kmalloc_max_fail_the_load_with_enomem() -> None:
    """2**20 ASIDs: the bitmaps (128 KiB) fit, each CPU's sev_vmcbs (8 MiB of pointers) does not."""
    failed = boot(kernel="v5.13", cpuid="0x3:0x0:0x100000:0x1", cpus=2)
    assert not failed["loaded"] and failed["load_error"] == "ENOMEM"
    assert failed["allocated_bytes"] == 0
    largest = boot(kernel="v5.13", cpuid="0x3:0x0:0x7ffff:0x1", cpus=2)  # 524,288 pointers: 4 MiB
    assert largest["loaded"] and largest["sev_enabled"]
    assert not any(line.startswith("WARNING") for line in largest["dmesg"])
