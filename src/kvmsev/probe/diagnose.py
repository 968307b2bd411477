"""The diagnosis: a tree of checks with PASS / FAIL / WARN / SKIP, each failing one with a fix.

It never contradicts the kernel: a CPUID bit whose BIOS switch is off is not a PASS, and where
KVM's decision can be read (sysfs) it is the verdict; the model supplies the *reason* (which
precondition failed) and the capacity arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.kvm.kernels import NEWEST
from kvmsev.probe.model import Prediction, kernel_version, preset_for
from kvmsev.probe.observe import Observation, cpu_count

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
ENABLED = ("1", "Y", "y")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    category: str
    message: str
    fix_hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _leaf(obs: Observation) -> Cpuid8000001F | None:
    return None if obs.cpuid_8000001f is None else Cpuid8000001F(*obs.cpuid_8000001f)


def _cpu(obs: Observation, out: list[Check]) -> None:
    cat = "CPU"
    if obs.vendor is None:
        out.append(Check("AMD CPU", SKIP, cat, "/proc/cpuinfo could not be read"))
        return
    if not obs.is_amd:
        intel = " (kvm_intel is loaded: this is an Intel host)" if obs.kvm_intel_loaded else ""
        out.append(
            Check("AMD CPU", FAIL, cat, f"vendor is {obs.vendor}{intel}", "SEV needs an AMD EPYC processor")
        )
        return
    family = "unknown" if obs.family is None else f"{obs.family:#x}"
    model = "unknown" if obs.model is None else f"{obs.model:#x}"
    name = obs.model_name or "model name not in /proc/cpuinfo"
    out.append(Check("AMD CPU", PASS, cat, f"{name} (family {family}, model {model})"))
    epyc = "EPYC" in (obs.model_name or "")
    out.append(
        Check(
            "EPYC processor",
            PASS if epyc else WARN,
            cat,
            "server part" if epyc else "client parts advertise SEV in CPUID but ship no SEV firmware",
            None if epyc else "SEV guests need an EPYC processor (AMD SEV firmware)",
        )
    )
    leaf = _leaf(obs)
    if leaf is None:
        flag = "sev" in obs.flags
        out.append(
            Check(
                "SEV in CPUID",
                PASS if flag else SKIP,
                cat,
                f"leaf 0x8000001F unreadable ({obs.cpuid_reason}); kernel flag 'sev' "
                f"{'present' if flag else 'absent'}",
                "modprobe cpuid and run as root for the raw leaf",
            )
        )
        return
    out.append(
        Check(
            "SEV in CPUID",
            PASS if leaf.has("SEV") else FAIL,
            cat,
            f"CPUID 0x8000001F EAX={leaf.eax:#010x}",
            None if leaf.has("SEV") else "this processor has no SEV",
        )
    )
    out.append(
        Check(
            "SEV-ES in CPUID",
            PASS if leaf.has("SEV_ES") else FAIL,
            cat,
            "EAX bit 3",
            None if leaf.has("SEV_ES") else "this processor has no SEV-ES",
        )
    )
    if leaf.has("SEV"):
        out.append(
            Check(
                "C-bit and address reduction",
                PASS,
                cat,
                f"C-bit {leaf.c_bit}, physical address reduction {leaf.phys_addr_reduction}",
            )
        )


def _bios(obs: Observation, out: list[Check]) -> None:
    cat = "BIOS"
    leaf = _leaf(obs)
    if not obs.is_amd or leaf is None:
        return
    if obs.syscfg is not None:
        on = bool(obs.syscfg >> 23 & 1)
        out.append(
            Check(
                "Memory encryption (SMEE)",
                PASS if on else FAIL,
                cat,
                f"SYSCFG MSR 0xC0010010 = {obs.syscfg:#x}, MemEncryptionModEn {'set' if on else 'clear'}",
                None if on else 'enable "SMEE" (Memory Encryption) in the BIOS',
            )
        )
    elif leaf.has("SEV"):
        on = "sev" in obs.flags
        out.append(
            Check(
                "Memory encryption (SMEE)",
                PASS if on else FAIL,
                cat,
                f"SYSCFG unreadable ({obs.syscfg_reason}); the kernel "
                f"{'kept' if on else 'cleared'} its 'sev' flag, which it clears when SMEE is off",
                None if on else 'enable "SMEE" (Memory Encryption) in the BIOS',
            )
        )
    max_asid, min_asid = leaf.ecx, leaf.edx
    out.append(
        Check(
            "SEV ASIDs",
            PASS if max_asid else FAIL,
            cat,
            f"ECX (highest SEV ASID) = {max_asid}",
            None if max_asid else 'set "SEV ASID Count" in the BIOS',
        )
    )
    if not max_asid:
        return
    if min_asid > max_asid + 1 or min_asid == 0:
        out.append(
            Check(
                "ASID split",
                FAIL,
                cat,
                f"EDX (lowest SEV ASID) = {min_asid} with ECX = {max_asid}",
                'set "SEV-ES ASID Space Limit" between 1 and the ASID count',
            )
        )
    elif min_asid <= 1:
        out.append(
            Check(
                "SEV-ES ASID space",
                FAIL,
                cat,
                f"EDX = {min_asid}: every ASID goes to plain SEV, none to SEV-ES",
                'raise "SEV-ES ASID Space Limit" in the BIOS (ASIDs below it go to SEV-ES guests)',
            )
        )
    else:
        out.append(
            Check(
                "SEV-ES ASID space",
                PASS,
                cat,
                f"ASIDs 1..{min_asid - 1} for SEV-ES, {min_asid}..{max_asid} for SEV",
            )
        )


def _kernel(obs: Observation, pred: Prediction | None, out: list[Check]) -> None:
    cat = "Kernel"
    version = kernel_version(obs.release)
    if version is None:
        out.append(Check("Kernel version", SKIP, cat, "release unknown"))
    else:
        preset = preset_for(obs.release)
        newest = kernel_version(NEWEST)
        if newest is not None and version > newest:
            out.append(
                Check(
                    "Kernel version",
                    WARN,
                    cat,
                    f"{obs.release} is newer than the newest preset; compared with the model's {preset}",
                )
            )
        else:
            out.append(
                Check("Kernel version", PASS, cat, f"{obs.release}; compared with the model's {preset}")
            )
    if obs.kconfig is None:
        out.append(Check("CONFIG_KVM_AMD_SEV", SKIP, cat, obs.kconfig_reason or "no kernel config"))
    else:
        value = obs.kconfig.get("CONFIG_KVM_AMD_SEV", "n")
        out.append(
            Check(
                "CONFIG_KVM_AMD_SEV",
                PASS if value == "y" else FAIL,
                cat,
                f"CONFIG_KVM_AMD_SEV={value}",
                None if value == "y" else "use a kernel built with CONFIG_KVM_AMD_SEV=y",
            )
        )
    if not obs.is_amd:
        return
    out.append(
        Check(
            "kvm_amd loaded",
            PASS if obs.kvm_amd_loaded else FAIL,
            cat,
            "module present in /sys/module" if obs.kvm_amd_loaded else "kvm_amd is not loaded",
            None if obs.kvm_amd_loaded else "modprobe kvm_amd (check dmesg if it fails)",
        )
    )


def _why_off(pred: Prediction | None, es: bool) -> str:
    if pred is None:
        return ""
    report = pred.report
    b = report["behaviour"]
    params = {
        k.split("=")[0].replace("kvm_amd.", ""): k
        for k in (*pred.config.params, *pred.config.cmdline.split())
    }
    name = "sev_es" if es else "sev"
    if report["sysfs"].get(name) in ("0", "N") and not report["sev_enabled" if not es else "sev_es_enabled"]:
        if (
            any(k.startswith(("kvm_amd.sev=0", "kvm_amd.sev=N", "kvm_amd.sev=n")) for k in params.values())
            and not es
        ):
            return "kvm_amd.sev is set off"
        if not b["sev_params_default_on"]:
            return (
                "before 5.13 kvm_amd.sev/sev_es default to "
                "CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT (usually off)"
            )
    if report.get("npt_enabled") is False:
        return "NPT is disabled (kvm_amd.npt=0)"
    if "sev" not in report["host_cpu_flags"]:
        return "the kernel cleared X86_FEATURE_SEV (SMEE off in the BIOS)"
    if es and (report["min_sev_asid"] or 0) <= 1:
        return "no SEV-ES ASIDs (EDX <= 1: the BIOS SEV-ES ASID Space Limit)"
    return ""


def _kvm(obs: Observation, pred: Prediction | None, out: list[Check]) -> None:
    cat = "KVM"
    if obs.kvm_api_version is None:
        out.append(
            Check(
                "/dev/kvm",
                SKIP if obs.dev_kvm is None else FAIL,
                cat,
                obs.kvm_reason or "unreadable",
                "load kvm_amd; /dev/kvm needs read-write access (group kvm)",
            )
        )
    else:
        good = obs.kvm_api_version == 12
        out.append(
            Check("/dev/kvm", PASS if good else FAIL, cat, f"KVM_GET_API_VERSION = {obs.kvm_api_version}")
        )
    if not obs.is_amd or not obs.kvm_amd_loaded:
        return
    for name, label, es in (("sev", "SEV enabled in KVM", False), ("sev_es", "SEV-ES enabled in KVM", True)):
        text = obs.sysfs.get(name)
        if text is None:
            out.append(
                Check(
                    label,
                    FAIL,
                    cat,
                    f"/sys/module/kvm_amd/parameters/{name} does not exist",
                    "the kernel was built without CONFIG_KVM_AMD_SEV",
                )
            )
            continue
        on = text in ENABLED
        why = _why_off(pred, es)
        hint = None
        if not on:
            hint = {"": "check dmesg for kvm_amd and SEV lines"}.get(why, f"cause per the model: {why}")
            if "default" in why or "set off" in why:
                hint += f"; boot with kvm_amd.{name}=1"
        out.append(Check(label, PASS if on else FAIL, cat, f"sysfs {name} = {text}", hint))
    if obs.supported_cpuid_8000001f is not None:
        adv = Cpuid8000001F(*obs.supported_cpuid_8000001f)
        sev_on = obs.sysfs.get("sev") in ENABLED
        ok = adv.has("SEV") == sev_on or not sev_on
        out.append(
            Check(
                "KVM_GET_SUPPORTED_CPUID 0x8000001F",
                PASS if ok else WARN,
                cat,
                f"EAX={adv.eax:#x} ({' '.join(adv.features) or 'nothing'})",
                None
                if ok
                else "KVM has SEV on but does not advertise it: VMMs that read this leaf "
                "(QEMU, libvirt) will not offer SEV guests",
            )
        )


def _firmware(obs: Observation, out: list[Check]) -> None:
    cat = "Firmware"
    if not obs.is_amd:
        return
    if obs.dev_sev is None:
        refused = any("memory encryption not enabled by BIOS" in line for line in obs.dmesg or ())
        out.append(
            Check(
                "/dev/sev",
                FAIL,
                cat,
                obs.dev_sev_reason or "absent",
                "the BIOS left memory encryption off, so the ccp driver set up no SEV device "
                "('SEV: memory encryption not enabled by BIOS', 1877c73b7c03): enable SMEE"
                if refused
                else "no SEV firmware: a client CPU, or the ccp driver is not loaded (modprobe ccp)",
            )
        )
        return
    access = obs.dev_sev
    rw = access.get("readable") and access.get("writable")
    out.append(
        Check(
            "/dev/sev",
            PASS if rw else WARN,
            cat,
            f"mode {access.get('mode')}, {'read-write' if rw else 'not read-write'} for uid {obs.uid}",
            None if rw else "run as root or grant the VMM user access to /dev/sev",
        )
    )
    status = obs.sev_platform_status
    if status is None:
        out.append(Check("SEV platform status", SKIP, cat, obs.sev_status_reason or "not read"))
        return
    state = {0: "UNINIT", 1: "INIT", 2: "WORKING"}.get(status["state"], str(status["state"]))
    ok = status["state"] in (1, 2)
    out.append(
        Check(
            "SEV platform status",
            PASS if ok else FAIL,
            cat,
            f"API {status['api_major']}.{status['api_minor']} build {status['build']}, state {state}, "
            f"{status['guest_count']} guests",
            None if ok else "SEV INIT failed at boot: look for 'SEV: failed to INIT error' in dmesg",
        )
    )
    es = bool(status["flags"] & 0x100)
    out.append(
        Check(
            "SEV-ES initialized",
            PASS if es else WARN,
            cat,
            f"flags {status['flags']:#x}",
            None if es else "the SEV-ES TMR was not set up at INIT",
        )
    )


def _capacity(obs: Observation, pred: Prediction | None, out: list[Check]) -> dict[str, Any]:
    cat = "Capacity"
    online, present = cpu_count(obs.cpus_online), cpu_count(obs.cpus_present)
    if online is not None and present is not None:
        all_on = online == present
        out.append(
            Check(
                "CPUs online",
                PASS if all_on else WARN,
                cat,
                f"{online} of {present} online",
                None
                if all_on
                else "an offline CPU makes every DF_FLUSH fail with WBINVD_REQUIRED: "
                "freed ASIDs are never recycled and new guests get -EBUSY; bring all CPUs online",
            )
        )
    if obs.rlimit_memlock is not None:
        soft = obs.rlimit_memlock[0]
        text = "unlimited" if soft < 0 or soft >= 2**62 else f"{soft} bytes"
        out.append(Check("RLIMIT_MEMLOCK", PASS, cat, f"{text} (the VMM pins guest memory against this)"))
    capacity: dict[str, Any] = {"sev": 0, "sev_es": 0, "source": "nothing readable"}
    if pred is not None and pred.report["loaded"]:
        r = pred.report
        sev = r["sev_asid_range"]
        es = r["sev_es_asid_range"]
        capacity = {
            "sev": 0 if sev is None else max(sev[1] - sev[0] + 1, 0),
            "sev_es": 0 if es is None else es[1] - es[0] + 1,
            "source": "CPUID 0x8000001F ECX/EDX (set by the BIOS), as kvm_amd splits them",
        }
        if obs.misc_capacity is not None:
            capacity["source"] += "; misc.capacity: " + (
                obs.misc_capacity.strip().replace("\n", ", ") or "empty"
            )
        msg = (
            (f"{capacity['sev']} SEV guests (ASIDs {sev[0]}..{sev[1]})" if sev else "0 SEV guests")
            + ", "
            + (f"{capacity['sev_es']} SEV-ES guests (ASIDs {es[0]}..{es[1]})" if es else "0 SEV-ES guests")
        )
        out.append(
            Check(
                "Guest capacity",
                PASS if capacity["sev"] or capacity["sev_es"] else FAIL,
                cat,
                msg,
                None if capacity["sev"] or capacity["sev_es"] else "see the failing checks above",
            )
        )
    return capacity


def _environment(obs: Observation, out: list[Check]) -> None:
    cat = "Environment"
    if obs.in_guest:
        detail = "the 'hypervisor' CPU flag is set: this is a virtual machine"
        if obs.sev_status_msr is not None:
            kind = "an SEV guest" if obs.sev_status_msr & 1 else "not SEV"
            detail += f"; SEV_STATUS = {obs.sev_status_msr:#x} ({kind})"
        out.append(Check("Bare metal", WARN, cat, detail, "run the probe on the host, not inside a guest"))
    else:
        out.append(Check("Bare metal", PASS, cat, "no 'hypervisor' CPU flag"))


def diagnose(obs: Observation, pred: Prediction | None) -> tuple[list[Check], dict[str, Any]]:
    checks: list[Check] = []
    _environment(obs, checks)
    _cpu(obs, checks)
    _bios(obs, checks)
    _kernel(obs, pred, checks)
    _kvm(obs, pred, checks)
    _firmware(obs, checks)
    capacity = _capacity(obs, pred, checks)
    return checks, capacity


def summary(checks: list[Check]) -> dict[str, int]:
    return {
        "total": len(checks),
        "passed": sum(c.status == PASS for c in checks),
        "failed": sum(c.status == FAIL for c in checks),
        "warned": sum(c.status == WARN for c in checks),
        "skipped": sum(c.status == SKIP for c in checks),
    }
