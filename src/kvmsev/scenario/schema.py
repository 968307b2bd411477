"""The scenario file format (YAML or JSON), validated field by field.

```yaml
host:                 # everything `kvmsev boot` accepts, plus seed / memlock_limit / ...
  profile: lab
  kernel: v5.13
steps:
  - {op: vm_create, vm: a}
  - {op: sev_init, vm: a}
  - {op: launch_start, vm: a, policy: 0x1}
```

Any problem names the step and field (``steps[3].cpu: ...``) and is an input error (exit 2).
Values a real userspace could pass to the real ioctls (bad policies, wrong lengths, wrong order)
are not checked here: the model answers them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from kvmsev.errors import InputError
from kvmsev.host.config import HostConfig

# field kinds: "str", "int", "bool", "hex" (bytes), "data" (bytes: hex string or {pattern, len}),
# "intmax" (int or "max"), "session", "vm" (an existing VM's name)
OPS: dict[str, dict[str, tuple[str, bool]]] = {
    "vm_create": {"vm": ("str", True), "cgroup": ("str", False)},
    "sev_init": {"vm": ("vm", True)},
    "sev_es_init": {"vm": ("vm", True)},
    "launch_start": {
        "vm": ("vm", True),
        "policy": ("int", False),
        "handle": ("int", False),
        "sev_fd": ("int", False),
        "session": ("session", False),
    },
    "launch_update_data": {
        "vm": ("vm", True),
        "data": ("data", False),
        "uaddr": ("int", False),
        "len": ("int", False),
    },
    "launch_update_vmsa": {"vm": ("vm", True)},
    "launch_secret": {
        "vm": ("vm", True),
        "secret": ("data", True),
        "iv": ("hex", False),
        "flags": ("int", False),
        "mac": ("hex", False),
        "guest_uaddr": ("int", False),
        "tek": ("hex", False),
        "tik": ("hex", False),
    },
    "launch_measure": {"vm": ("vm", True), "len": ("int", False)},
    "launch_finish": {"vm": ("vm", True)},
    "guest_status": {"vm": ("vm", True)},
    "dbg_decrypt": {
        "vm": ("vm", True),
        "src_uaddr": ("int", True),
        "len": ("int", True),
        "dst_uaddr": ("int", False),
    },
    "dbg_encrypt": {"vm": ("vm", True), "data": ("data", True), "dst_uaddr": ("int", True)},
    "reg_region": {"vm": ("vm", True), "uaddr": ("int", True), "size": ("int", True)},
    "unreg_region": {"vm": ("vm", True), "uaddr": ("int", True), "size": ("int", True)},
    "mem_write": {"vm": ("vm", True), "uaddr": ("int", False), "data": ("data", True)},
    "mem_enc_op": {"vm": ("vm", True), "id": ("int", True)},
    "vcpu_create": {"vm": ("vm", True), "vmsa": ("data", False)},
    "vcpu_run": {"vm": ("vm", True), "vcpu": ("int", True), "cpu": ("int", True)},
    "vm_destroy": {"vm": ("vm", True)},
    "cpu_offline": {"cpu": ("int", True)},
    "cpu_online": {"cpu": ("int", True)},
    "cgroup_create": {"cgroup": ("str", True)},
    "cgroup_set_max": {"cgroup": ("str", True), "resource": ("str", True), "max": ("intmax", True)},
    "module_unload": {},
    "module_load": {"fail_alloc": ("str", False)},
    "fw_fault": {"cmd": ("str", True), "status": ("str", False)},
}

HOST_FIELDS: dict[str, str] = {
    "profile": "str",
    "cpuid": "str",
    "kernel": "str",
    "apply": "strs",
    "revert": "strs",
    "params": "strs",
    "cmdline": "str",
    "config": "strs",
    "bios": "strs",
    "cpus": "int",
    "fail_alloc": "strs",
    "seed": "int",
    "memlock_limit": "int",
    "cap_ipc_lock": "bool",
    "sev_vmcbs_garbage": "garbage",
}


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    host: HostConfig
    steps: tuple[Step, ...]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(where, f"expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise InputError(where, f"expected an integer, got {value!r}") from None
    return value


def _hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(where, f"expected a hex string, got {value!r}")
    text = value.removeprefix("0x").replace(" ", "")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InputError(where, f"{value!r} is not hex bytes") from None


def _data(value: Any, where: str) -> bytes:
    """Hex bytes, ``{pattern: HEX, len: N}`` (the pattern repeated to N bytes) or ``{zero: N}``."""
    if isinstance(value, dict):
        unknown = set(value) - {"pattern", "len", "zero"}
        if unknown:
            raise InputError(where, f"unknown keys {sorted(unknown)} (use pattern+len, or zero)")
        if "zero" in value:
            return bytes(_int(value["zero"], f"{where}.zero"))
        pattern = _hex(value.get("pattern"), f"{where}.pattern")
        length = _int(value.get("len"), f"{where}.len")
        if not pattern or length < 0 or length > 16 << 20:
            raise InputError(where, "pattern must be non-empty and len within 0..16 MiB")
        return (pattern * (length // len(pattern) + 1))[:length]
    return _hex(value, where)


def _session(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(where, "expected {tek: HEX, tik: HEX, valid: BOOL}")
    unknown = set(value) - {"tek", "tik", "valid"}
    if unknown:
        raise InputError(where, f"unknown keys {sorted(unknown)}")
    out: dict[str, Any] = {"valid": bool(value.get("valid", True))}
    for key in ("tek", "tik"):
        key_bytes = _hex(value.get(key, "00" * 16), f"{where}.{key}")
        if len(key_bytes) != 16:
            raise InputError(f"{where}.{key}", "must be 16 bytes")
        out[key] = key_bytes
    return out


def _step(raw: Any, index: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise InputError(where, "each step must be a mapping with an 'op'")
    op = raw.get("op")
    if op not in OPS:
        raise InputError(f"{where}.op", f"unknown op {op!r} (known: {', '.join(OPS)})")
    spec = OPS[op]
    args: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "op":
            continue
        if key not in spec:
            raise InputError(f"{where}.{key}", f"not a field of {op} (fields: {', '.join(spec) or 'none'})")
        kind = spec[key][0]
        field_where = f"{where}.{key}"
        if kind in ("str", "vm"):
            if not isinstance(value, str) or not value:
                raise InputError(field_where, f"expected a name, got {value!r}")
            args[key] = value
        elif kind == "int":
            args[key] = _int(value, field_where)
        elif kind == "hex":
            args[key] = _hex(value, field_where)
        elif kind == "data":
            args[key] = _data(value, field_where)
        elif kind == "session":
            args[key] = _session(value, field_where)
        elif kind == "intmax":
            args[key] = None if value == "max" else _int(value, field_where)
    for key, (_, required) in spec.items():
        if required and key not in args:
            raise InputError(f"{where}.{key}", f"required by {op}")
    return Step(index, op, args)


def _host(raw: Any) -> HostConfig:
    if raw is None:
        return HostConfig()
    if not isinstance(raw, dict):
        raise InputError("host", "expected a mapping")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kind = HOST_FIELDS.get(key)
        where = f"host.{key}"
        if kind is None:
            raise InputError(where, f"unknown field (known: {', '.join(HOST_FIELDS)})")
        if kind == "str":
            if not isinstance(value, str):
                raise InputError(where, f"expected a string, got {value!r}")
            kwargs[key] = value
        elif kind == "strs":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise InputError(where, "expected a string or a list of strings")
            kwargs[key] = tuple(items)
        elif kind == "int":
            kwargs[key] = _int(value, where)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise InputError(where, f"expected true or false, got {value!r}")
            kwargs[key] = value
        elif kind == "garbage":
            if not isinstance(value, dict):
                raise InputError(where, 'expected {"CPU:INDEX": VALUE}')
            entries = []
            for k, v in value.items():
                cpu, _, index = str(k).partition(":")
                entries.append((_int(cpu, where), _int(index, where), _int(v, f"{where}.{k}")))
            kwargs[key] = tuple(entries)
    return HostConfig(**kwargs)


def parse(data: Any, name: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise InputError(name, "a scenario is a mapping with 'host' and 'steps'")
    unknown = set(data) - {"host", "steps", "description"}
    if unknown:
        raise InputError(
            name, f"unknown top-level keys {sorted(unknown)} (expected host, steps, description)"
        )
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise InputError("steps", "expected a list of steps")
    return Scenario(name, _host(data.get("host")), tuple(_step(s, i) for i, s in enumerate(steps)))


def load(path: str) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError("FILE", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(p.name, f"not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse(data, p.name)


def override(
    scenario: Scenario, kernel: str | None, apply: list[str], revert: list[str], seed: int | None
) -> Scenario:
    """The scenario with its host's kernel, patches or seed changed from the command line.

    Patches named here are added to the file's own; ``--kernel`` replaces the preset.
    """
    host = scenario.host
    changes: dict[str, Any] = {}
    if kernel is not None:
        changes["kernel"] = kernel
    if apply:
        changes["apply"] = tuple(p for p in host.apply if p not in revert) + tuple(apply)
    if revert:
        changes["revert"] = tuple(p for p in host.revert if p not in apply) + tuple(revert)
    if seed is not None:
        changes["seed"] = seed
    return replace(scenario, host=replace(host, **changes)) if changes else scenario
