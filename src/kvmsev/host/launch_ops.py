"""Launch-time entry points as a VMM and a guest owner use them: LAUNCH_START with a session the
guest owner builds against the platform's PDH, LAUNCH_MEASURE, LAUNCH_SECRET packets, the
attestation report, DBG_DECRYPT / DBG_ENCRYPT, and PDH_CERT_EXPORT through ``/dev/sev``.

The guest owner's side is what sevctl and virtee/sev do: an ECDH P-384 key of its own, the
session blob wrapping its TEK and TIK for the platform's PDH (:mod:`kvmsev.firmware.session`),
secret packets encrypted under the TEK and MACed under the TIK. Its key and the blob's nonce and
IV are derived from the host's seed and the VM's name, so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from kvmsev.errors import Errno
from kvmsev.firmware import certs, crypto
from kvmsev.firmware import session as channel
from kvmsev.firmware.launch import ATTESTATION_REPORT_LEN
from kvmsev.firmware.result import CommandResult
from kvmsev.host import vcpu_reset
from kvmsev.host.host import Host
from kvmsev.host.ops import Outcome, sev_cmd, vcpu_create, vm_of, write_user
from kvmsev.kvm.sev_cmd import SevCmd

_ENOENT = -int(Errno.ENOENT)
#: the ways a scenario can spoil a session, to see the firmware refuse it
TAMPER = ("wrap_mac", "policy_mac", "wrap_tk", "certificate", "session_len")


@dataclass(frozen=True, slots=True)
class OwnerSession:
    """A guest owner's launch session: the transport keys it chooses, the policy it signs (None:
    the launch policy), and how the scenario spoils it (None: not at all)."""

    tek: bytes = bytes(16)
    tik: bytes = bytes(16)
    policy: int | None = None
    tamper: str | None = None


def pdh_cert_export(host: Host) -> CommandResult:
    """``SEV_PDH_CERT_EXPORT`` on /dev/sev: the platform's PDH certificate and its chain."""
    return host.env.psp.pdh_cert_export()


def owner_key(host: Host, vm_name: str) -> ec.EllipticCurvePrivateKey:
    return crypto.private_key(f"owner:{host.config.source.seed}:{vm_name}".encode())


def build_session(
    host: Host, vm_name: str, pdh: bytes, owner: OwnerSession, policy: int
) -> tuple[bytes, bytes]:
    """(DH certificate, session blob) as the guest owner sends them, spoiled as asked."""
    key = owner_key(host, vm_name)
    cert = certs.key_cert(key, certs.Usage.PDH)
    target = certs.decode(pdh)
    assert target is not None
    seed = f"session:{host.config.source.seed}:{vm_name}".encode()
    nonce, iv = crypto.kdf(seed, b"nonce"), crypto.kdf(seed, b"iv")
    signed_policy = policy if owner.policy is None else owner.policy
    blob = bytearray(channel.wrap(key, target, owner.tek, owner.tik, signed_policy, nonce, iv).encode())
    spoil = {"wrap_tk": 16, "wrap_mac": 64, "policy_mac": 96}
    if owner.tamper in spoil:
        blob[spoil[owner.tamper]] ^= 1
    if owner.tamper == "certificate":
        cert = certs.SevCert(certs.Usage.PEK, cert.algo, cert.x, cert.y)
    session = bytes(blob[:64]) if owner.tamper == "session_len" else bytes(blob)
    return cert.encode(), session


def launch_start(
    host: Host,
    vm_name: str,
    policy: int,
    handle: int = 0,
    owner: OwnerSession | None = None,
    sev_fd: int | None = None,
) -> Outcome:
    """LAUNCH_START; with a guest owner's session, its DH certificate and session blob are passed
    the way QEMU passes them (``dh-cert-file``, ``session-file``)."""
    vm = vm_of(host, vm_name)
    if vm is None:
        return Outcome(_ENOENT)
    params: dict[str, object] = {"policy": policy, "handle": handle}
    if owner is not None:
        export = pdh_cert_export(host)
        if not export.ok:
            return Outcome(export.ret, export.code, {"pdh_cert_export": export.status and export.status.name})
        assert isinstance(export.out, dict)
        pdh = export.out["pdh"]
        assert isinstance(pdh, bytes)
        dh_cert, session = build_session(host, vm_name, pdh, owner, policy)
        params.update(
            dh_uaddr=write_user(host, vm_name, None, dh_cert),
            dh_len=len(dh_cert),
            session_uaddr=write_user(host, vm_name, None, session),
            session_len=len(session),
        )
        vm.owner_keys = (owner.tek, owner.tik)
    return sev_cmd(host, vm_name, SevCmd.LAUNCH_START, params, sev_fd)


def vcpu_create_at_reset(host: Host, vm_name: str, vcpu_sig: int, ap_reset: int) -> Outcome:
    """KVM_CREATE_VCPU for a vCPU QEMU has reset: its VMSA is the reset state of
    :mod:`kvmsev.host.vcpu_reset` -- the BSP's for the VM's first vCPU (QEMU's cpu_index 0), an
    AP's starting at ``ap_reset`` (the firmware's SEV-ES reset block) for every later one.

    KVM copies the registers into the VMSA at LAUNCH_UPDATE_VMSA (``sev_es_sync_vmsa``); the
    model takes the page as the vCPU is created, which gives the same bytes as long as nothing
    changes the registers in between, as nothing does in QEMU. The kernels modeled have only
    KVM_SEV_ES_INIT, so the page carries no FPU state.
    """
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    start = vcpu_reset.BSP_RESET_ADDR if not vm.vcpus else ap_reset
    return vcpu_create(host, vm_name, vcpu_reset.reset_vmsa(vcpu_sig, start))


def launch_measure(host: Host, vm_name: str, length: int) -> Outcome:
    vm = vm_of(host, vm_name)
    uaddr = vm.memory.buffer("measure", length) if vm is not None and length else 0
    return sev_cmd(host, vm_name, SevCmd.LAUNCH_MEASURE, {"uaddr": uaddr, "len": length})


def launch_secret(
    host: Host,
    vm_name: str,
    secret: bytes,
    iv: bytes,
    flags: int,
    mac: bytes | None,
    guest_uaddr: int | None,
    keys: tuple[bytes, bytes] | None,
) -> Outcome:
    """Build the secret packet as a guest owner would (AES-128-CTR under the TEK, header MAC
    with the TIK over the launch measurement) and issue LAUNCH_SECRET.

    ``keys`` (TEK, TIK) default to those of the VM's launch session (zero without one); ``mac``
    overrides the computed MAC (to model a tampered packet).
    """
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    tek, tik = keys if keys is not None else vm.owner_keys
    guest = host.env.psp.guests.get(vm.handle)
    measurement = guest.measure[:32] if guest is not None and guest.measure is not None else bytes(32)
    header, trans = channel.seal(tek, tik, channel.CONTEXT_SECRET, iv, secret, measurement, flags)
    if mac is not None:
        header = header[:20] + mac
    if guest_uaddr is None:
        guest_uaddr = vm.memory.map(max(len(secret), 1))
    params = {
        "guest_uaddr": guest_uaddr,
        "guest_len": len(secret),
        "trans_uaddr": write_user(host, vm_name, None, trans),
        "trans_len": len(trans),
        "hdr_uaddr": write_user(host, vm_name, None, header),
        "hdr_len": len(header),
    }
    outcome = sev_cmd(host, vm_name, SevCmd.LAUNCH_SECRET, params)
    outcome.result = {"guest_uaddr": guest_uaddr}
    return outcome


def attestation_report(host: Host, vm_name: str, mnonce: bytes, length: int) -> Outcome:
    """KVM_SEV_GET_ATTESTATION_REPORT into a buffer of ``length`` bytes (0: the size query), then
    the guest owner's check of what came back (:func:`check_report`)."""
    vm = vm_of(host, vm_name)
    uaddr = vm.memory.buffer("attestation", length) if vm is not None and length else 0
    outcome = sev_cmd(
        host, vm_name, SevCmd.GET_ATTESTATION_REPORT, {"uaddr": uaddr, "len": length, "mnonce": mnonce}
    )
    if outcome.ret == 0 and vm is not None and length >= ATTESTATION_REPORT_LEN:
        outcome.result.update(check_report(host, vm.memory.read(uaddr, ATTESTATION_REPORT_LEN), mnonce))
    return outcome


def check_report(host: Host, report: bytes, mnonce: bytes) -> dict[str, object]:
    """What a guest owner reads from an SEV attestation report (SEV API §6.8, ATTESTATION): the
    nonce it sent, the launch digest, the policy, and whether the signature verifies with the PEK
    of the platform's exported chain (PDH_CERT_EXPORT's PEK || OCA || CEK, the PEK checked
    against the OCA and CEK; the AMD ASK/ARK above the CEK is not modeled)."""
    export = pdh_cert_export(host).out
    pdh_bytes, chain = (export["pdh"], export["chain"]) if isinstance(export, dict) else (b"", b"")
    pdh = certs.decode(pdh_bytes)
    pek = certs.decode(chain[: certs.CERT_LEN])
    key = pek.public_key() if pek is not None else None
    signed = report[:0x34]
    r = int.from_bytes(report[0x40:0x88], "little")
    s = int.from_bytes(report[0x88:0xD0], "little")
    return {
        "mnonce_matches": report[:16] == mnonce,
        "digest": report[16:48].hex(),
        "report_policy": int.from_bytes(report[48:52], "little"),
        "chain_valid": pdh is not None and certs.chain_is_valid(pdh, chain),
        "signature_valid": key is not None and crypto.verify(key, signed, r, s),
    }


def dbg_decrypt(host: Host, vm_name: str, src: int, length: int, dst: int | None) -> Outcome:
    """DBG_DECRYPT into ``dst``, or into a buffer the VMM maps, whose plaintext the result then
    carries (at most 16 MiB, as the scenario schema holds ``len`` there); a destination the
    scenario named is left in memory for later steps, not copied into the report."""
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    mapped = dst is None
    if dst is None:
        dst = vm.memory.map(max(length, 1))
    outcome = sev_cmd(host, vm_name, SevCmd.DBG_DECRYPT, {"src_uaddr": src, "dst_uaddr": dst, "len": length})
    if outcome.ret == 0:
        outcome.result = {"dst_uaddr": dst}
        if mapped:
            outcome.result["data"] = vm.memory.read(dst, length).hex()
    return outcome


def dbg_encrypt(host: Host, vm_name: str, data: bytes, dst: int) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    src = write_user(host, vm_name, None, data)
    return sev_cmd(host, vm_name, SevCmd.DBG_ENCRYPT, {"src_uaddr": src, "dst_uaddr": dst, "len": len(data)})
