"""Counterexamples as scenario files that ``kvmsev run`` replays."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from kvmsev.check.explore import Violation
from kvmsev.host.config import HostConfig
from kvmsev.outdir import write_file


def host_section(config: HostConfig, path: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The non-default fields of ``config``, plus the garbage values the path chose."""
    default = HostConfig()
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value != getattr(default, f.name) or f.name in ("profile", "kernel"):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    garbage = {
        f"{cpu}:{index}": f"{value:#x}" for a in path if a.garbage for cpu, index, value in [a.garbage]
    }
    if garbage:
        out["sev_vmcbs_garbage"] = garbage
    out.pop("sev_vmcbs_garbage", None) if not garbage else None
    return out


def scenario(config: HostConfig, violation: Violation) -> dict[str, Any]:
    return {
        "description": f"Counterexample to {violation.invariant}: {violation.detail}",
        "host": host_section(config, violation.path),
        "steps": [a.step() for a in violation.path],
    }


def write(config: HostConfig, violation: Violation, directory: Path) -> Path:
    """``DIR/<invariant>.yaml``, replacing an earlier counterexample to the same invariant whole."""
    path = directory / f"{violation.invariant}.yaml"
    write_file(path, yaml.safe_dump(scenario(config, violation), sort_keys=False, width=100), "--out")
    return path
