"""``kvmsev probe``: read, diagnose, compare, and optionally capture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kvmsev.errors import InputError
from kvmsev.host.rootfs import FORMAT
from kvmsev.outdir import staged_tree
from kvmsev.probe.compare import compare
from kvmsev.probe.diagnose import diagnose, summary
from kvmsev.probe.model import predict
from kvmsev.probe.observe import KVM_AMD_PARAMS, Observation, observe
from kvmsev.probe.reader import HostReader

SCHEMA = "kvmsev.probe/1"

_FILES = (
    "proc/cpuinfo",
    "proc/cmdline",
    "proc/sys/kernel/osrelease",
    "sys/fs/cgroup/misc.capacity",
    "sys/fs/cgroup/misc.current",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/present",
)


def probe(root: str = "/") -> dict[str, Any]:
    reader = HostReader(root)
    obs = observe(reader)
    pred = predict(obs)
    checks, capacity = diagnose(obs, pred)
    return {
        "schema": SCHEMA,
        "root": "live" if reader.live else "recorded",
        "tests": [c.as_dict() for c in checks],
        "summary": summary(checks),
        "capacity": capacity,
        "host": obs.as_dict(),
        "model_kernel": None if pred is None else pred.config.kernel,
        "model": compare(obs, pred),
    }


#: files of which a directory must hold at least one to be a recorded host
_EVIDENCE = ("proc/cpuinfo", "proc/sys/kernel/osrelease", ".kvmsev/probe.json")


def check_root(text: str) -> str:
    """``--root``: a directory that holds a recorded host. An empty path is refused rather than
    read as the live host, and a directory with none of the host's files is not a host that has
    nothing: it is the wrong directory."""
    if not text:
        raise InputError(
            "--root", "an empty path names no directory (leave --root out to probe this machine)"
        )
    path = Path(text)
    try:
        if not path.is_dir():
            raise InputError("--root", f"{text} is not a directory")
        if not any((path / rel).is_file() for rel in _EVIDENCE):
            raise InputError("--root", f"{text} holds no recorded host (none of {', '.join(_EVIDENCE)})")
    except OSError as exc:
        raise InputError("--root", f"{text[:200]}: {exc.strerror or exc}") from None
    return text


def capture(dest: Path, root: str = "/") -> Observation:
    """Record a host into ``dest`` in the recorded-host format (files as read, ioctl answers);
    the tree appears whole when done, or not at all."""
    with staged_tree(dest, "--capture") as staging:
        return _capture(staging, root)


def _capture(out: Path, root: str) -> Observation:
    reader = HostReader(root)
    obs = observe(reader)
    files = list(_FILES)
    files += [f"sys/module/kvm_amd/parameters/{p}" for p in KVM_AMD_PARAMS]
    files += [f"etc/modprobe.d/{n}" for n in reader.listdir("etc/modprobe.d")]
    if obs.release:
        files.append(f"boot/config-{obs.release}")
    for rel in files:
        data = reader.raw(rel)
        if data is not None:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    if obs.kvm_intel_loaded:
        (out / "sys/module/kvm_intel").mkdir(parents=True, exist_ok=True)
    if obs.kvm_amd_loaded:
        (out / "sys/module/kvm_amd/parameters").mkdir(parents=True, exist_ok=True)
    for dev, present in (("kvm", obs.dev_kvm is not None), ("sev", obs.dev_sev is not None)):
        if present:
            (out / "dev").mkdir(exist_ok=True)
            (out / "dev" / dev).write_text("")
    record = {
        "format": FORMAT,
        "uid": obs.uid,
        "cpuid": None
        if obs.cpuid_8000001f is None
        else {
            f"{leaf:#x}": regs
            for leaf, regs in (
                (0x8000001F, obs.cpuid_8000001f),
                (0x8000000A, obs.cpuid_8000000a),
                (0x80000021, obs.cpuid_80000021),
            )
            if regs is not None
        },
        "cpuid_reason": obs.cpuid_reason,
        "msr": None if obs.syscfg is None else {"0xc0010010": obs.syscfg},
        "msr_reason": obs.syscfg_reason,
        "kvm_api_version": obs.kvm_api_version,
        "kvm_api_version_reason": obs.kvm_reason,
        "kvm_supported_cpuid_8000001f": obs.supported_cpuid_8000001f,
        "kvm_supported_cpuid_8000001f_reason": obs.supported_reason,
        "kvm_sev_vmsa_features": obs.sev_vmsa_features,
        "kvm_sev_vmsa_features_reason": obs.sev_vmsa_features_reason,
        "sev_platform_status": obs.sev_platform_status,
        "sev_platform_status_reason": obs.sev_status_reason,
        "dev": {k: v for k, v in (("/dev/kvm", obs.dev_kvm), ("/dev/sev", obs.dev_sev)) if v is not None},
        "rlimit_memlock": obs.rlimit_memlock,
    }
    (out / ".kvmsev").mkdir(exist_ok=True)
    (out / ".kvmsev" / "probe.json").write_text(json.dumps(record, indent=1) + "\n")
    if obs.dmesg is not None:
        (out / ".kvmsev" / "dmesg.txt").write_text("".join(line + "\n" for line in obs.dmesg))
    return obs
