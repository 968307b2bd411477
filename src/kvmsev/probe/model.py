"""From what was read to the model's boot configuration, and the model's prediction.

Profile: synthesised from the observed CPUID 0x8000001F (exact, so no BIOS options are needed),
SYSCFG (read, or inferred from the kernel's ``sme``/``sev`` flags, which the kernel clears when
SMEE is off) and whether the SEV firmware answered (``/dev/sev``). Kernel preset: the newest
one not newer than the host's release (``preset_for``); kernels outside the presets' span are
compared against the nearest one and disagreements are blamed on the model's coverage. Kconfig
from the kernel's config file;
``kvm_amd`` options from the command line and /etc/modprobe.d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kvmsev.errors import InputError
from kvmsev.host.config import HostConfig, resolve
from kvmsev.host.host import Host
from kvmsev.host.report import boot_dict, kvm_view
from kvmsev.hw import profiles
from kvmsev.hw.msr import SYSCFG_MEM_ENCRYPT
from kvmsev.kernel import kconfig
from kvmsev.kvm.kernels import NEWEST, RELEASES
from kvmsev.probe.observe import Observation, cpu_count, cpu_mask


def kernel_version(release: str | None) -> tuple[int, int] | None:
    m = re.match(r"([0-9]{1,4})\.([0-9]{1,4})", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def preset_for(release: str | None) -> str:
    """The newest preset not newer than the host's kernel: v5.12 for anything older, the newest
    preset for anything newer (and for an unknown release)."""
    version = kernel_version(release)
    if version is None:
        return f"v{NEWEST}"
    fitting = [r for r in RELEASES if kernel_version(r) is not None and kernel_version(r) <= version]  # type: ignore[operator]
    return f"v{fitting[-1] if fitting else RELEASES[0]}"


@dataclass(frozen=True, slots=True)
class Prediction:
    config: HostConfig
    report: dict[str, Any]
    syscfg_inferred: bool


def predict(obs: Observation) -> Prediction | None:
    """Boot the model as this host; None when it cannot be modeled (not AMD, no CPUID leaf)."""
    if not obs.is_amd or obs.cpuid_8000001f is None:
        return None
    eax, ebx, ecx, edx = obs.cpuid_8000001f
    inferred = obs.syscfg is None
    if obs.syscfg is not None:
        syscfg = obs.syscfg
    else:
        syscfg = SYSCFG_MEM_ENCRYPT if ("sme" in obs.flags or "sev" in obs.flags or not eax & 3) else 0
    threads = cpu_count(obs.cpus_present) or 1
    status = obs.sev_platform_status
    # Without /dev/sev the PSP may still carry SEV firmware: from 5.13 the ccp driver sets up no
    # SEV device when the BIOS left memory encryption off, and says so.
    refused = any("memory encryption not enabled by BIOS" in line for line in obs.dmesg or ())
    document: dict[str, Any] = {
        "name": "probed-host",
        "model_name": obs.model_name or "unknown AMD processor",
        "vendor": "AuthenticAMD",
        "family": obs.family or 0,
        "model": obs.model or 0,
        "threads": min(threads, profiles.MAX_CPUS),
        "cpuid_8000001f": {"eax": eax, "ebx": ebx, "ecx": ecx, "edx": edx},
        "syscfg": syscfg,
        "hwcr": 1,
        "sev_firmware": obs.dev_sev is not None or refused,
        "sources": {"cpuid_8000001f": "read from this host"},
    }
    if obs.cpuid_8000000a and obs.cpuid_8000000a[1] >= 2:  # the SVM leaf, when the host has one
        document["cpuid_8000000a_edx"] = obs.cpuid_8000000a[3]
        document["svm_nasid"] = obs.cpuid_8000000a[1]
    if obs.cpuid_80000021:
        document["cpuid_80000021_eax"] = obs.cpuid_80000021[0]
    if status is not None:
        document["sev_api"] = {
            k: status[f"api_{k}" if k != "build" else "build"] for k in ("major", "minor", "build")
        }
    try:
        profile = profiles.from_dict(document, "probed host")
    except InputError:  # values no real part has (a hypervisor's CPUID): nothing to predict
        return None
    config_words = []
    if obs.kconfig is not None:
        for symbol in kconfig.SYMBOLS:
            if symbol in obs.kconfig:
                config_words.append(f"{symbol}={'y' if obs.kconfig[symbol] in ('y', 'm') else 'n'}")
    params = tuple(f"kvm_amd.{w}" for w in obs.modprobe_options)
    config = HostConfig(
        profile="probed-host",
        kernel=preset_for(obs.release),
        cmdline=obs.cmdline or "",
        params=params,
        config=tuple(config_words),
        cpus=min(threads, profiles.MAX_CPUS),
    )
    try:
        resolved = resolve(config, profile=profile)
    except InputError:
        return None
    host = Host.boot(resolved)
    online = cpu_mask(obs.cpus_online)
    if online is not None and online.bit_count() < threads:
        host.env.online = online
    load = host.load_kvm_amd()
    report = boot_dict(host, load, None, kvm_view(host))
    return Prediction(config, report, inferred)
