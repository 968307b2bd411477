"""Model vs reality: what the model predicts for this host against what the host shows.

Compared: the ``kvm_amd`` sysfs parameter texts, ``misc.capacity``, the kernel's SEV and NPT log
lines, and KVM_GET_SUPPORTED_CPUID's leaf 0x8000001F. Every disagreement says whether it looks
like a finding about the host or a gap in the model: on a kernel a preset covers (v5.12 to the
newest, each release's mainline X.Y.0) the model is trusted and the host is the suspect
(distribution patches and stable backports are the usual reasons); older or newer kernels than
the presets blame the model's coverage.
"""

from __future__ import annotations

import re
from typing import Any

from kvmsev.kvm.kernels import NEWEST
from kvmsev.probe.model import Prediction, kernel_version
from kvmsev.probe.observe import Observation

_RELEVANT = re.compile(r"(SEV|Nested Paging|kvm_amd:|misc controller)")
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s*")
#: the ccp driver prefixes its lines with the PSP's PCI address, which differs from host to host
_DEVICE = re.compile(r"^ccp [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: ")


def _log_lines(lines: list[str]) -> list[str]:
    return [_DEVICE.sub("ccp: ", _TIMESTAMP.sub("", line)) for line in lines if _RELEVANT.search(line)]


#: sysfs parameters whose absence on the host is itself a finding (a kernel with or without the
#: feature); the others are compared only when the host recorded them
_ALWAYS_COMPARED = frozenset({"sev", "sev_es", "sev_snp", "debug_swap", "ciphertext_hiding_asids"})


def _suspect(obs: Observation) -> tuple[str, str]:
    version = kernel_version(obs.release)
    newest = kernel_version(NEWEST)
    if version is not None and newest is not None and version > newest:
        return "model", f"kernel {obs.release} is newer than the newest preset, v{NEWEST}"
    if version is not None and version < (5, 12):
        return "model", f"kernel {obs.release} is older than the oldest preset, v5.12"
    return "host", "the model covers this kernel; the host differs (distribution patches, or a host problem)"


def compare(obs: Observation, pred: Prediction | None) -> dict[str, list[dict[str, Any]]]:
    agree: list[dict[str, Any]] = []
    disagree: list[dict[str, Any]] = []
    if pred is None:
        return {"agree": agree, "disagree": disagree}
    report = pred.report
    suspect, why = _suspect(obs)

    def judge(item: str, observed: Any, predicted: Any) -> None:
        if observed == predicted:
            agree.append({"item": item, "value": observed})
        else:
            disagree.append(
                {"item": item, "observed": observed, "predicted": predicted, "suspect": suspect, "why": why}
            )

    if obs.kvm_amd_loaded:
        for name in sorted(set(obs.sysfs) | (set(report["sysfs"]) & _ALWAYS_COMPARED)):
            judge(f"sysfs {name}", obs.sysfs.get(name), report["sysfs"].get(name))
    if obs.misc_capacity is not None or report["misc_capacity_file"] not in (None, ""):
        judge("misc.capacity", obs.misc_capacity, report["misc_capacity_file"])
    if obs.supported_cpuid_8000001f is not None:
        predicted = report["supported_cpuid_8000001f"]
        judge(
            "KVM_GET_SUPPORTED_CPUID 0x8000001F",
            obs.supported_cpuid_8000001f,
            None if predicted is None else [predicted[r] for r in ("eax", "ebx", "ecx", "edx")],
        )
    asked = (obs.sev_vmsa_features_reason or "").startswith("KVM_GET_DEVICE_ATTR")
    if obs.kvm_amd_loaded and (obs.sev_vmsa_features is not None or asked):
        # kvm_amd answered the ioctl: a value, or its refusal (no such attribute)
        judge("KVM_GET_DEVICE_ATTR SEV VMSA features", obs.sev_vmsa_features, report["sev_vmsa_features"])
    if obs.dmesg is not None and obs.kvm_amd_loaded:
        judge(
            "kernel log (SEV and NPT lines)",
            _log_lines(obs.dmesg),
            _log_lines(report["boot_dmesg"] + report["dmesg"]),
        )
    if pred.syscfg_inferred:
        agree.append({"item": "note", "value": "SYSCFG was inferred from the kernel's CPU flags"})
    return {"agree": agree, "disagree": disagree}
