"""The recorded-host format: a directory tree that looks like a host's /proc, /sys, /dev, /boot
and /etc, plus what cannot be a file (ioctl answers, MSRs, CPUID) in ``.kvmsev/probe.json``.

``kvmsev probe --capture DIR`` writes it from a real host, ``kvmsev boot --export-root DIR`` from a
model host, and ``kvmsev probe --root DIR`` reads either. Layout (every file optional; a missing
file means the host did not have it):

```
proc/cpuinfo  proc/cmdline  proc/sys/kernel/osrelease  boot/config-RELEASE
sys/module/kvm_amd/parameters/{sev,sev_es,npt,nested}   sys/module/kvm_intel/
sys/fs/cgroup/misc.capacity  sys/fs/cgroup/misc.current
sys/devices/system/cpu/{online,present}
etc/modprobe.d/*.conf
dev/kvm  dev/sev                 (empty marker files)
.kvmsev/probe.json               uid, cpuid, msr, kvm_api_version, kvm_supported_cpuid_8000001f,
                                 kvm_sev_vmsa_features, sev_platform_status, dev, rlimit_memlock
                                 (docs/probe.md)
.kvmsev/dmesg.txt                the kernel log, when it was readable
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kvmsev.host.host import Host
from kvmsev.host.report import kvm_view
from kvmsev.kvm.dev_attr import KVM_X86_SEV_VMSA_FEATURES, sev_device_attr

FORMAT = "kvmsev.root/1"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_file_bytes(text))


def _file_bytes(text: str) -> bytes:
    """Bytes that came from the command line but are not UTF-8 reach us as lone surrogates
    (Python's ``surrogateescape``): they go back out as the bytes they were, as the real host's
    file would hold them. A lone surrogate from elsewhere (a JSON escape) has no byte form and is
    written escaped."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def _cpu_list(n: int, online: int) -> str:
    """A kernel CPU list (``0-3,8``) of the set bits of ``online`` below ``n``."""
    ranges: list[str] = []
    c = 0
    while c < n:
        if online >> c & 1:
            start = c
            while c + 1 < n and online >> (c + 1) & 1:
                c += 1
            ranges.append(str(start) if start == c else f"{start}-{c}")
        c += 1
    return ",".join(ranges) + "\n"


def kernel_release(preset: str) -> str:
    """The ``uname -r`` a model host reports: ``v6.12`` -> ``6.12.0-kvmsev``."""
    return f"{preset.removeprefix('v')}.0-kvmsev"


def export(host: Host, root: Path) -> None:
    """Render a booted model host (kvm_amd loaded or not) in the recorded-host format."""
    cfg = host.config
    profile = cfg.profile
    leaf = cfg.platform.leaf
    release = kernel_release(cfg.source.kernel)
    flags = ["fpu", "svm", "npt", *host.features.cpuinfo_flags]
    cpuinfo = "".join(
        f"processor\t: {c}\nvendor_id\t: {profile.vendor}\ncpu family\t: {profile.family}\n"
        f"model\t\t: {profile.model}\nmodel name\t: {profile.model_name}\nflags\t\t: {' '.join(flags)}\n\n"
        for c in range(min(cfg.nr_cpus, 4))
    )
    _write(root, "proc/cpuinfo", cpuinfo)
    # --param words go on the kernel command line: modprobe reads them from there the same way
    params = [w if w.startswith(("kvm_amd.", "kvm-amd.")) else f"kvm_amd.{w}" for w in cfg.source.params]
    words = [f"BOOT_IMAGE=/vmlinuz-{release}", cfg.source.cmdline.strip(), *params]
    _write(root, "proc/cmdline", " ".join(w for w in words if w) + "\n")
    _write(root, "proc/sys/kernel/osrelease", release + "\n")
    _write(root, f"boot/config-{release}", "".join(f"{k}={v}\n" for k, v in cfg.kconfig.as_dict().items()))
    online = _cpu_list(cfg.nr_cpus, host.env.online)
    _write(root, "sys/devices/system/cpu/online", online)
    _write(root, "sys/devices/system/cpu/present", _cpu_list(cfg.nr_cpus, (1 << cfg.nr_cpus) - 1))
    view = kvm_view(host)
    for name, text in view["sysfs"].items():  # type: ignore[attr-defined]
        _write(root, f"sys/module/kvm_amd/parameters/{name}", text + "\n")
    capacity = host.env.misc.capacity_file()
    if capacity is not None:
        _write(root, "sys/fs/cgroup/misc.capacity", capacity)
    current = host.env.misc.current_file("/")
    if current is not None:
        _write(root, "sys/fs/cgroup/misc.current", current)
    if host.kvm is not None:
        _write(root, "dev/kvm", "")
    dev_sev = host.env.ccp.dev_sev
    if dev_sev:
        _write(root, "dev/sev", "")
    status = host.env.psp.platform_status()
    supported = host.supported_cpuid_8000001f()
    probe: dict[str, Any] = {
        "format": FORMAT,
        "uid": 0,
        "cpuid": {
            "0x8000001f": [leaf.eax, leaf.ebx, leaf.ecx, leaf.edx],
            "0x8000000a": [1, cfg.profile.svm_nasid, 0, cfg.profile.svm_edx],
            "0x80000021": [cfg.profile.ext21_eax, 0, 0, 0],
        },
        "msr": {"0xc0010010": cfg.platform.msrs.syscfg},
        "kvm_api_version": 12 if host.kvm is not None else None,
        "kvm_api_version_reason": None if host.kvm is not None else "/dev/kvm does not exist",
        "kvm_supported_cpuid_8000001f": None
        if supported is None
        else [supported.eax, supported.ebx, supported.ecx, supported.edx],
        **_vmsa_features_attr(host),
        "sev_platform_status": status.out if status.ok and dev_sev else None,
        "sev_platform_status_reason": None if status.ok and dev_sev else "/dev/sev does not exist",
        "dev": {
            **(
                {"/dev/kvm": {"mode": "0666", "readable": True, "writable": True}}
                if host.kvm is not None
                else {}
            ),
            **({"/dev/sev": {"mode": "0600", "readable": True, "writable": True}} if dev_sev else {}),
        },
        "rlimit_memlock": [cfg.source.memlock_limit, cfg.source.memlock_limit],
    }
    _write(root, ".kvmsev/probe.json", json.dumps(probe, indent=1) + "\n")
    log = list(host.boot_dmesg())
    log += [str(e["text"]) for e in host.env.trace.events if e["kind"] == "dmesg"]
    _write(root, ".kvmsev/dmesg.txt", "".join(line + "\n" for line in log))


def _vmsa_features_attr(host: Host) -> dict[str, Any]:
    """KVM_GET_DEVICE_ATTR's SEV VMSA features as a capture on this host would record them."""
    if host.kvm is None:
        return {"kvm_sev_vmsa_features": None, "kvm_sev_vmsa_features_reason": "/dev/kvm does not exist"}
    ret, value = sev_device_attr(host.env, host.kvm, KVM_X86_SEV_VMSA_FEATURES)
    reason = None if value is not None else f"KVM_GET_DEVICE_ATTR: {os.strerror(-ret)}"
    return {"kvm_sev_vmsa_features": value, "kvm_sev_vmsa_features_reason": reason}
