"""Host physical memory as the model holds it: frames made on first write, writes counted against
a budget only where one is set."""

from __future__ import annotations

import pytest

from kvmsev.hw.memory import PAGE_SIZE, PhysicalMemory, WriteBudget, WriteBudgetExceeded


def test_reading_memory_never_written_gives_zeros_and_makes_no_frames() -> None:
    memory = PhysicalMemory()
    assert memory.read(PAGE_SIZE - 8, 3 * PAGE_SIZE) == bytes(3 * PAGE_SIZE)
    assert memory.frames == {}
    memory.write(PAGE_SIZE + 4, b"\x5a\xa5")
    assert memory.read(PAGE_SIZE, 8) == b"\0\0\0\0\x5a\xa5\0\0"
    assert sorted(memory.frames) == [1]


def test_a_write_past_the_budget_is_refused_whole_and_changes_nothing() -> None:
    memory = PhysicalMemory(budget=WriteBudget(2 * PAGE_SIZE))
    memory.write(0, bytes(PAGE_SIZE))
    with pytest.raises(WriteBudgetExceeded):
        memory.write(PAGE_SIZE, b"\1" * (PAGE_SIZE + 1))
    assert memory.budget is not None
    assert (memory.budget.used, sorted(memory.frames)) == (PAGE_SIZE, [0])
    memory.write(PAGE_SIZE, b"\1" * PAGE_SIZE)
    assert memory.budget.used == 2 * PAGE_SIZE


def test_memories_sharing_a_budget_count_against_it_together() -> None:
    budget = WriteBudget(3 * PAGE_SIZE)
    first, second = PhysicalMemory(budget=budget), PhysicalMemory(budget=budget)
    first.write(0, bytes(2 * PAGE_SIZE))
    with pytest.raises(WriteBudgetExceeded):
        second.write(0, bytes(2 * PAGE_SIZE))
    second.write(0, bytes(PAGE_SIZE))
    assert budget.used == 3 * PAGE_SIZE
