"""Whatever a user hands ``kvmsev`` -- a scenario file, a command line, a recorded host -- it
answers (exit 0 or 1) or refuses in one ``kvmsev: error:`` line (exit 2): never a traceback, a
hang or exhausted memory.

A bounded sample of each input family from :mod:`tests.fuzzing.strategies`, run in-process by
:mod:`tests.fuzzing.harness` (20 s and 2 GiB per input); ``make fuzz`` runs the same families for
as long as asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import strategies
from tests.fuzzing.harness import problems, report, run_case
from tests.fuzzing.strategies import Case

SAMPLE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The scratch directory every input runs in (rebuilt by the harness whenever a command
    changed it)."""
    yield tmp_path_factory.mktemp("robustness") / "work"


def keeps_the_contract(case: Case, workdir: Path) -> None:
    outcome = run_case(case, workdir)
    found = problems(outcome)
    assert found == [], report(case, outcome, found)


@SAMPLE
@given(case=strategies.scenario_files())
def test_any_scenario_shaped_file_gets_an_answer_or_a_one_line_error(workdir: Path, case: Case) -> None:
    keeps_the_contract(case, workdir)


@SAMPLE
@given(case=strategies.malformed_scenario_files())
def test_any_malformed_scenario_file_is_refused_in_one_line(workdir: Path, case: Case) -> None:
    keeps_the_contract(case, workdir)


@SAMPLE
@given(case=strategies.command_lines())
def test_any_command_line_gets_an_answer_or_a_one_line_error(workdir: Path, case: Case) -> None:
    keeps_the_contract(case, workdir)


@SAMPLE
@given(case=strategies.recorded_hosts())
def test_any_corrupted_recorded_host_is_probed_or_refused_in_one_line(workdir: Path, case: Case) -> None:
    keeps_the_contract(case, workdir)
