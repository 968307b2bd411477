"""A Hypothesis state machine over the same entry points as the explorer, with the invariants as
its invariant (v5.13 with the later fixes of what the checker finds in it, where they should hold:
only vCPUs run after LAUNCH_FINISH, since finding T1 needs an early run)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kvmsev.check.actions import Bounds, apply, enumerate_actions
from kvmsev.check.explore import boot
from kvmsev.check.invariants import violations
from kvmsev.host.config import HostConfig
from tests.test_invariants import assert_sev_index_agrees

CONFIG = HostConfig(
    profile="lab",
    kernel="v5.13",
    apply=(
        "off-by-one-fix",
        "last-vmentry-cpu-minus-one",
        "receive-start-decommission",
        "mirror-copies-es",
        "mirror-allow-list",
        "mirror-no-vcpus",
    ),
    bios=("sev_asid_count=3",),
)
BOUNDS = Bounds(vms=2, vcpus=2, early_runs=False)


class SevHost(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.host = boot(CONFIG)

    @precondition(lambda self: bool(enumerate_actions(self.host, BOUNDS)))
    @rule(choice=st.integers(min_value=0, max_value=10_000))
    def move(self, choice: int) -> None:
        moves = enumerate_actions(self.host, BOUNDS)
        apply(self.host, moves[choice % len(moves)])

    @invariant()
    def isolation_and_accounting_hold(self) -> None:
        broken = violations(self.host)
        broken.pop("teardown_clean", None)  # an offline CPU makes the unload flush fail (a host hazard)
        assert broken == {}
        assert_sev_index_agrees(self.host)


SevHost.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestSevHost = SevHost.TestCase
