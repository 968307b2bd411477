"""Scenario values built from files, the way QEMU builds them for a launch: a file's bytes (a
firmware image to load), the SEV hashes table of a kernel, initrd and command line, and the VMSA
QEMU's reset gives a vCPU of an SEV-ES guest.

Paths are relative to the scenario file's directory (absolute paths are taken as they are); each
file is read once, when the scenario is loaded (however many steps name it), and a problem with it
is the scenario's error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from kvmsev import files
from kvmsev.host.ovmf import MAX_BOOT_FILE, KernelHashes, OvmfImage, cmdline_digest, sev_hashes_table
from kvmsev.host.vcpu_reset import QEMU_CPU_MODELS, model_signature
from kvmsev.numbers import parse_int

#: a path as a scenario writes it
PATH_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 4096}
#: the published forms (``kvmsev schema scenario``)
FILE_SCHEMA = {
    "type": "object",
    "properties": {"file": PATH_SCHEMA},
    "required": ["file"],
    "additionalProperties": False,
}
SEV_HASHES_SCHEMA = {
    "type": "object",
    "properties": {
        "sev_hashes": {
            "type": "object",
            "properties": {
                "kernel": PATH_SCHEMA,
                "initrd": PATH_SCHEMA,
                "append": {"type": "string", "maxLength": 65536},
            },
            "required": ["kernel"],
            "additionalProperties": False,
        }
    },
    "required": ["sev_hashes"],
    "additionalProperties": False,
}
RESET_SCHEMA = {
    "type": "object",
    "properties": {
        "reset": {"anyOf": [{"enum": list(QEMU_CPU_MODELS)}, {"type": "integer", "minimum": 0}]},
        "firmware": PATH_SCHEMA,
    },
    "required": ["reset", "firmware"],
    "additionalProperties": False,
}

PathText = Annotated[str, Field(min_length=1, max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FileForm(_Model):
    file: PathText


class _SevHashes(_Model):
    kernel: PathText
    initrd: PathText | None = None
    append: str = Field(default="", max_length=65536)


class _SevHashesForm(_Model):
    sev_hashes: _SevHashes


class _ResetForm(_Model):
    #: a CPU model name or a signature (checked by :func:`_signature`)
    reset: Any
    firmware: PathText


class VcpuReset(_Model):
    """A vCPU whose VMSA is its reset state: the CPU model's signature and where the firmware
    starts APs (the BSP, vCPU 0, starts at the reset vector whatever this says)."""

    vcpu_sig: int
    ap_reset: int
    cpu: str | None = None


def _read(context: Any, name: str, limit: int, digest: bool = False) -> bytes:
    """The bytes of file ``name`` (its SHA-256 with ``digest``), read once per scenario: the
    validation context keeps what was read, or why it could not be, so a file named in a thousand
    steps (or through a YAML alias) costs one read and one copy in memory. That holds for a
    failure too: a kernel that is a link to ``/dev/zero`` is read to its 1 GiB limit (about a
    second) once, not once per step that names it."""
    path = Path(name) if Path(name).is_absolute() else _base(context) / name
    cache: dict[tuple[str, int, bool], bytes | str] = {}
    if isinstance(context, dict):
        cache = context.setdefault("files", {})
    try:
        key = (str(path.resolve()), limit, digest)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the name
        key = (str(path), limit, digest)
    found = cache.get(key)
    if found is None:
        try:
            found = files.sha256_bounded(str(path), limit) if digest else files.read_bounded(str(path), limit)
        except ValueError as exc:
            found = str(exc)
        cache[key] = found
    if isinstance(found, str):
        raise ValueError(f"file {name!r}: {found}")
    return found


def _base(context: Any) -> Path:
    base = context.get("base") if isinstance(context, dict) else None
    return Path(base) if base is not None else Path(".")


def file_bytes(value: dict[str, Any], context: Any, limit: int) -> bytes:
    """``{file: PATH}``: the file's bytes, at most ``limit`` of them."""
    form = _FileForm.model_validate(value)
    return _read(context, form.file, limit)


def sev_hashes_bytes(value: dict[str, Any], context: Any) -> bytes:
    """``{sev_hashes: {kernel, initrd, append}}``: the 176-byte table QEMU measures for a direct
    boot with ``kernel-hashes=on`` (:func:`kvmsev.host.ovmf.sev_hashes_table`)."""
    form = _SevHashesForm.model_validate(value).sev_hashes
    initrd = (
        hashlib.sha256(b"").digest()
        if form.initrd is None
        else _read(context, form.initrd, MAX_BOOT_FILE, True)
    )
    kernel = _read(context, form.kernel, MAX_BOOT_FILE, True)
    return sev_hashes_table(KernelHashes(cmdline_digest(form.append.encode()), initrd, kernel))


def _signature(reset: Any) -> tuple[int, str | None]:
    """``reset``'s CPUID signature, and the QEMU model it names (None for a number)."""
    if isinstance(reset, int) and not isinstance(reset, bool):
        signature = reset
    elif isinstance(reset, str) and ((reset.isascii() and reset.isdigit()) or reset[:2].lower() == "0x"):
        signature = parse_int(reset)
    elif isinstance(reset, str):
        found = model_signature(reset)
        if found is None:
            known = ", ".join(QEMU_CPU_MODELS)
            raise ValueError(f"unknown CPU model {reset[:40]!r} (known: {known}; or a CPUID 1 EAX signature)")
        return found, reset
    else:
        raise ValueError("reset: expected a QEMU CPU model name or a CPUID Fn0000_0001 EAX signature")
    if not 0 <= signature <= 0xFFFF_FFFF:
        raise ValueError(f"signature {signature:#x} does not fit CPUID's 32 bits")
    return signature, None


def vcpu_reset(value: dict[str, Any], context: Any, firmware_limit: int) -> VcpuReset:
    """``{reset: CPU-MODEL or SIGNATURE, firmware: PATH}``: the reset VMSA of
    :mod:`kvmsev.host.vcpu_reset`; the firmware must have an SEV-ES reset block, as QEMU
    requires for an SEV-ES guest."""
    form = _ResetForm.model_validate(value)
    signature, cpu = _signature(form.reset)
    image = OvmfImage.parse(_read(context, form.firmware, firmware_limit))
    try:
        reset = image.sev_es_reset_addr
    except ValueError as exc:
        raise ValueError(f"file {form.firmware!r}: {exc}") from None
    if reset is None:
        raise ValueError(
            f"file {form.firmware!r} has no SEV-ES reset block in an OVMF footer table: QEMU cannot "
            "start SEV-ES APs with it"
        )
    return VcpuReset(vcpu_sig=signature, ap_reset=reset, cpu=cpu)
