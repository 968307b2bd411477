"""The boot report: the documented JSON contract of ``kvmsev boot --json``.

Field names are a contract (``docs/json.md``); ``schema`` carries its version.
"""

from __future__ import annotations

from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host, LoadResult, UnloadResult
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.kvm.asid import usable_range
from kvmsev.kvm.dev_attr import KVM_X86_SEV_VMSA_FEATURES, sev_device_attr
from kvmsev.kvm.state import KvmAmd
from kvmsev.kvm.vm_types import supported_vm_types
from kvmsev.outdir import check_new_tree, staged_tree

SCHEMA = "kvmsev.boot/1"


def _leaf(leaf: Cpuid8000001F | None) -> dict[str, int] | None:
    return None if leaf is None else leaf.as_dict()


def unload_dict(result: UnloadResult) -> dict[str, object]:
    return {
        "flushed": result.flushed,
        "wbinvd_cpus": list(result.wbinvd_cpus),
        "firmware": [dict(c) for c in result.firmware],
        "dmesg": list(result.dmesg),
        "leaked_bytes": result.leaked_bytes,
        "leaked": dict(result.leaked),
        "oops": result.oops,
    }


def boot_dict(
    host: Host,
    load: LoadResult,
    unload: UnloadResult | None = None,
    kvm_snapshot: dict[str, object] | None = None,
) -> dict[str, object]:
    """Everything ``kvmsev boot`` reports; ``kvm_snapshot`` is :func:`kvm_view` taken while loaded."""
    cfg = host.config
    view = kvm_snapshot if kvm_snapshot is not None else kvm_view(host)
    out: dict[str, object] = {
        "schema": SCHEMA,
        "kernel": cfg.source.kernel,
        "patches": {"applied": list(cfg.source.apply), "reverted": list(cfg.source.revert)},
        "behaviour": cfg.behaviour.as_dict(),
        "profile": cfg.profile.name,
        "model_name": cfg.profile.model_name,
        "cpus": cfg.nr_cpus,
        "sockets": cfg.source.sockets,
        "bios": dict(cfg.platform.bios),
        "kconfig": cfg.kconfig.as_dict(),
        "kconfig_forced_off": list(cfg.kconfig.forced_off),
        "cmdline": cfg.source.cmdline,
        "params": list(cfg.source.params),
        "host_cpuid_8000001f": _leaf(cfg.platform.leaf),
        "host_cpu_flags": list(host.features.cpuinfo_flags),
        "sme_active": host.features.sme_active,
        "firmware": {
            "present": cfg.profile.sev_firmware,
            "boot_commands": [c.as_dict() for c in host.boot_firmware],
        },
        "boot_dmesg": list(host.boot_dmesg()),
        "loaded": load.loaded,
        "load_error": None if load.error is None else load.error.name,
        **view,
        "dmesg": list(load.dmesg),
        "load_events": [dict(e) for e in load.events],
    }
    if unload is not None:
        out["unload"] = unload_dict(unload)
    return out


def _range(host: Host, kvm: KvmAmd, es: bool, snp: bool = False) -> list[int] | None:
    """The ASIDs KVM can give such guests, or None when every allocation fails."""
    usable = usable_range(host.env.behaviour, kvm, es, snp)
    return None if usable is None else list(usable)


def kvm_view(host: Host) -> dict[str, object]:
    """The loaded module's observable state (taken before any unload)."""
    kvm = host.kvm
    misc = host.env.misc
    if kvm is None:
        return {
            "sev_enabled": False,
            "sev_es_enabled": False,
            "npt_enabled": None,
            "min_sev_asid": None,
            "max_sev_asid": None,
            "sev_asid_range": None,
            "sev_es_asid_range": None,
            "snp_asid_range": None,
            "sysfs": {},
            "misc_capacity": dict(misc.capacity) if misc.enabled else None,
            "misc_capacity_file": misc.capacity_file(),
            "misc_current_file": misc.current_file("/"),
            "supported_cpuid_8000001f": None,
            "sev_vmcbs": None,
            "vm_types": None,
            "sev_vmsa_features": None,
            "allocated_bytes": host.env.alloc.live_bytes,
        }
    lo, hi = kvm.min_sev_asid, kvm.max_sev_asid
    vmcbs = kvm.sev_vmcbs
    return {
        "sev_enabled": kvm.sev_enabled,
        "sev_es_enabled": kvm.sev_es_enabled,
        "npt_enabled": kvm.npt_enabled,
        "min_sev_asid": lo,
        "max_sev_asid": hi,
        "sev_asid_range": _range(host, kvm, es=False) if kvm.sev_enabled else None,
        "sev_es_asid_range": _range(host, kvm, es=True) if kvm.sev_es_enabled else None,
        "snp_asid_range": _range(host, kvm, es=True, snp=True) if kvm.params.get("sev_snp") else None,
        "sysfs": kvm.sysfs(),
        "misc_capacity": dict(misc.capacity) if misc.enabled else None,
        "misc_capacity_file": misc.capacity_file(),
        "misc_current_file": misc.current_file("/"),
        "supported_cpuid_8000001f": _leaf(host.supported_cpuid_8000001f()),
        "sev_vmcbs": None
        if vmcbs is None
        else {"cpus": kvm.sev_vmcbs_cpus, "entries": vmcbs.entries, "zeroed": vmcbs.zeroed},
        "vm_types": supported_vm_types(host.env, kvm),
        "sev_vmsa_features": sev_device_attr(host.env, kvm, KVM_X86_SEV_VMSA_FEATURES)[1],
        "allocated_bytes": host.env.alloc.live_bytes,
    }


def boot_report(
    config: HostConfig, *, unload: bool = False, export_root: str | None = None
) -> dict[str, object]:
    """Boot a host, load ``kvm_amd``, optionally unload it, and report (the ``kvmsev boot`` API).

    ``export_root`` also renders the loaded host in the recorded-host format there.
    """
    # rootfs renders hosts through this module's kvm_view, so it is imported here
    from kvmsev.host.rootfs import export

    root = None if export_root is None else check_new_tree(export_root, "--export-root")
    host = Host.boot(config)
    load = host.load_kvm_amd()
    snapshot = kvm_view(host)
    if root is not None:
        with staged_tree(root, "--export-root") as staging:
            export(host, staging)
    result = host.unload_kvm_amd() if unload and host.kvm is not None else None
    report = boot_dict(host, load, result, snapshot)
    if unload and result is None:
        report["unload"] = None
    return report
