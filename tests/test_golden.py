"""Golden boot reports for every built-in profile on the series' two presets, the long-term
kernels and the newest preset (default configuration, loaded and unloaded). A change to any of
them is a change in what the model claims a real host does, so it must be deliberate:
regenerate with ``KVMSEV_REGEN_GOLDEN=1 pytest tests/test_golden.py`` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kvmsev.hw.profiles import builtin_names
from kvmsev.kvm.kernels import NEWEST
from tests.conftest import boot

GOLDEN = Path(__file__).parent / "golden"
KERNELS = ("v5.12", "v5.13", "v5.15", "v6.1", "v6.6", "v6.12", f"v{NEWEST}")
CASES = [(p, k) for p in builtin_names() for k in KERNELS]


@pytest.mark.parametrize(("profile", "kernel"), CASES)
def test_boot_report_matches_golden(profile: str, kernel: str) -> None:
    report = boot(unload=True, profile=profile, kernel=kernel)
    path = GOLDEN / f"{profile}@{kernel}.json"
    text = json.dumps(report, indent=1, sort_keys=True) + "\n"
    if os.environ.get("KVMSEV_REGEN_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing {path.name}; regenerate with KVMSEV_REGEN_GOLDEN=1"
    assert json.loads(path.read_text()) == report


def test_every_golden_file_belongs_to_a_case() -> None:
    expected = {f"{p}@{k}.json" for p, k in CASES}
    assert {p.name for p in GOLDEN.glob("*.json")} == expected
