"""Host physical memory as the model holds it: frames made on first write, writes counted against
a budget only where one is set."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmsev.hw.memory import PAGE_SIZE, PhysicalMemory, WriteBudget, WriteBudgetExceeded
from kvmsev.kernel.usermem import USER_BASE, AddressSpace


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


def test_a_read_the_budget_could_not_write_back_is_refused_before_its_bytes_are_gathered() -> None:
    memory = PhysicalMemory(budget=WriteBudget(2 * PAGE_SIZE))
    memory.write(0, bytes(PAGE_SIZE))
    assert memory.read(0, PAGE_SIZE) == bytes(PAGE_SIZE)
    with pytest.raises(WriteBudgetExceeded):
        memory.read(0, 1 << 40)
    with pytest.raises(WriteBudgetExceeded):
        AddressSpace(memory).read(USER_BASE, PAGE_SIZE + 1)
    assert memory.budget is not None and memory.budget.used == PAGE_SIZE


pages = st.integers(min_value=0, max_value=24)


@settings(max_examples=150, deadline=None)
@given(
    layout=st.lists(st.tuples(pages, st.integers(min_value=1, max_value=6), st.booleans()), max_size=6),
    start=pages,
    offset=st.integers(min_value=0, max_value=PAGE_SIZE - 1),
    npages=st.integers(min_value=0, max_value=30),
)
def test_pinning_and_mapped_checks_walk_mappings_as_a_page_by_page_walk_would(
    layout: list[tuple[int, int, bool]], start: int, offset: int, npages: int
) -> None:
    """Mappings made with ``map`` (a gap frame after each) and ``ensure`` (abutting what is
    there): pinning and the mapped check go a mapping at a time, and must agree with asking
    every page."""
    space = AddressSpace(PhysicalMemory())
    for page, count, fill in layout:
        at = USER_BASE + page * PAGE_SIZE
        if fill:
            space.ensure(at, count * PAGE_SIZE)
        elif all(space.translate(at + i * PAGE_SIZE) is None for i in range(count)):
            space.map(count * PAGE_SIZE, at=at)
    uaddr = USER_BASE + start * PAGE_SIZE + offset
    base = uaddr & ~(PAGE_SIZE - 1)
    walked: list[int] = []
    for i in range(npages):
        pfn = space.translate(base + i * PAGE_SIZE)
        if pfn is None:
            break
        walked.append(pfn)
    assert space.pin(uaddr, npages) == walked
    assert space.pinnable(uaddr, npages) == len(walked)
    length = npages * PAGE_SIZE - offset
    every = all(space.translate(p) is not None for p in range(base, uaddr + max(length, 0), PAGE_SIZE))
    assert space.mapped(uaddr, max(length, 0)) == every


def test_copy_to_user_writes_up_to_the_first_unmapped_page_and_reports_the_rest() -> None:
    space = AddressSpace(PhysicalMemory())
    start = space.map(2 * PAGE_SIZE)
    tail = start + 2 * PAGE_SIZE - 20  # 20 bytes before the mapping ends (the next page is a gap)
    assert space.copy_to_user(tail, bytes(range(52))) == 32
    assert space.read(tail, 20) == bytes(range(20))
    assert space.copy_to_user(start, b"\x11" * 64) == 0
    assert space.copy_to_user(start + 3 * PAGE_SIZE, b"\x22" * 8) == 8, "nothing mapped there"
    assert space.read(start, 4) == b"\x11" * 4
