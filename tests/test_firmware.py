"""The firmware model on its own: platform and guest state machines, ASID table, crypto."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kvmsev.firmware import certs, crypto
from kvmsev.firmware import session as channel
from kvmsev.firmware.guest import POLICY_ES, POLICY_NODBG
from kvmsev.firmware.measurement import launch_measurement
from kvmsev.firmware.psp import PlatformState, Psp
from kvmsev.firmware.status import Status


def platform(threads: int = 0b11, max_asid: int = 4, min_sev_asid: int = 3) -> Psp:
    psp = Psp(
        present=True,
        mem_encrypt_enabled=True,
        enabled_threads=threads,
        max_asid=max_asid,
        min_sev_asid=min_sev_asid,
    )
    assert psp.init().ok
    psp.wbinvd(threads)
    assert psp.df_flush().ok
    return psp


def launched(psp: Psp, asid: int = 3, policy: int = 0) -> int:
    start = psp.launch_start(0, policy)
    assert start.ok and isinstance(start.out, int)
    assert psp.activate(start.out, asid).ok
    return start.out


def test_measurement_matches_the_published_test_vector() -> None:
    tik = bytes.fromhex("66320db73158a35a255d051758e95ed4")
    digest = hashlib.sha256(b"").digest()
    mnonce = bytes.fromhex("4fbe0bedbad6c86ae8f68971d103e554")
    expected = "6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea"
    assert launch_measurement(tik, (0, 18, 15), 0, digest, mnonce).hex() == expected


def test_aes_matches_fips_197_and_sp_800_38a() -> None:
    key = bytes(range(16))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    # CTR over a zero block with the plaintext as counter is one AES block encryption
    assert crypto.aes128_ctr(key, block, bytes(16)).hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    k = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    pt = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    assert crypto.aes128_ctr(k, iv, pt).hex() == (
        "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
    ), "SP 800-38A F.5.1, the counter carries into the next block"


def test_kdf_and_session_match_virtee_sev_vectors() -> None:
    """virtee/sev's session unit test: Z, TEK, TIK, nonce and IV all zero, policy 0."""
    assert crypto.kdf(bytes(16), b"sev-master-secret", bytes(16)).hex() == "ab4d269fcc62bedb4511d56c386ce706"
    kek, kik = channel.kek_kik(bytes(16), bytes(16))
    blob = channel.wrap_keys(kek, kik, bytes(16), bytes(16), 0, bytes(16), bytes(16))
    assert blob.wrap_tk.hex() == "2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4"
    assert blob.wrap_mac.hex() == "3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d"
    assert blob.policy_mac.hex() == "aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af"


def owner_session(psp: Psp, policy: int, signed_policy: int | None = None) -> tuple[bytes, bytes]:
    """A guest owner's DH certificate and session for the platform's PDH."""
    export = psp.pdh_cert_export().out
    assert isinstance(export, dict)
    pdh = certs.decode(export["pdh"])
    assert pdh is not None
    owner = crypto.private_key(b"owner")
    tek, tik = b"T" * 16, b"I" * 16
    blob = channel.wrap(
        owner, pdh, tek, tik, policy if signed_policy is None else signed_policy, b"n" * 16, b"v" * 16
    )
    return certs.key_cert(owner, certs.Usage.PDH).encode(), blob.encode()


def test_launch_start_unwraps_a_real_session() -> None:
    psp = platform()
    dh, blob = owner_session(psp, 0)
    start = psp.launch_start(0, 0, dh, blob)
    assert start.ok and isinstance(start.out, int)
    guest = psp.guests[start.out]
    assert (guest.tek, guest.tik) == (b"T" * 16, b"I" * 16)


def test_pdh_is_signed_by_the_pek_and_the_chain_verifies() -> None:
    psp = platform()
    export = psp.pdh_cert_export().out
    assert isinstance(export, dict)
    pdh = certs.decode(export["pdh"])
    assert pdh is not None and pdh.usage == certs.Usage.PDH and len(export["chain"]) == 3 * certs.CERT_LEN
    assert certs.chain_is_valid(pdh, export["chain"])
    forged = certs.certify(pdh, certs.Usage.PEK, crypto.private_key(b"someone else"), 0)
    assert not certs.chain_is_valid(forged, export["chain"])


def test_launch_digest_covers_every_update_in_order() -> None:
    psp = platform()
    handle = launched(psp)
    psp.memory.write(0x10000, b"A" * 32)
    psp.memory.write(0x20000, b"B" * 16)
    assert psp.launch_update_data(handle, 0x10000, 32).ok
    assert psp.launch_update_data(handle, 0x20000, 16).ok
    out = psp.launch_measure(handle, 48).out
    assert isinstance(out, bytes)
    digest = hashlib.sha256(b"A" * 32 + b"B" * 16).digest()
    expected = hmac.new(
        bytes(16), bytes([4, 0, 24, 0]) + bytes(4) + digest + out[32:], hashlib.sha256
    ).digest()
    assert out[:32] == expected, "no session: TIK is all zero"
    assert psp.memory.read(0x10000, 32) != b"A" * 32, "encrypted in place"


def test_platform_init_needs_smee_and_marks_every_asid_dirty() -> None:
    off = Psp(present=True, mem_encrypt_enabled=False, enabled_threads=1, max_asid=4, min_sev_asid=3)
    assert off.init().status is Status.HWSEV_RET_PLATFORM
    psp = Psp(present=True, mem_encrypt_enabled=True, enabled_threads=1, max_asid=4, min_sev_asid=3)
    assert psp.init().ok and psp.init().status is Status.INVALID_PLATFORM_STATE
    handle = psp.launch_start(0, 0).out
    assert isinstance(handle, int)
    assert psp.activate(handle, 3).status is Status.DFFLUSH_REQUIRED


def test_activate_checks_in_firmware_order() -> None:
    psp = platform()
    a = launched(psp, 3)
    b = psp.launch_start(0, 0).out
    assert isinstance(b, int)
    assert psp.activate(99, 0).status is Status.INVALID_GUEST, "handle before ASID"
    assert psp.activate(b, 0).status is Status.INVALID_ASID
    assert psp.activate(b, 3).status is Status.ASID_OWNED
    assert psp.activate(a, 4).status is Status.ACTIVE
    assert psp.activate(b, 1).status is Status.INVALID_ASID, "SEV guest in the ES range"
    es = psp.launch_start(0, POLICY_ES).out
    assert isinstance(es, int)
    assert psp.activate(es, 4).status is Status.INVALID_ASID


def test_deactivate_of_a_running_guest_needs_wbinvd_and_df_flush_before_reuse() -> None:
    psp = platform()
    handle = launched(psp, 3)
    assert psp.launch_measure(handle, 48).ok and psp.launch_finish(handle).ok
    assert psp.asid_state(3) == "in_use"
    assert psp.deactivate(handle).ok
    assert psp.asid_state(3) == "dirty" and psp.wbinvd_done == 0
    assert psp.decommission(handle).ok
    other = psp.launch_start(0, 0).out
    assert isinstance(other, int)
    assert psp.activate(other, 3).status is Status.DFFLUSH_REQUIRED
    assert psp.df_flush().status is Status.WBINVD_REQUIRED
    psp.wbinvd(0b01)
    assert psp.df_flush().status is Status.WBINVD_REQUIRED, "one thread is still missing"
    psp.wbinvd(0b10)
    assert psp.df_flush().ok and psp.activate(other, 3).ok


def test_a_pending_asid_goes_straight_back_to_clean() -> None:
    psp = platform()
    handle = launched(psp, 3)
    assert psp.asid_state(3) == "allocated"
    assert psp.deactivate(handle).ok
    assert psp.asid_state(3) == "clean" and psp.wbinvd_done == 0b11


def test_decommission_needs_deactivate_and_the_last_guest_returns_to_init() -> None:
    psp = platform()
    handle = launched(psp)
    states = [psp.state]
    assert psp.decommission(handle).status is Status.ACTIVE
    assert psp.deactivate(handle).ok and psp.decommission(handle).ok
    states.append(psp.state)
    assert states == [PlatformState.WORKING, PlatformState.INIT]


def test_guest_status_of_an_unknown_handle_succeeds_with_state_zero() -> None:
    psp = platform()
    result = psp.guest_status(7)
    assert result.ok and result.out == {"policy": 0, "asid": 0, "state": 0}


def test_launch_order_is_enforced() -> None:
    psp = platform()
    handle = launched(psp)
    assert psp.launch_finish(handle).status is Status.INVALID_GUEST_STATE, "MEASURE must come first"
    assert psp.launch_update_data(handle, 0x1008, 16).status is Status.INVALID_ADDRESS
    assert psp.launch_update_data(handle, 0x1000, 24).status is Status.INVALID_LEN
    short = psp.launch_measure(handle, 32)
    assert short.status is Status.INVALID_LEN and short.out == 48
    assert psp.launch_update_vmsa(handle, 0x1000, 4096).status is Status.UNSUPPORTED, "needs ES policy"
    assert psp.launch_update_vmsa(handle, 0x1000, 100).status is Status.INVALID_LEN, "length first"


def test_session_checks_apply_only_with_a_session() -> None:
    psp = platform()
    assert psp.launch_start(0, 0x40).ok, "reserved bits are not checked without a session"
    assert psp.launch_start(0, 0x40, *owner_session(psp, 0x40)).status is Status.POLICY_FAILURE
    assert psp.launch_start(0, 0x63 << 16, *owner_session(psp, 0x63 << 16)).status is Status.POLICY_FAILURE, (
        "API 99.0 > 0.24"
    )
    dh, blob = owner_session(psp, 0, signed_policy=1)
    assert psp.launch_start(0, 0, dh, blob).status is Status.BAD_MEASUREMENT, "policy MAC over another policy"
    spoiled = blob[:64] + bytes([blob[64] ^ 1]) + blob[65:]
    assert psp.launch_start(0, 0, dh, spoiled).status is Status.BAD_MEASUREMENT, "wrap MAC"
    assert psp.launch_start(0, 0, dh, blob[:64]).status is Status.INVALID_LEN
    assert psp.launch_start(0, 0, dh[:100], blob).status is Status.INVALID_LEN


def test_key_sharing_respects_noks() -> None:
    psp = platform()
    owner = psp.launch_start(0, 0x2).out
    assert isinstance(owner, int)
    assert psp.launch_start(owner, 0x2).status is Status.POLICY_FAILURE
    shared = psp.launch_start(0, 0).out
    assert psp.launch_start(shared if isinstance(shared, int) else 0, 1).status is Status.POLICY_FAILURE


def test_dbg_needs_debug_policy_and_activation() -> None:
    psp = platform()
    nodbg = launched(psp, 3, POLICY_NODBG)
    assert psp.dbg(False, nodbg, 0x1000, 0x2000, 16).status is Status.POLICY_FAILURE
    dbg = psp.launch_start(0, 0).out
    assert isinstance(dbg, int)
    assert psp.dbg(False, dbg, 0x1000, 0x2000, 16).status is Status.INACTIVE
    assert psp.dbg(False, dbg, 0x1001, 0x2000, 16).status is Status.INVALID_ADDRESS


@pytest.mark.parametrize("cmd", ["pek_gen", "pek_cert_import"])
def test_platform_key_commands_need_init(cmd: str) -> None:
    psp = platform()
    assert getattr(psp, cmd)().ok
    launched(psp)
    assert getattr(psp, cmd)().status is Status.INVALID_PLATFORM_STATE


def test_factory_reset_only_when_uninit_and_pek_import_only_once() -> None:
    psp = platform()
    assert psp.factory_reset().status is Status.INVALID_PLATFORM_STATE
    assert psp.pek_cert_import().ok
    assert psp.pek_cert_import().status is Status.ALREADY_OWNED
    assert psp.shutdown().ok and psp.factory_reset().ok


def test_without_firmware_every_command_is_enodev() -> None:
    psp = Psp(present=False, mem_encrypt_enabled=True, enabled_threads=1)
    for result in (psp.init(), psp.df_flush(), psp.launch_start(0, 0), psp.guest_status(1)):
        assert result.ret == -19 and result.status is None
