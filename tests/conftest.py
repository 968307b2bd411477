"""Shared helpers: boot a host from keyword arguments and get the JSON report."""

from __future__ import annotations

from typing import Any

import pytest

from kvmsev.host.config import HostConfig
from kvmsev.host.report import boot_report


def boot(unload: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Boot with ``HostConfig(**kwargs)`` (tuples for the repeatable options) and report."""
    for key in ("apply", "revert", "params", "config", "bios", "fail_alloc"):
        if key in kwargs and isinstance(kwargs[key], list | str):
            value = kwargs[key]
            kwargs[key] = (value,) if isinstance(value, str) else tuple(value)
    return boot_report(HostConfig(**kwargs), unload=unload)


@pytest.fixture
def booted() -> Any:
    return boot
