"""Migration and mirror entry points as VMMs use them: the SEND side on one host, the RECEIVE side
on another (or the same), and KVM_CAP_VM_COPY_ENC_CONTEXT_FROM.

What crosses between the hosts is what QEMU's migration stream carries: the target's PDH
certificate and chain go to the source's SEND_START; the source's PDH certificate and the
session blob go to the target's RECEIVE_START; each SEND_UPDATE_DATA packet (header and
transport data) goes to a RECEIVE_UPDATE_DATA. A :class:`Stream` holds them. The AMD part of the
certificate chain (ASK, ARK) is not modeled; a placeholder of its size is passed.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.host.host import Host
from kvmsev.host.launch_ops import pdh_cert_export
from kvmsev.host.ops import Outcome, sev_cmd, vm_of, write_user
from kvmsev.host.stream import Packet, Stream
from kvmsev.kvm.behaviour import MoveEncContext
from kvmsev.kvm.mirror import svm_vm_copy_asid_from
from kvmsev.kvm.move import sev_vm_move_enc_context_from
from kvmsev.kvm.sev_cmd import SevCmd

_ENOENT = -int(Errno.ENOENT)
#: stands for the ASK and ARK certificates (AMD's RSA-4096 format, not modeled)
AMD_CERTS_PLACEHOLDER = bytes(0x880)


def send_start(source: Host, vm_name: str, target: Host, stream: Stream, session_len: int = 128) -> Outcome:
    """SEND_START with the target platform's PDH certificate and chain; ``session_len`` 0 is the
    length query. On success the stream gets the session, the policy and the source's PDH."""
    vm = vm_of(source, vm_name)
    if vm is None:
        return Outcome(_ENOENT)
    export = pdh_cert_export(target)
    if not export.ok:
        return Outcome(export.ret, export.code, {"pdh_cert_export": export.status and export.status.name})
    assert isinstance(export.out, dict)
    pdh, chain = export.out["pdh"], export.out["chain"]
    assert isinstance(pdh, bytes) and isinstance(chain, bytes)
    params = {
        "pdh_cert_uaddr": write_user(source, vm_name, None, pdh),
        "pdh_cert_len": len(pdh),
        "plat_certs_uaddr": write_user(source, vm_name, None, chain),
        "plat_certs_len": len(chain),
        "amd_certs_uaddr": write_user(source, vm_name, None, AMD_CERTS_PLACEHOLDER),
        "amd_certs_len": len(AMD_CERTS_PLACEHOLDER),
        "session_uaddr": vm.memory.buffer("session", max(session_len, 1)),
        "session_len": session_len,
    }
    outcome = sev_cmd(source, vm_name, SevCmd.SEND_START, params)
    session = outcome.result.pop("session", None)
    if outcome.ret == 0 and isinstance(session, str):
        own = pdh_cert_export(source)
        assert isinstance(own.out, dict)
        own_pdh = own.out["pdh"]
        assert isinstance(own_pdh, bytes)
        stream.source_pdh, stream.session = own_pdh, bytes.fromhex(session)
        policy = outcome.result.get("policy", 0)
        assert isinstance(policy, int)
        stream.policy = policy
        stream.packets.clear()
        stream.received = 0
    return outcome


def send_update_data(host: Host, vm_name: str, stream: Stream, guest_uaddr: int, length: int) -> Outcome:
    """SEND_UPDATE_DATA of ``length`` bytes of guest memory at ``guest_uaddr`` (0: the length
    query); the packet joins the stream."""
    vm = vm_of(host, vm_name)
    if vm is None:
        return Outcome(_ENOENT)
    query = length == 0
    hdr_len, trans_len = (0, 0) if query else (52, length)
    params = {
        "hdr_uaddr": vm.memory.buffer("packet-header", 52),
        "hdr_len": hdr_len,
        "guest_uaddr": guest_uaddr,
        "guest_len": length,
        "trans_uaddr": vm.memory.buffer("packet-data", max(length, 1)),
        "trans_len": trans_len,
    }
    outcome = sev_cmd(host, vm_name, SevCmd.SEND_UPDATE_DATA, params)
    header, trans = outcome.result.pop("header", None), outcome.result.pop("trans", None)
    if outcome.ret == 0 and isinstance(header, str) and isinstance(trans, str):
        stream.packets.append(Packet(bytes.fromhex(header), bytes.fromhex(trans), guest_uaddr, length))
        outcome.result["packet"] = len(stream.packets) - 1
    return outcome


def receive_start(host: Host, vm_name: str, stream: Stream, policy: int | None, handle: int = 0) -> Outcome:
    """RECEIVE_START with the source's PDH certificate and the stream's session."""
    if vm_of(host, vm_name) is None:
        return Outcome(_ENOENT)
    params = {
        "handle": handle,
        "policy": stream.policy if policy is None else policy,
        "pdh_uaddr": write_user(host, vm_name, None, stream.source_pdh or bytes(1)),
        "pdh_len": len(stream.source_pdh),
        "session_uaddr": write_user(host, vm_name, None, stream.session or bytes(1)),
        "session_len": len(stream.session),
    }
    return sev_cmd(host, vm_name, SevCmd.RECEIVE_START, params)


def receive_update_data(
    host: Host, vm_name: str, stream: Stream, index: int, guest_uaddr: int | None, tamper: str | None
) -> Outcome:
    """RECEIVE_UPDATE_DATA of packet ``index`` into ``guest_uaddr`` (default: where the source had
    it); ``tamper`` flips a bit of the header's MAC or of the transport data on the way."""
    vm = vm_of(host, vm_name)
    if vm is None:
        return Outcome(_ENOENT)
    packet = stream.packets[index]
    header, trans = bytearray(packet.header), bytearray(packet.trans)
    if tamper == "header":
        header[20] ^= 1
    elif tamper == "trans":
        trans[0] ^= 1
    uaddr = packet.guest_uaddr if guest_uaddr is None else guest_uaddr
    vm.memory.ensure(uaddr, packet.guest_len)
    params = {
        "hdr_uaddr": write_user(host, vm_name, None, bytes(header)),
        "hdr_len": len(header),
        "guest_uaddr": uaddr,
        "guest_len": packet.guest_len,
        "trans_uaddr": write_user(host, vm_name, None, bytes(trans)),
        "trans_len": len(trans),
    }
    outcome = sev_cmd(host, vm_name, SevCmd.RECEIVE_UPDATE_DATA, params)
    outcome.result = {"packet": index, "guest_uaddr": uaddr}
    return outcome


def copy_enc_context_from(host: Host, target_name: str, source_name: str, flags: int = 0) -> Outcome:
    """KVM_ENABLE_CAP(KVM_CAP_VM_COPY_ENC_CONTEXT_FROM) on the target with the source VM's fd.
    Without the capability (5.12) the generic handler answers -EINVAL."""
    target = vm_of(host, target_name)
    if host.kvm is None or target is None:
        return Outcome(_ENOENT)
    if not host.env.behaviour.mirror_vms:
        return Outcome(-int(Errno.EINVAL))
    source = host.kvm.vms.get(source_name)
    ret = svm_vm_copy_asid_from(host.env.behaviour, host.kvm, target, source, flags)
    return Outcome(ret, 0, {"asid": target.asid} if ret == 0 else {})


def move_enc_context_from(host: Host, target_name: str, source_name: str, flags: int = 0) -> Outcome:
    """KVM_ENABLE_CAP(KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM) on the destination with the source VM's
    fd (:mod:`kvmsev.kvm.move`). Before 5.16 the generic handler answers -EINVAL."""
    target = vm_of(host, target_name)
    if host.kvm is None or target is None:
        return Outcome(_ENOENT)
    if host.env.behaviour.move_enc_context is MoveEncContext.ABSENT:
        return Outcome(-int(Errno.EINVAL))
    source = host.kvm.vms.get(source_name)
    ret = sev_vm_move_enc_context_from(host.env, host.kvm, target, source, flags)
    return Outcome(ret, 0, {"asid": target.asid} if ret == 0 else {})
