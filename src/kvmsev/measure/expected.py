"""The launch a guest owner expects QEMU to perform, as the sequence of launch updates the
firmware will measure, and the launch digest and measurement that sequence gives.

QEMU's order (``target/i386/sev.c``, ``hw/i386/pc_sysfw.c``, ``hw/i386/x86-common.c``):

1. The firmware image, whole, in one LAUNCH_UPDATE_DATA (``pc_system_flash_map`` ->
   ``x86_firmware_configure`` -> ``sev_encrypt_flash``; the ``-bios`` path does the same). Only
   pflash unit 0 is measured, so a split OVMF_CODE / OVMF_VARS pair is measured by its CODE file.
2. With ``-kernel`` and ``kernel-hashes=on``, the 176-byte SEV hashes table, in one more
   LAUNCH_UPDATE_DATA (``sev_add_kernel_loader_hashes``).
3. For an SEV-ES guest (policy bit 2), one KVM_SEV_LAUNCH_UPDATE_VMSA when the machine is ready
   (``sev_launch_get_measure``), which KVM turns into one 4096-byte LAUNCH_UPDATE_VMSA per vCPU,
   in vCPU index order (``sev_launch_update_vmsa``).

Then LAUNCH_MEASURE (:mod:`kvmsev.firmware.measurement`, the function the firmware model uses
too). sev-snp-measure computes the same digest for its ``sev`` and ``seves`` modes; the tests
compare the two.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from kvmsev.errors import InputError
from kvmsev.firmware.guest import POLICY_ES
from kvmsev.firmware.measurement import launch_digest, launch_measurement
from kvmsev.host.ovmf import FLASH_SECTOR_SIZE, KernelHashes, OvmfImage, sev_hashes_table
from kvmsev.host.vcpu_reset import BSP_RESET_ADDR, reset_vmsa

SCHEMA = "kvmsev.measure/1"
#: the init ioctl that made the VM, which decides what the VMSA carries besides registers
INITS = ("sev-es-init", "init2")


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """What the guest owner expects to be launched."""

    firmware: OvmfImage
    firmware_name: str
    es: bool = False
    vcpus: int = 1
    #: CPUID Fn0000_0001 EAX of the vCPUs (SEV-ES only) and the QEMU model it came from, if any
    vcpu_sig: int | None = None
    vcpu_type: str | None = None
    #: the SEV hashes table's digests, for ``-kernel`` with ``kernel-hashes=on``
    hashes: KernelHashes | None = None
    #: KVM_SEV_INIT2 rather than KVM_SEV_ES_INIT (only changes SEV-ES VMSAs)
    init2: bool = False


@dataclass(frozen=True, slots=True)
class MeasureInputs:
    """What LAUNCH_MEASURE mixes in besides the digest."""

    policy: int
    #: the running firmware's API major, minor and build (what ``query-sev`` reports)
    api: tuple[int, int, int]
    #: zero without a launch session
    tik: bytes = bytes(16)
    mnonce: bytes = bytes(16)


@dataclass(frozen=True, slots=True)
class LaunchUpdate:
    """One update the firmware hashes into the digest: the command, what it carries (firmware,
    SEV hashes table, VMSA of vCPU ``vcpu``) and its plaintext."""

    command: str
    what: str
    data: bytes
    vcpu: int | None = None


def check(plan: LaunchPlan, policy: int) -> None:
    """Refuse a launch QEMU would not start, naming the option that makes it so."""
    size = len(plan.firmware.data)
    if size == 0 or size % FLASH_SECTOR_SIZE:
        raise InputError(
            "--ovmf",
            f"{plan.firmware_name} is {size} bytes; QEMU maps only a non-zero multiple of "
            f"{FLASH_SECTOR_SIZE} bytes as flash",
        )
    if plan.es != bool(policy & POLICY_ES):
        problem = (
            f"{policy:#x} lacks the ES bit (0x4): QEMU starts an SEV-ES guest only for a policy with it"
            if plan.es
            else f"{policy:#x} has the ES bit (0x4): that is an SEV-ES launch (--mode seves)"
        )
        raise InputError("--policy", problem)
    try:
        reset = plan.firmware.sev_es_reset_addr if plan.es else None
        hash_table = plan.firmware.hash_table_problem() if plan.hashes is not None else None
    except ValueError as exc:
        raise InputError("--ovmf", f"{plan.firmware_name}: {exc}") from None
    if plan.es and reset is None:
        raise InputError(
            "--ovmf",
            f"{plan.firmware_name} has no SEV-ES reset block in its footer table: QEMU cannot start "
            "SEV-ES APs with it ('failed to locate and/or save reset vector')",
        )
    if plan.es and plan.vcpu_sig is None:
        raise InputError(
            "--vcpu-type",
            "an SEV-ES launch needs the vCPUs' CPU model (--vcpu-type NAME or --vcpu-sig N): every VMSA "
            "holds its signature in RDX",
        )
    if hash_table is not None:
        raise InputError("--kernel", f"{plan.firmware_name} {hash_table}")


def launch_updates(plan: LaunchPlan) -> tuple[LaunchUpdate, ...]:
    """The launch updates in the order QEMU issues them (module docstring); ``plan`` checked."""
    updates = [LaunchUpdate("LAUNCH_UPDATE_DATA", "firmware", plan.firmware.data)]
    if plan.hashes is not None:
        updates.append(LaunchUpdate("LAUNCH_UPDATE_DATA", "sev_hashes_table", sev_hashes_table(plan.hashes)))
    if plan.es:
        assert plan.vcpu_sig is not None
        ap_reset = plan.firmware.sev_es_reset_addr
        assert ap_reset is not None
        bsp = reset_vmsa(plan.vcpu_sig, BSP_RESET_ADDR, plan.init2)
        ap = reset_vmsa(plan.vcpu_sig, ap_reset, plan.init2)
        updates += [
            LaunchUpdate("LAUNCH_UPDATE_VMSA", "vmsa", bsp if index == 0 else ap, index)
            for index in range(plan.vcpus)
        ]
    return tuple(updates)


def measure(plan: LaunchPlan, inputs: MeasureInputs) -> dict[str, Any]:
    """The ``kvmsev measure --json`` document: what will be measured, the launch digest, and the
    measurement LAUNCH_MEASURE returns for ``inputs``."""
    check(plan, inputs.policy)
    updates = launch_updates(plan)
    digest = launch_digest(u.data for u in updates)
    hmac = launch_measurement(inputs.tik, inputs.api, inputs.policy, digest, inputs.mnonce)
    image = plan.firmware
    major, minor, build = inputs.api
    return {
        "schema": SCHEMA,
        "mode": "seves" if plan.es else "sev",
        "firmware": {
            "file": plan.firmware_name,
            "size": len(image.data),
            "sha256": hashlib.sha256(image.data).hexdigest(),
            "sev_es_reset_addr": _entry(image, "sev_es_reset_addr"),
            "sev_hash_table_area": _entry(image, "sev_hash_table_area"),
            "sev_secret_area": _entry(image, "sev_secret_area"),
        },
        "kernel_hashes": None
        if plan.hashes is None
        else {
            "cmdline": plan.hashes.cmdline.hex(),
            "initrd": plan.hashes.initrd.hex(),
            "kernel": plan.hashes.kernel.hex(),
        },
        "vcpus": plan.vcpus,
        "vcpu_type": plan.vcpu_type if plan.es else None,
        "vcpu_sig": plan.vcpu_sig if plan.es else None,
        "init": (INITS[1] if plan.init2 else INITS[0]) if plan.es else None,
        "launch_updates": [
            {
                "command": u.command,
                "what": u.what,
                "vcpu": u.vcpu,
                "len": len(u.data),
                "sha256": hashlib.sha256(u.data).hexdigest(),
            }
            for u in updates
        ],
        "launch_digest": digest.hex(),
        "policy": inputs.policy,
        "api": {"major": major, "minor": minor, "build": build},
        "tik_zero": inputs.tik == bytes(16),
        "mnonce": inputs.mnonce.hex(),
        "measurement": hmac.hex(),
        "launch_measure_blob": base64.b64encode(hmac + inputs.mnonce).decode(),
    }


def _entry(image: OvmfImage, name: str) -> int | dict[str, int] | None:
    """A footer-table entry for the report; one the launch does not use may be malformed (QEMU
    reads it only when it needs it), and is then reported as absent."""
    try:
        value = getattr(image, name)
    except ValueError:
        return None
    return value if value is None or isinstance(value, int) else {"base": value.base, "size": value.size}
