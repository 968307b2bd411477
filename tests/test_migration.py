"""Live migration (SEND_* / RECEIVE_*, 5.13) between two hosts and on one, through the firmware's
transport crypto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvmsev.scenario import runner, schema

EXAMPLES = Path(__file__).parent.parent / "examples"
GUEST = 0x7F0000100000


def run(doc: dict[str, Any]) -> dict[str, Any]:
    return runner.run(schema.parse(doc))


def broken(report: dict[str, Any]) -> set[str]:
    return {v["invariant"] for v in report["invariants"]["violations"]}


def launched(host: str = "src", vm: str = "a", policy: int = 0) -> list[dict[str, Any]]:
    return [
        {"host": host, "op": "vm_create", "vm": vm},
        {"host": host, "op": "sev_init", "vm": vm},
        {"host": host, "op": "launch_start", "vm": vm, "policy": policy},
        {"host": host, "op": "launch_update_data", "vm": vm, "uaddr": GUEST, "data": "42" * 4096},
        {"host": host, "op": "launch_measure", "vm": vm},
        {"host": host, "op": "launch_finish", "vm": vm},
    ]


def sent(to: str = "dst") -> list[dict[str, Any]]:
    return [
        *launched(),
        {"host": "src", "op": "send_start", "vm": "a", "to": to},
        {"host": "src", "op": "send_update_data", "vm": "a", "uaddr": GUEST, "len": 4096},
        {"host": "src", "op": "send_finish", "vm": "a"},
    ]


def received(host: str = "dst") -> list[dict[str, Any]]:
    return [
        {"host": host, "op": "vm_create", "vm": "b"},
        {"host": host, "op": "sev_init", "vm": "b"},
        {"host": host, "op": "receive_start", "vm": "b", "stream": "a"},
    ]


def on_one_host(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in step.items() if k != "host"} for step in steps]


TWO = {"src": {"profile": "lab", "seed": 1}, "dst": {"profile": "lab", "seed": 2}}


def test_migrated_memory_decrypts_to_the_same_plaintext_on_the_target() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "migration/two-hosts.yaml")))
    steps = r["steps"]
    assert steps[18]["result"]["data"] == "5345562d6d6967726174696f6e21" * 2 + "5345562d"
    assert steps[17]["result"]["state_name"] == "RUNNING"
    assert broken(r) == set()


def test_a_tampered_packet_and_a_foreign_policy_are_refused() -> None:
    steps = runner.run(schema.load(str(EXAMPLES / "migration/two-hosts.yaml")))["steps"]
    assert steps[12]["fw_error"]["name"] == "BAD_MEASUREMENT", "the session's MAC covers another policy"
    assert steps[14]["fw_error"]["name"] == "BAD_MEASUREMENT", "the packet's MAC was tampered with"
    assert steps[15]["ret"] == 0


def test_the_source_asid_awaits_reclaim_after_the_source_is_destroyed() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "migration/two-hosts.yaml")))
    assert r["hosts"]["src"]["final"]["kvm"]["sev_reclaim_asid_bitmap"] == [3]
    assert r["hosts"]["dst"]["final"]["firmware"]["asids"] == {"3": "in_use"}


def test_a_session_wrapped_for_another_platform_does_not_open() -> None:
    hosts = {**TWO, "other": {"profile": "lab", "seed": 3}}
    r = run({"hosts": hosts, "steps": [*sent(to="dst"), *received(host="other")]})
    assert r["steps"][-1]["fw_error"]["name"] == "BAD_MEASUREMENT", "wrap MAC: another PDH"


def test_send_start_and_send_update_data_answer_length_queries() -> None:
    r = run(
        {
            "hosts": TWO,
            "steps": [
                *launched(),
                {"host": "src", "op": "send_start", "vm": "a", "to": "dst", "session_len": 0},
                {"host": "src", "op": "send_start", "vm": "a", "to": "dst"},
                {"host": "src", "op": "send_update_data", "vm": "a", "uaddr": GUEST, "len": 0},
            ],
        }
    )
    query, _, packet = r["steps"][6:]
    assert (query["errno"], query["fw_error"]["name"], query["result"]["session_len"]) == (
        "EIO",
        "INVALID_LEN",
        128,
    )
    assert (packet["errno"], packet["result"]["hdr_len"]) == ("EIO", 52)


def test_guest_data_crossing_a_page_is_einval() -> None:
    r = run(
        {
            "host": {"profile": "lab"},
            "steps": [
                *on_one_host(launched()),
                {"op": "send_start", "vm": "a"},
                {"op": "send_update_data", "vm": "a", "uaddr": GUEST + 16, "len": 4096},
            ],
        }
    )
    assert r["steps"][-1]["errno"] == "EINVAL"


def test_a_length_that_wraps_past_the_page_check_is_einval_only_from_6_3() -> None:
    """f94f053aa3a5: 0xFFFFF010 + offset 0xFF0 is 0 in 32 bits, so 6.2 passes the page check and
    fails later, allocating a transport buffer of that length (-ENOMEM)."""
    answers = {}
    for kernel in ("v6.2", "v6.3"):
        r = run(
            {
                "host": {"profile": "lab", "kernel": kernel},
                "steps": [
                    *on_one_host(launched()),
                    {"op": "send_start", "vm": "a"},
                    {"op": "send_update_data", "vm": "a", "uaddr": GUEST + 0xFF0, "len": 0xFFFFF010},
                ],
            }
        )
        last = r["steps"][-1]
        answers[kernel] = (
            last["errno"],
            [e["cmd"] for e in last["events"] if e["kind"] == "fw"],
            [e["text"] for e in last["events"] if e["kind"] == "dmesg"],
        )
    assert answers["v6.3"] == ("EINVAL", [], [])
    # kzalloc of 4 GiB: an order past the page allocator's largest, which warns once
    assert answers["v6.2"] == ("ENOMEM", [], ["WARNING: at mm/page_alloc.c __alloc_pages"])


def test_send_start_refused_by_the_fd_still_writes_back_policy_0_and_the_session_len_passed() -> None:
    """A moved context leaves the destination without /dev/sev's fd (-EBADF from
    sev_issue_cmd); sev_send_start writes back data.policy (zeroed) and data.session_len (the
    caller's) all the same."""
    r = run(
        {
            "host": {"profile": "lab", "kernel": "v6.12"},
            "steps": [
                *on_one_host(launched()),
                {"op": "vm_create", "vm": "b"},
                {"op": "move_enc_context_from", "vm": "b", "source": "a"},
                {"op": "send_start", "vm": "b", "session_len": 200},
            ],
        }
    )
    last = r["steps"][-1]
    assert (last["errno"], last["result"]) == ("EBADF", {"session_len": 200, "policy": 0})


def test_an_unpinnable_guest_page_oopses_send_update_data_in_5_13() -> None:
    """5.13 tests the error pointer from sev_pin_memory against NULL and dereferences it
    (c7a1b2b678c5 fixes that in 5.14)."""
    r = run(
        {
            "host": {"profile": "lab"},
            "steps": [
                *on_one_host(launched()),
                {"op": "send_start", "vm": "a"},
                {"op": "send_update_data", "vm": "a", "uaddr": 0x7E0000000000, "len": 16},
            ],
        }
    )
    assert r["crashed"] == "BUG: unable to handle page fault for address: fffffffffffffff4"
    assert "no_oops" in broken(r)


def test_migration_commands_are_einval_before_5_13() -> None:
    steps = run(
        {
            "host": {"profile": "lab", "kernel": "v5.12", "params": ["kvm_amd.sev=1"]},
            "steps": [
                {"op": "vm_create", "vm": "a"},
                {"op": "sev_init", "vm": "a"},
                *[{"op": "mem_enc_op", "vm": "a", "id": i} for i in (8, 9, 11, 12, 13, 15, 21)],
            ],
        }
    )["steps"]
    assert {s["errno"] for s in steps[2:]} == {"EINVAL"}


def test_receive_update_data_on_a_non_sev_vm_is_einval_the_others_enotty() -> None:
    steps = run(
        {
            "host": {"profile": "lab"},
            "steps": [
                {"op": "vm_create", "vm": "a"},
                *[{"op": "mem_enc_op", "vm": "a", "id": i} for i in (8, 9, 11, 12, 13, 15, 21)],
            ],
        }
    )["steps"]
    assert [s["errno"] for s in steps[1:]] == [
        "ENOTTY",
        "ENOTTY",
        "ENOTTY",
        "ENOTTY",
        "EINVAL",
        "ENOTTY",
        "ENOTTY",
    ]


def test_receive_start_leaks_the_context_whose_activate_failed_in_5_13() -> None:
    r = runner.run(schema.load(str(EXAMPLES / "migration/receive-start-leak.yaml")))
    last = r["steps"][-1]
    assert [e["cmd"] + ":" + e["status"] for e in last["events"] if e["kind"] == "fw"] == [
        "RECEIVE_START:SUCCESS",
        "ACTIVATE:INVALID_ASID",
    ]
    assert broken(r) == {"no_leaked_context"}
