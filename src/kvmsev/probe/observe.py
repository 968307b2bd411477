"""Everything the probe reads from a host, in one record (the JSON report's ``host``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from kvmsev.numbers import decimal
from kvmsev.probe.reader import HostReader, Read

MSR_SYSCFG = 0xC0010010
MSR_SEV_STATUS = 0xC0010131
#: the kvm_amd parameter files the probe reads (those the model has, in any kernel)
KVM_AMD_PARAMS = (
    "sev",
    "sev_es",
    "sev_snp",
    "debug_swap",
    "ciphertext_hiding_asids",
    "npt",
    "nested",
    "nrips",
    "vls",
    "vgif",
    "vnmi",
    "lbrv",
    "tsc_scaling",
)


#: a kernel CPU list as ``/sys/devices/system/cpu/online`` prints it (``bitmap_print_to_pagebuf``)
_CPU_LIST = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")
#: x86_64 NR_CPUS upper bound (CONFIG_MAXSMP): no CPU number reaches it
NR_CPUS = 8192


def cpu_mask(text: str | None) -> int | None:
    """A kernel CPU list such as ``0-3,8`` as a bit mask; None when empty, absent or not a CPU
    list the kernel could have printed (a damaged file is no information, not a crash)."""
    if not text or not _CPU_LIST.fullmatch(text.strip()):
        return None
    mask = 0
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if not first <= last < NR_CPUS:
            return None
        mask |= ((1 << (last - first + 1)) - 1) << first
    return mask


def cpu_count(text: str | None) -> int | None:
    mask = cpu_mask(text)
    return None if mask is None else mask.bit_count()


@dataclass(slots=True)
class Observation:
    vendor: str | None = None
    family: int | None = None
    model: int | None = None
    model_name: str | None = None
    flags: list[str] = field(default_factory=list)
    cpuid_8000001f: list[int] | None = None
    #: CPUID Fn8000_000A (SVM features) and Fn8000_0021, when readable
    cpuid_8000000a: list[int] | None = None
    cpuid_80000021: list[int] | None = None
    cpuid_reason: str | None = None
    syscfg: int | None = None
    syscfg_reason: str | None = None
    sev_status_msr: int | None = None
    cmdline: str | None = None
    release: str | None = None
    kconfig: dict[str, str] | None = None
    kconfig_reason: str | None = None
    modprobe_options: list[str] = field(default_factory=list)
    kvm_amd_loaded: bool = False
    kvm_intel_loaded: bool = False
    sysfs: dict[str, str] = field(default_factory=dict)
    kvm_api_version: int | None = None
    kvm_reason: str | None = None
    supported_cpuid_8000001f: list[int] | None = None
    supported_reason: str | None = None
    #: KVM_GET_DEVICE_ATTR's SEV VMSA features (6.10 on), or why it has none
    sev_vmsa_features: int | None = None
    sev_vmsa_features_reason: str | None = None
    dev_kvm: dict[str, Any] | None = None
    dev_sev: dict[str, Any] | None = None
    dev_sev_reason: str | None = None
    sev_platform_status: dict[str, int] | None = None
    sev_status_reason: str | None = None
    misc_capacity: str | None = None
    misc_current: str | None = None
    cpus_online: str | None = None
    cpus_present: str | None = None
    rlimit_memlock: list[int] | None = None
    uid: int = 0
    dmesg: list[str] | None = None
    dmesg_reason: str | None = None

    @property
    def is_amd(self) -> bool:
        return self.vendor == "AuthenticAMD"

    @property
    def in_guest(self) -> bool:
        return "hypervisor" in self.flags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpuinfo(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _kconfig(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"(CONFIG_[A-Z0-9_]+)=(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
        m = re.match(r"# (CONFIG_[A-Z0-9_]+) is not set", line)
        if m:
            out[m.group(1)] = "n"
    return out


def observe(reader: HostReader) -> Observation:
    obs = Observation()
    info = reader.text("proc/cpuinfo")
    if info.ok:
        fields = _cpuinfo(info.value)
        obs.vendor = fields.get("vendor_id")
        obs.family = decimal(fields.get("cpu family", ""))
        obs.model = decimal(fields.get("model", ""))
        obs.model_name = fields.get("model name")
        obs.flags = fields.get("flags", "").split()
    leaf = reader.cpuid(0x8000001F) if obs.vendor in (None, "AuthenticAMD") else Read(None, "not an AMD CPU")
    obs.cpuid_8000001f, obs.cpuid_reason = leaf.value, leaf.reason
    if obs.cpuid_8000001f is not None:
        obs.cpuid_8000000a = reader.cpuid(0x8000000A).value
        obs.cpuid_80000021 = reader.cpuid(0x80000021).value
    syscfg = reader.msr(MSR_SYSCFG) if obs.vendor in (None, "AuthenticAMD") else Read(None, "not an AMD CPU")
    obs.syscfg, obs.syscfg_reason = syscfg.value, syscfg.reason
    if obs.in_guest and obs.is_amd:
        obs.sev_status_msr = reader.msr(MSR_SEV_STATUS).value
    cmdline = reader.text("proc/cmdline")
    obs.cmdline = cmdline.value.strip() if cmdline.ok else None
    release = reader.text("proc/sys/kernel/osrelease")
    obs.release = release.value.strip() if release.ok else None
    config = reader.kernel_config(obs.release)
    obs.kconfig = _kconfig(config.value) if config.ok else None
    obs.kconfig_reason = config.reason
    for name in reader.listdir("etc/modprobe.d"):
        conf = reader.text(f"etc/modprobe.d/{name}")
        if conf.ok:
            for line in conf.value.splitlines():
                words = line.split()
                if len(words) > 2 and words[0] == "options" and words[1].replace("-", "_") == "kvm_amd":
                    obs.modprobe_options += words[2:]
    obs.kvm_amd_loaded = reader.exists("sys/module/kvm_amd")
    obs.kvm_intel_loaded = reader.exists("sys/module/kvm_intel")
    for name in KVM_AMD_PARAMS:
        value = reader.text(f"sys/module/kvm_amd/parameters/{name}")
        if value.ok:
            obs.sysfs[name] = value.value.strip()
    api = reader.kvm_api_version()
    obs.kvm_api_version, obs.kvm_reason = api.value, api.reason
    supported = reader.kvm_supported_cpuid() if api.ok else Read(None, api.reason)
    obs.supported_cpuid_8000001f, obs.supported_reason = supported.value, supported.reason
    features = reader.kvm_sev_vmsa_features() if api.ok else Read(None, api.reason)
    obs.sev_vmsa_features, obs.sev_vmsa_features_reason = features.value, features.reason
    obs.dev_kvm = reader.dev("kvm").value
    sev_dev = reader.dev("sev")
    obs.dev_sev, obs.dev_sev_reason = sev_dev.value, sev_dev.reason
    status = reader.sev_platform_status() if sev_dev.ok else Read(None, sev_dev.reason)
    obs.sev_platform_status, obs.sev_status_reason = status.value, status.reason
    capacity = reader.text("sys/fs/cgroup/misc.capacity")
    obs.misc_capacity = capacity.value if capacity.ok else None
    current = reader.text("sys/fs/cgroup/misc.current")
    obs.misc_current = current.value if current.ok else None
    online = reader.text("sys/devices/system/cpu/online")
    obs.cpus_online = online.value.strip() if online.ok else None
    present = reader.text("sys/devices/system/cpu/present")
    obs.cpus_present = present.value.strip() if present.ok else None
    obs.rlimit_memlock = reader.rlimit_memlock().value
    obs.uid = reader.uid()
    log = reader.kernel_log()
    obs.dmesg, obs.dmesg_reason = log.value, log.reason
    return obs
