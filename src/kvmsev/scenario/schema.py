"""The scenario file format (YAML or JSON), validated by pydantic models; ``kvmsev schema
scenario`` prints their JSON Schema (``docs/scenario.schema.json``).

```yaml
host:                 # everything `kvmsev boot` accepts, plus seed / memlock_limit / ...
  profile: lab
  kernel: v5.13
steps:
  - {op: vm_create, vm: a}
  - {op: sev_init, vm: a}
  - {op: launch_start, vm: a, policy: 0x1}
```

Several hosts (for migration) go under ``hosts: {NAME: {...}}``; each step names its host with
``host:`` (default: the first). Any problem names the file, the step and the field
(``steps[3].len: ...``) and is an input error (exit 2); nothing runs. Values a real userspace
could pass to the real ioctls (bad policies, wrong lengths, wrong order) are only checked to fit
the kernel's structures (a ``__u32`` length is at most 4294967295): the model answers the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kvmsev.errors import InputError
from kvmsev.host.config import HostConfig, resolve
from kvmsev.numbers import parse_int
from kvmsev.scenario import images

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
#: the largest byte string a scenario may spell out (memory, secrets, VMSA images)
MAX_DATA = 16 << 20
#: the most bytes all of a scenario's data may add up to: each value is built in memory when the
#: file is read, so without a total a few lines of ``{zero: 16777216}`` repeated (or a YAML alias
#: used a thousand times) would ask for gigabytes before the first step
MAX_SCENARIO_DATA = 64 << 20
#: the largest scenario file read (a file is data, not a program: 64 MiB is far more than any needs)
MAX_FILE = 64 << 20
#: the largest YAML scenario: where PyYAML was built without libyaml its parser is pure Python,
#: about a second per MiB, so a YAML file is held to a size that parser reads in seconds (large
#: data belongs in ``{file: PATH}``, or JSON)
MAX_YAML = 4 << 20
#: PyYAML's libyaml parser where it has one: about a hundred times faster than the pure-Python one
#: (a 2 MB file of deeply indented lines: 7 ms against 0.9 s), and it stops at a nesting depth of
#: 1,000 by itself; the constructor that builds the values stays PyYAML's ``SafeConstructor``
_YAML_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: the most values (mappings, lists, scalars) a scenario may hold, aliases expanded
MAX_NODES = 2_000_000


def _int(value: Any) -> Any:
    """Integers as YAML/JSON numbers or strings in any base Python reads (``0x10``, ``16``)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, str):
        return parse_int(value)
    return value


def _hex(value: Any) -> Any:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected hex bytes, got {value!r}")
    try:
        return bytes.fromhex(value.removeprefix("0x").replace(" ", ""))
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not hex bytes") from None


#: the text forms :func:`kvmsev.numbers.parse_int` reads, for the published JSON Schema
_INT_TEXT = r"^\s*(0[xX](_?[0-9a-fA-F])+|0[oO](_?[0-7])+|0[bB](_?[01])+|[1-9](_?[0-9])*|0+)\s*$"


def _int_schema(low: int, high: int) -> WithJsonSchema:
    """The published form of an integer field: a number in range, or text kvmsev reads."""
    number = {"type": "integer", "minimum": low, "maximum": high}
    return WithJsonSchema({"anyOf": [number, {"type": "string", "pattern": _INT_TEXT}]})


def _hex_of(size: int | None) -> Callable[[Any], Any]:
    """Bytes written as hex (``0x`` prefix and spaces allowed); exactly ``size`` bytes if given."""

    def check(value: Any) -> Any:
        data = _hex(value)
        if size is not None and len(data) != size:
            raise ValueError(f"expected {size} bytes ({2 * size} hex digits), got {len(data)}")
        if not data:
            raise ValueError("expected at least one byte")
        return data

    return check


def _hex_schema(size: int | None) -> WithJsonSchema:
    digits = "+" if size is None else f"{{{size}}}"
    return WithJsonSchema({"type": "string", "pattern": rf"^(0x)?( *[0-9a-fA-F]{{2}}){digits} *$"})


U32 = Annotated[int, BeforeValidator(_int), Field(ge=0, le=U32_MAX), _int_schema(0, U32_MAX)]
U64 = Annotated[int, BeforeValidator(_int), Field(ge=0, le=U64_MAX), _int_schema(0, U64_MAX)]
Size = Annotated[int, BeforeValidator(_int), Field(ge=0, le=MAX_DATA), _int_schema(0, MAX_DATA)]
Cpu = Annotated[int, BeforeValidator(_int), Field(ge=0, le=8191), _int_schema(0, 8191)]
VcpuIndex = Annotated[int, BeforeValidator(_int), Field(ge=0, le=1023), _int_schema(0, 1023)]
CpuCount = Annotated[int, BeforeValidator(_int), Field(ge=1, le=8192), _int_schema(1, 8192)]
HexBytes = Annotated[bytes, BeforeValidator(_hex_of(None)), _hex_schema(None)]
Key16 = Annotated[bytes, BeforeValidator(_hex_of(16)), _hex_schema(16)]
Mac32 = Annotated[bytes, BeforeValidator(_hex_of(32)), _hex_schema(32)]


class _Fill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: HexBytes | None = None
    len: Size | None = None
    zero: Size | None = None

    @model_validator(mode="after")
    def _one_form(self) -> _Fill:
        if (self.zero is None) == (self.pattern is None):
            raise ValueError("give either zero: N, or pattern: HEX with len: N")
        if self.pattern is not None and self.len is None:
            raise ValueError("pattern needs len")
        return self

    def expand(self) -> bytes:
        if self.zero is not None:
            return bytes(self.zero)
        assert self.pattern is not None and self.len is not None
        return (self.pattern * (self.len // len(self.pattern) + 1))[: self.len]

    @property
    def size(self) -> int:
        return self.zero if self.zero is not None else self.len or 0


def _spend(info: ValidationInfo, size: int) -> None:
    """Count ``size`` bytes of data against the scenario's :data:`MAX_SCENARIO_DATA`, before
    they are built where the form allows (``{zero: N}``, patterns)."""
    if not isinstance(info.context, dict):
        return
    total = info.context.get("data_bytes", 0) + size
    if total > MAX_SCENARIO_DATA:
        raise ValueError(
            f"the scenario's data add up to more than {MAX_SCENARIO_DATA >> 20} MiB, the most "
            "kvmsev reads for one scenario"
        )
    info.context["data_bytes"] = total


def _data(value: Any, info: ValidationInfo) -> Any:
    """Hex bytes, ``{pattern: HEX, len: N}`` (the pattern repeated to N bytes), ``{zero: N}``,
    ``{file: PATH}`` or ``{sev_hashes: {...}}`` (:mod:`kvmsev.scenario.images`)."""
    if isinstance(value, dict) and "file" in value:
        built = images.file_bytes(value, info.context, MAX_DATA)
    elif isinstance(value, dict) and "sev_hashes" in value:
        built = images.sev_hashes_bytes(value, info.context)
    elif isinstance(value, dict):
        fill = _Fill.model_validate(value)
        _spend(info, fill.size)
        return fill.expand()
    else:
        built = _hex(value)
    if isinstance(built, bytes):
        _spend(info, len(built))
    return built


_DATA_FORMS = [
    {"type": "string", "pattern": r"^(0x)?( *[0-9a-fA-F]{2})* *$"},
    _Fill.model_json_schema(),
    images.FILE_SCHEMA,
    images.SEV_HASHES_SCHEMA,
]
Data = Annotated[
    bytes, BeforeValidator(_data), Field(max_length=MAX_DATA), WithJsonSchema({"anyOf": _DATA_FORMS})
]


def _vmsa(value: Any, info: ValidationInfo) -> Any:
    """A VMSA image as data, or ``{reset: CPU-MODEL, firmware: PATH}``: the vCPU's reset state."""
    if isinstance(value, dict) and "reset" in value:
        return images.vcpu_reset(value, info.context, MAX_DATA)
    return _data(value, info)


Vmsa = Annotated[
    Annotated[bytes, Field(max_length=MAX_DATA)] | images.VcpuReset,
    BeforeValidator(_vmsa),
    WithJsonSchema({"anyOf": [*_DATA_FORMS, images.RESET_SCHEMA]}),
]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
CgroupPath = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^/([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Model):
    #: which host of ``hosts`` the step runs on (default: the first)
    host: Name | None = None


class _OnVm(_Step):
    vm: Name


class VmCreate(_Step):
    op: Literal["vm_create"]
    vm: Name
    cgroup: CgroupPath = "/"
    #: KVM_CREATE_VM's type (6.10: 2 KVM_X86_SEV_VM, 3 KVM_X86_SEV_ES_VM; any other than 0 is
    #: -EINVAL on older kernels)
    type: U64 = 0


class SevInit2(_OnVm):
    """KVM_SEV_INIT2 (6.10) with ``struct kvm_sev_init``."""

    op: Literal["sev_init2"]
    vmsa_features: U64 = 0
    flags: U32 = 0
    ghcb_version: Annotated[int, BeforeValidator(_int), Field(ge=0, le=0xFFFF), _int_schema(0, 0xFFFF)] = 0
    data_fault: bool = False


class SimpleCmd(_OnVm):
    """Commands with no parameters of their own."""

    op: Literal[
        "sev_init",
        "sev_es_init",
        "launch_update_vmsa",
        "launch_finish",
        "guest_status",
        "send_finish",
        "send_cancel",
        "receive_finish",
        "snp_enable_req_certs",
        "vm_destroy",
    ]


class Session(_Model):
    """A guest owner's launch session: the keys it wraps for the platform's PDH, the policy it
    MACs (default: the launch policy), and how to spoil it."""

    tek: Key16 = bytes(16)
    tik: Key16 = bytes(16)
    policy: U32 | None = None
    tamper: Literal["wrap_mac", "policy_mac", "wrap_tk", "certificate", "session_len"] | None = None


class LaunchStart(_OnVm):
    op: Literal["launch_start"]
    policy: U32 = 0
    handle: U32 = 0
    sev_fd: U32 | None = None
    session: Session | None = None


class LaunchUpdateData(_OnVm):
    op: Literal["launch_update_data"]
    data: Data | None = None
    uaddr: U64 | None = None
    len: U32 | None = None


class LaunchSecret(_OnVm):
    op: Literal["launch_secret"]
    secret: Data
    iv: Key16 = bytes(16)
    flags: U32 = 0
    mac: Mac32 | None = None
    guest_uaddr: U64 | None = None
    tek: Key16 | None = None
    tik: Key16 | None = None


class LaunchMeasure(_OnVm):
    op: Literal["launch_measure"]
    len: U32 = 48


class AttestationReport(_OnVm):
    op: Literal["attestation_report"]
    mnonce: Key16 = bytes(16)
    len: U32 = 0xD0


class DbgDecrypt(_OnVm):
    """Without ``dst_uaddr`` the VMM maps a buffer of ``len`` bytes for the plaintext and the
    report carries it as data, so ``len`` is then held to what a scenario may spell out (16 MiB):
    the kernel takes any 32-bit length, and decrypting 4 GiB into a fresh buffer would be 4 GiB of
    model memory and a million firmware commands for a line of input."""

    op: Literal["dbg_decrypt"]
    src_uaddr: U64
    dst_uaddr: U64 | None = None
    len: U32

    @field_validator("len")
    @classmethod
    def _reported_len(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("dst_uaddr") is None and value > MAX_DATA:
            raise ValueError(
                f"{value} is over {MAX_DATA >> 20} MiB, the most a dbg_decrypt without dst_uaddr "
                "reports (give dst_uaddr to decrypt into memory the scenario mapped)"
            )
        return value


class DbgEncrypt(_OnVm):
    op: Literal["dbg_encrypt"]
    data: Data
    dst_uaddr: U64


class Region(_OnVm):
    op: Literal["reg_region", "unreg_region"]
    uaddr: U64
    size: U64


class MemWrite(_OnVm):
    op: Literal["mem_write"]
    data: Data
    uaddr: U64 | None = None


class MemEncOp(_OnVm):
    op: Literal["mem_enc_op"]
    id: U32
    #: the parameters pointer is not mapped in the VMM (copy_from_user faults)
    data_fault: bool = False


class VcpuCreate(_OnVm):
    op: Literal["vcpu_create"]
    vmsa: Vmsa | None = None


class VcpuRun(_OnVm):
    op: Literal["vcpu_run"]
    vcpu: VcpuIndex
    cpu: Cpu


class VcpuSetGuestDebug(_OnVm):
    """KVM_SET_GUEST_DEBUG on one vCPU: ``control`` is KVM_GUESTDBG_* (ENABLE 0x1, SINGLESTEP
    0x2, USE_SW_BP 0x10000, USE_HW_BP 0x20000; 0 turns debugging off), ``dr7`` the
    ``debugreg[7]`` used with USE_HW_BP."""

    op: Literal["vcpu_set_guest_debug"]
    vcpu: VcpuIndex
    control: U32 = 1
    dr7: U64 = 0


class VcpuSetDebugregs(_OnVm):
    """KVM_SET_DEBUGREGS on one vCPU (``struct kvm_debugregs``; DR0-3 are not modeled)."""

    op: Literal["vcpu_set_debugregs"]
    vcpu: VcpuIndex
    dr7: U64 = 0x400
    dr6: U64 = 0xFFFF0FF0
    flags: U64 = 0


class SevDeviceAttr(_Step):
    """KVM_GET_DEVICE_ATTR (``has: true``: KVM_HAS_DEVICE_ATTR) on /dev/kvm in group
    KVM_X86_GRP_SEV: ``attr`` 0 VMSA_FEATURES, 1 SNP_POLICY_BITS, 2 SEV_SNP_REQ_CERTS."""

    op: Literal["sev_device_attr"]
    attr: U64 = 0
    has: bool = False


class CpuHotplug(_Step):
    op: Literal["cpu_offline", "cpu_online"]
    cpu: Cpu


class CgroupCreate(_Step):
    op: Literal["cgroup_create"]
    cgroup: CgroupPath


class CgroupSetMax(_Step):
    op: Literal["cgroup_set_max"]
    cgroup: CgroupPath
    resource: Literal["sev", "sev_es"]
    max: U64 | Literal["max"]


class ModuleUnload(_Step):
    op: Literal["module_unload"]


class ModuleLoad(_Step):
    op: Literal["module_load"]
    fail_alloc: Annotated[str, Field(max_length=64)] | None = None


class FwFault(_Step):
    op: Literal["fw_fault"]
    cmd: Annotated[str, Field(max_length=64)]
    status: Annotated[str, Field(max_length=64)] = "HWSEV_RET_UNSAFE"


class CopyEncContextFrom(_OnVm):
    """KVM_CAP_VM_COPY_ENC_CONTEXT_FROM on ``vm`` with ``source``'s VM fd."""

    op: Literal["copy_enc_context_from"]
    source: Name
    flags: U64 = 0


class SnpLaunchStart(_OnVm):
    """KVM_SEV_SNP_LAUNCH_START (6.11) with ``struct kvm_sev_snp_launch_start``."""

    op: Literal["snp_launch_start"]
    #: the SNP guest policy (default 0x30000: SMT allowed, the must-be-one bit 17)
    policy: U64 = 0x30000
    flags: Annotated[int, BeforeValidator(_int), Field(ge=0, le=0xFFFF), _int_schema(0, 0xFFFF)] = 0
    sev_fd: U32 | None = None
    data_fault: bool = False


class SnpLaunchUpdate(_OnVm):
    """KVM_SEV_SNP_LAUNCH_UPDATE: ``len`` bytes from ``uaddr`` (``data`` is written there first)
    into the guest pages from ``gfn_start``; ``type`` 1 NORMAL, 3 ZERO, 4 UNMEASURED, 5 SECRETS,
    6 CPUID."""

    op: Literal["snp_launch_update"]
    gfn_start: U64 = 0
    data: Data | None = None
    uaddr: U64 | None = None
    len: U64 | None = None
    type: Annotated[int, BeforeValidator(_int), Field(ge=0, le=255), _int_schema(0, 255)] = 1
    flags: Annotated[int, BeforeValidator(_int), Field(ge=0, le=0xFFFF), _int_schema(0, 0xFFFF)] = 0
    #: the file each page's SNP_LAUNCH_UPDATE goes through (default: /dev/sev)
    sev_fd: U32 | None = None


class SnpLaunchFinish(_OnVm):
    """KVM_SEV_SNP_LAUNCH_FINISH (no ID block)."""

    op: Literal["snp_launch_finish"]
    flags: Annotated[int, BeforeValidator(_int), Field(ge=0, le=0xFFFF), _int_schema(0, 0xFFFF)] = 0


class MoveEncContextFrom(_OnVm):
    """KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM on ``vm`` with ``source``'s VM fd (5.16)."""

    op: Literal["move_enc_context_from"]
    source: Name
    flags: U64 = 0


class SendStart(_OnVm):
    op: Literal["send_start"]
    #: the host migrated to (default: this one); its PDH certificate and chain are used
    to: Name | None = None
    #: the migration channel's name (default: the VM's)
    stream: Name | None = None
    session_len: U32 = 128


class SendUpdateData(_OnVm):
    op: Literal["send_update_data"]
    stream: Name | None = None
    uaddr: U64
    len: U32


class ReceiveStart(_OnVm):
    op: Literal["receive_start"]
    stream: Name
    #: the host the stream comes from (default: the one that has a stream of that name)
    source: Name | None = None
    policy: U32 | None = None
    handle: U32 = 0


class ReceiveUpdateData(_OnVm):
    op: Literal["receive_update_data"]
    stream: Name
    source: Name | None = None
    #: which packet of the stream (default: the next one)
    packet: U32 | None = None
    uaddr: U64 | None = None
    tamper: Literal["header", "trans"] | None = None


STEP_MODELS: tuple[type[_Step], ...] = (
    VmCreate,
    SimpleCmd,
    LaunchStart,
    LaunchUpdateData,
    LaunchSecret,
    LaunchMeasure,
    AttestationReport,
    DbgDecrypt,
    DbgEncrypt,
    Region,
    MemWrite,
    MemEncOp,
    VcpuCreate,
    VcpuRun,
    VcpuSetGuestDebug,
    VcpuSetDebugregs,
    SevDeviceAttr,
    CpuHotplug,
    CgroupCreate,
    CgroupSetMax,
    ModuleUnload,
    ModuleLoad,
    FwFault,
    CopyEncContextFrom,
    MoveEncContextFrom,
    SevInit2,
    SnpLaunchStart,
    SnpLaunchUpdate,
    SnpLaunchFinish,
    SendStart,
    SendUpdateData,
    ReceiveStart,
    ReceiveUpdateData,
)
#: every op, in the order the models list them
OPS: tuple[str, ...] = tuple(
    tag for model in STEP_MODELS for tag in getattr(model.model_fields["op"].annotation, "__args__", ())
)
StepModel = Annotated[
    VmCreate
    | SimpleCmd
    | LaunchStart
    | LaunchUpdateData
    | LaunchSecret
    | LaunchMeasure
    | AttestationReport
    | DbgDecrypt
    | DbgEncrypt
    | Region
    | MemWrite
    | MemEncOp
    | VcpuCreate
    | VcpuRun
    | VcpuSetGuestDebug
    | VcpuSetDebugregs
    | SevDeviceAttr
    | CpuHotplug
    | CgroupCreate
    | CgroupSetMax
    | ModuleUnload
    | ModuleLoad
    | FwFault
    | CopyEncContextFrom
    | MoveEncContextFrom
    | SevInit2
    | SnpLaunchStart
    | SnpLaunchUpdate
    | SnpLaunchFinish
    | SendStart
    | SendUpdateData
    | ReceiveStart
    | ReceiveUpdateData,
    Field(discriminator="op"),
]


def _strings(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Strings = Annotated[
    list[Annotated[str, Field(max_length=4096)]], BeforeValidator(_strings), Field(max_length=256)
]


class HostModel(_Model):
    """A host to boot: ``kvmsev boot``'s options, plus what a scenario alone can set."""

    profile: Annotated[str, Field(min_length=1, max_length=4096)] = "epyc-7763"
    cpuid: Annotated[str, Field(max_length=128)] | None = None
    kernel: Annotated[str, Field(max_length=32)] = "v5.13"
    apply: Strings = []
    revert: Strings = []
    params: Strings = []
    cmdline: Annotated[str, Field(max_length=4096)] = ""
    config: Strings = []
    bios: Strings = []
    cpus: CpuCount | None = None
    sockets: Annotated[int, BeforeValidator(_int), Field(ge=1, le=2), _int_schema(1, 2)] = 1
    fail_alloc: Strings = []
    #: seeds everything left to chance: firmware keys and nonces, uninitialised memory
    seed: U64 = 0
    #: {"CPU:INDEX": VALUE}: initial content of uninitialised sev_vmcbs entries
    sev_vmcbs_garbage: dict[Annotated[str, Field(pattern=r"^\d{1,4}:\d{1,5}$")], U64] = {}
    memlock_limit: U64 = 64 * 1024
    cap_ipc_lock: bool = False

    def config_for(self) -> HostConfig:
        return HostConfig(
            profile=self.profile,
            cpuid=self.cpuid,
            kernel=self.kernel,
            apply=tuple(self.apply),
            revert=tuple(self.revert),
            params=tuple(self.params),
            cmdline=self.cmdline,
            config=tuple(self.config),
            bios=tuple(self.bios),
            cpus=self.cpus,
            sockets=self.sockets,
            fail_alloc=tuple(self.fail_alloc),
            seed=self.seed,
            sev_vmcbs_garbage=tuple(
                (int(k.split(":")[0]), int(k.split(":")[1]), v) for k, v in self.sev_vmcbs_garbage.items()
            ),
            memlock_limit=self.memlock_limit,
            cap_ipc_lock=self.cap_ipc_lock,
        )


class ScenarioModel(_Model):
    """A scenario file."""

    description: Annotated[str, Field(max_length=65536)] | None = None
    host: HostModel | None = None
    hosts: Annotated[dict[Name, HostModel], Field(min_length=1, max_length=16)] | None = None
    steps: Annotated[list[StepModel], Field(max_length=100_000)]

    @model_validator(mode="after")
    def _hosts(self) -> ScenarioModel:
        if self.host is not None and self.hosts is not None:
            raise ValueError("give either host or hosts, not both")
        names = set(self.hosts) if self.hosts is not None else {"host"}
        known = ", ".join(sorted(names))
        for i, step in enumerate(self.steps):
            fields = (
                ("host", "to", "source")
                if isinstance(step, ReceiveStart | ReceiveUpdateData)
                else ("host", "to")
            )
            for field in fields:
                target = getattr(step, field, None)
                if isinstance(target, str) and target not in names:
                    raise ValueError(f"steps[{i}].{field}: no host {target!r} (hosts: {known})")
        return self


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    op: str
    args: dict[str, Any]
    host: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    hosts: dict[str, HostConfig]
    steps: tuple[Step, ...]

    @property
    def host(self) -> HostConfig:
        """The first host (the only one in a single-host scenario)."""
        return next(iter(self.hosts.values()))


def _where(loc: tuple[int | str, ...]) -> str:
    """``('steps', 3, 'launch_update_data', 'len')`` -> ``steps[3].len``: the discriminator tag
    pydantic puts after a step's index is dropped."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(previous, int) and part in OPS):
            out += f".{part}" if out else str(part)
        previous = part
    return out


def _problem(error: Any) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "union_tag_invalid":
        tag = error["input"].get("op") if isinstance(error["input"], dict) else None
        return _where(loc) + ".op", f"unknown op {tag!r} (known: {', '.join(OPS)})"
    if kind == "union_tag_not_found":
        return _where(loc), "each step must be a mapping with an 'op'"
    op = next((part for part in loc if isinstance(part, str) and part in OPS), None)
    if kind == "extra_forbidden":
        if op is not None:
            fields = [f for f in _model_of(op).model_fields if f not in ("op", "host")]
            return _where(loc), f"not a field of {op} (fields: {', '.join(fields) or 'none'}, host)"
        if loc[:1] in (("host",), ("hosts",)):
            return _where(loc), f"unknown field (known: {', '.join(HostModel.model_fields)})"
        return _where(loc), "not a field here"
    if kind == "missing":
        return _where(loc), f"required by {op}" if op is not None else "required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return _where(loc), message


#: the ``boot`` option each host field is given by on the command line
_FLAGS = {
    "--profile": "profile",
    "--cpuid": "cpuid",
    "--kernel": "kernel",
    "--apply": "apply",
    "--revert": "revert",
    "--param": "params",
    "--cmdline": "cmdline",
    "--config": "config",
    "--bios": "bios",
    "--cpus": "cpus",
    "--sockets": "sockets",
    "--fail-alloc": "fail_alloc",
}


def check_host(config: HostConfig, file: str, where: str) -> None:
    """Resolve a host of the file as ``boot`` would, so that a bad profile, BIOS value or patch
    is reported before anything runs, under the file's field name (``host.bios.sev_asid_count``)
    rather than the command-line option the same check names."""
    try:
        resolve(config)
    except InputError as exc:
        flag, _, rest = exc.field.partition(" ")
        name = _FLAGS.get(flag)
        field = exc.field if name is None else f"{where}.{name}" + (f".{rest}" if rest else "")
        raise InputError(f"{file}: {field}", exc.problem) from None


def _model_of(op: str) -> type[_Step]:
    return next(m for m in STEP_MODELS if op in getattr(m.model_fields["op"].annotation, "__args__", ()))


def parse(data: Any, name: str = "scenario", base: Path | None = None) -> Scenario:
    """Validate a scenario document; the first problem is an :class:`InputError` naming the
    file and the field. Files the scenario names are looked for in ``base`` (default: the
    current directory)."""
    if not isinstance(data, dict):
        raise InputError(name, "a scenario is a mapping with 'host' (or 'hosts') and 'steps'")
    try:
        model = ScenarioModel.model_validate(data, context={"base": base})
    except ValidationError as exc:
        where, problem = _problem(exc.errors()[0])
        raise InputError(f"{name}: {where}" if where else name, problem) from None
    except RecursionError:
        raise InputError(name, "nested too deeply") from None
    hosts = {n: h.config_for() for n, h in (model.hosts or {"host": model.host or HostModel()}).items()}
    for host_name, config in hosts.items():
        check_host(config, name, "host" if model.hosts is None else f"hosts.{host_name}")
    first = next(iter(hosts))
    steps = tuple(
        Step(i, s.op, s.model_dump(exclude={"op", "host"}, exclude_none=True), s.host or first)
        for i, s in enumerate(model.steps)
    )
    return Scenario(name, hosts, steps)


def load(path: str) -> Scenario:
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(path, "is a directory, not a scenario file")
        with p.open("rb") as handle:  # bounded: the path may be a device or an endless file
            raw = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE:
        raise InputError(p.name, f"larger than {MAX_FILE >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(p.name, f"not UTF-8 text (byte {exc.start})") from None
    kind = "JSON" if p.suffix == ".json" else "YAML"
    if kind == "YAML" and len(raw) > MAX_YAML:
        raise InputError(
            p.name, f"larger than {MAX_YAML >> 20} MiB of YAML (JSON may have up to {MAX_FILE >> 20} MiB)"
        )
    try:
        data = json.loads(text) if kind == "JSON" else yaml.load(text, Loader=_YAML_LOADER)
    except json.JSONDecodeError as exc:
        raise InputError(p.name, f"not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(p.name, f"not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise InputError(p.name, f"not valid {kind}: nested too deeply") from None
    except ValueError as exc:  # integers longer than Python converts (int_max_str_digits)
        raise InputError(p.name, f"not valid {kind}: {exc}") from None
    if not _fits(data, MAX_NODES):
        raise InputError(p.name, f"more than {MAX_NODES:,} values once YAML aliases are expanded")
    return parse(data, p.name, p.parent)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser objected to and where, on one line: ``did not find expected key (line
    3, column 1)``; the parser's context (``while parsing a block mapping``) says less and is left
    out."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _fits(data: Any, limit: int) -> bool:
    """Whether ``data`` has at most ``limit`` values counted as validation will meet them: YAML
    aliases share one object that is validated once per reference, so a few lines of aliases can
    stand for billions of values. The walk stops as soon as the limit is passed."""
    pending = [data]
    seen = 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > limit:
            return False
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


@dataclass(frozen=True, slots=True)
class HostOverride:
    """Host options given on the ``kvmsev run`` command line, applied to every host of a scenario.

    A scalar option replaces the file's value; ``--param``, ``--config``, ``--bios`` and
    ``--fail-alloc`` are added after the file's (a later BIOS or Kconfig choice wins, as on the
    ``boot`` command line); ``--apply`` / ``--revert`` are added to the file's patches, each
    cancelling the file's opposite request for the same patch.
    """

    profile: str | None = None
    cpuid: str | None = None
    kernel: str | None = None
    apply: tuple[str, ...] = ()
    revert: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    cmdline: str | None = None
    config: tuple[str, ...] = ()
    bios: tuple[str, ...] = ()
    cpus: int | None = None
    sockets: int | None = None
    fail_alloc: tuple[str, ...] = ()
    seed: int | None = None


def override(scenario: Scenario, given: HostOverride) -> Scenario:
    """The scenario with every host changed as the command line says."""

    def changed(host: HostConfig) -> HostConfig:
        changes: dict[str, Any] = {
            name: value
            for name in ("profile", "cpuid", "kernel", "cmdline", "cpus", "sockets", "seed")
            if (value := getattr(given, name)) is not None
        }
        for name in ("params", "config", "bios", "fail_alloc"):
            if getattr(given, name):
                changes[name] = getattr(host, name) + getattr(given, name)
        if given.apply:
            changes["apply"] = tuple(p for p in host.apply if p not in given.revert) + given.apply
        if given.revert:
            changes["revert"] = tuple(p for p in host.revert if p not in given.apply) + given.revert
        return replace(host, **changes) if changes else host

    return replace(scenario, hosts={n: changed(h) for n, h in scenario.hosts.items()})


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (for editors; ``docs/scenario.schema.json``)."""
    schema = ScenarioModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kvmsev scenario"
    return schema
