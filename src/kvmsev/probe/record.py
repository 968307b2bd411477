"""``.kvmsev/probe.json``: what a recorded host holds beyond files (CPUID, MSRs, ioctl answers).

``kvmsev probe --capture`` writes it; ``--root`` reads it back. It is validated field by field, so
a record edited by hand or damaged on the way is refused with the field named (exit 2) instead of
surfacing as a wrong diagnosis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from kvmsev.errors import InputError

U32 = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[StrictInt, Field(ge=0, le=2**64 - 1)]
U8 = Annotated[StrictInt, Field(ge=0, le=255)]
Reason = Annotated[str, Field(max_length=4096)] | None
Registers = Annotated[list[U32], Field(min_length=4, max_length=4)]
#: the largest record read; a real one is under 2 KiB
MAX_RECORD = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SevStatus(_Model):
    """SEV_PLATFORM_STATUS as ``struct sev_user_data_status`` unpacks it."""

    api_major: U8
    api_minor: U8
    build: U8
    state: U8
    flags: U32
    guest_count: U32


class Device(_Model):
    mode: Annotated[str, Field(pattern=r"^[0-7]{4}$")]
    readable: StrictBool
    writable: StrictBool


class Record(_Model):
    format: Annotated[str, Field(max_length=64)] = "kvmsev.root/1"
    uid: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    cpuid: dict[Annotated[str, Field(pattern=r"^0x[0-9a-f]{1,8}$")], Registers] | None = None
    cpuid_reason: Reason = None
    msr: dict[Annotated[str, Field(pattern=r"^0x[0-9a-f]{1,8}$")], U64] | None = None
    msr_reason: Reason = None
    kvm_api_version: U32 | None = None
    kvm_api_version_reason: Reason = None
    kvm_supported_cpuid_8000001f: Registers | None = None
    kvm_supported_cpuid_8000001f_reason: Reason = None
    kvm_sev_vmsa_features: U64 | None = None
    kvm_sev_vmsa_features_reason: Reason = None
    sev_platform_status: SevStatus | None = None
    sev_platform_status_reason: Reason = None
    dev: dict[Annotated[str, Field(pattern=r"^/dev/[a-z]+$")], Device] = {}
    rlimit_memlock: Annotated[list[U64], Field(min_length=2, max_length=2)] | None = None
    rlimit_memlock_reason: Reason = None


def load(path: Path) -> dict[str, Any]:
    """The validated record as plain data (what the reader looks values up in)."""
    where = f"--root: {path.parent.parent.name}/.kvmsev/probe.json"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_RECORD + 1)
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_RECORD:
        raise InputError(where, f"larger than {MAX_RECORD >> 10} KiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(where, f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(where, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InputError(where, "not valid JSON: nested too deeply") from None
    except ValueError as exc:  # integers longer than Python converts (int_max_str_digits)
        raise InputError(where, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(where, "not a kvmsev probe record (a JSON object)")
    try:
        record = Record.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise InputError(f"{where}: {field}" if field else where, error["msg"]) from None
    except RecursionError:
        raise InputError(where, "nested too deeply") from None
    return record.model_dump(exclude_unset=True)
