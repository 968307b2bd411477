"""KVM_SEV_GET_ATTESTATION_REPORT: the length query, the report's layout and its PEK signature."""

from __future__ import annotations

import hashlib
from typing import Any

from kvmsev.firmware import certs, crypto
from kvmsev.host import launch_ops
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.scenario import runner, schema

NONCE = "000102030405060708090a0b0c0d0e0f"


def launch(extra: list[dict[str, Any]], measure: bool = True) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"op": "vm_create", "vm": "g"},
        {"op": "sev_init", "vm": "g"},
        {"op": "launch_start", "vm": "g", "policy": 0x1},
        {"op": "launch_update_data", "vm": "g", "data": "ab" * 64},
    ]
    if measure:
        steps.append({"op": "launch_measure", "vm": "g"})
    return steps + extra


def signed_report(host: Host) -> bytes:
    """Launch guest g on ``host`` and return the report the firmware signed for NONCE."""
    scenario = schema.parse(
        {
            "host": {"profile": "lab"},
            "steps": launch([{"op": "attestation_report", "vm": "g", "mnonce": NONCE}]),
        }
    )
    for step in scenario.steps:
        outcome = runner.execute(host, step)
    assert outcome.ret == 0
    return bytes.fromhex(str(outcome.result["report"]))


def booted(seed: int = 0) -> Host:
    host = Host.boot(HostConfig(profile="lab", seed=seed))
    host.load_kvm_amd()
    return host


def test_a_zero_length_asks_for_the_report_size() -> None:
    steps = runner.run(
        schema.parse(
            {"host": {"profile": "lab"}, "steps": launch([{"op": "attestation_report", "vm": "g", "len": 0}])}
        )
    )["steps"]
    query = steps[-1]
    assert (query["errno"], query["fw_error"]["name"], query["result"]) == (
        "EIO",
        "INVALID_LEN",
        {"len": 0xD0},
    )


def test_the_report_carries_nonce_digest_policy_and_a_pek_signature() -> None:
    host = booted()
    report = signed_report(host)
    assert len(report) == 0xD0
    assert report[:16].hex() == NONCE
    assert report[16:48] == hashlib.sha256(b"\xab" * 64).digest(), "the launch digest"
    assert int.from_bytes(report[48:52], "little") == 0x1
    assert int.from_bytes(report[52:56], "little") == certs.Usage.PEK
    export = launch_ops.pdh_cert_export(host).out
    assert isinstance(export, dict)
    pek = certs.decode(export["chain"][: certs.CERT_LEN])
    assert pek is not None and pek.usage == certs.Usage.PEK
    key = pek.public_key()
    assert key is not None
    r, s = int.from_bytes(report[64:136], "little"), int.from_bytes(report[136:208], "little")
    assert crypto.verify(key, report[:52], r, s)
    assert not crypto.verify(key, bytes(52), r, s)


def test_no_report_before_launch_measure() -> None:
    steps = runner.run(
        schema.parse(
            {
                "host": {"profile": "lab"},
                "steps": launch([{"op": "attestation_report", "vm": "g"}], measure=False),
            }
        )
    )["steps"]
    assert steps[-1]["fw_error"]["name"] == "INVALID_GUEST_STATE"


def test_the_owner_verifies_a_genuine_report_against_the_exported_chain() -> None:
    steps = runner.run(
        schema.parse(
            {
                "host": {"profile": "lab"},
                "steps": launch([{"op": "attestation_report", "vm": "g", "mnonce": NONCE}]),
            }
        )
    )["steps"]
    result = steps[-1]["result"]
    assert result["signature_valid"] and result["chain_valid"] and result["mnonce_matches"]
    assert result["digest"] == hashlib.sha256(b"\xab" * 64).hexdigest()
    assert result["report_policy"] == 0x1


def test_the_owner_rejects_a_report_altered_after_signing() -> None:
    host = booted()
    report = bytearray(signed_report(host))
    assert launch_ops.check_report(host, bytes(report), bytes.fromhex(NONCE))["signature_valid"]
    report[20] ^= 1  # one bit of the launch digest
    assert not launch_ops.check_report(host, bytes(report), bytes.fromhex(NONCE))["signature_valid"]
    assert not launch_ops.check_report(host, bytes(report), bytes(16))["mnonce_matches"]


def test_a_report_from_another_platform_fails_this_platforms_pek() -> None:
    other = booted(seed=99)
    report = signed_report(other)
    assert launch_ops.check_report(other, report, bytes.fromhex(NONCE))["signature_valid"]
    assert not launch_ops.check_report(booted(), report, bytes.fromhex(NONCE))["signature_valid"]
