"""Launch and attestation commands of the SEV firmware (SEV API §6; firmware reference §2.1,
§5): LAUNCH_START, LAUNCH_UPDATE_DATA / VMSA, LAUNCH_MEASURE, LAUNCH_SECRET, LAUNCH_FINISH,
ATTESTATION. Also the session and context setup RECEIVE_START shares with LAUNCH_START.

Mixed into :class:`~kvmsev.firmware.psp.Psp`, whose state every method works on.
"""

from __future__ import annotations

import hmac

from kvmsev.firmware import certs, crypto
from kvmsev.firmware import session as channel
from kvmsev.firmware.guest import MAX_TRANSPORT, Activation, GuestState
from kvmsev.firmware.measurement import MEASUREMENT_LEN, launch_measurement
from kvmsev.firmware.platform import PspCore
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.result import result as _r
from kvmsev.firmware.status import Command, PlatformState, Status
from kvmsev.hw.memory import transform

ATTESTATION_REPORT_LEN = 0xD0
#: the part of the report the PEK signs: mnonce, launch digest, policy
ATTESTATION_SIGNED_LEN = 0x34


class LaunchCommands(PspCore):
    __slots__ = ()

    # -- launch -----------------------------------------------------------------------------------
    def launch_start(
        self, handle: int, policy: int, dh_cert: bytes | None = None, session: bytes | None = None
    ) -> CommandResult:
        """LAUNCH_START (§2.1): on success ``out`` is the new handle.

        Without a DH certificate (KVM passes none when ``dh_uaddr`` is 0) there is no session: TEK
        and TIK stay all zero and the policy is not checked (FW 1.55). ``session`` None stands for
        a zero address and length.
        """
        cmd = Command.LAUNCH_START
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is PlatformState.UNINIT:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        tek = tik = bytes(16)
        if dh_cert is not None:
            keys = self.open_channel(cmd, policy, dh_cert, session or b"")
            if isinstance(keys, CommandResult):
                return keys
            tek, tik = keys
        return self.new_context(cmd, handle, policy, tek, tik, GuestState.LUPDATE)

    def _launch_update(self, cmd: Command, handle: int, paddr: int, length: int, vmsa: bool) -> CommandResult:
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if vmsa and not guest.es:
            return _r(cmd, Status.UNSUPPORTED)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        if paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        if length == 0 or length % 16:
            return _r(cmd, Status.INVALID_LEN)
        plaintext = self.memory.read(paddr, length)
        assert guest.ld is not None
        guest.ld.update(plaintext)
        self.memory.write(paddr, transform(guest.vek, paddr, plaintext))
        return _r(cmd, Status.SUCCESS)

    def launch_update_data(self, handle: int, paddr: int, length: int) -> CommandResult:
        """LAUNCH_UPDATE_DATA: hash the plaintext into LD, then encrypt it in place."""
        return self._launch_update(Command.LAUNCH_UPDATE_DATA, handle, paddr, length, vmsa=False)

    def launch_update_vmsa(self, handle: int, paddr: int, length: int) -> CommandResult:
        """LAUNCH_UPDATE_VMSA: the length (4096) is checked first; needs an ES policy."""
        cmd = Command.LAUNCH_UPDATE_VMSA
        if (refused := self._refused(cmd)) is not None:
            return refused
        if length != 4096:
            return _r(cmd, Status.INVALID_LEN)
        return self._launch_update(cmd, handle, paddr, length, vmsa=True)

    def launch_measure(self, handle: int, length: int) -> CommandResult:
        """LAUNCH_MEASURE: a short buffer gets INVALID_LEN with 48 written back, no state change."""
        cmd = Command.LAUNCH_MEASURE
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if length < MEASUREMENT_LEN:
            return _r(cmd, Status.INVALID_LEN, MEASUREMENT_LEN)
        assert guest.ld is not None
        guest.digest = guest.ld.digest()
        mnonce = self.new_key()
        guest.measure = launch_measurement(guest.tik, self.api, guest.policy, guest.digest, mnonce) + mnonce
        guest.state = GuestState.LSECRET
        return _r(cmd, Status.SUCCESS, guest.measure)

    def launch_secret(
        self, handle: int, header: bytes, guest_paddr: int, guest_len: int, trans: bytes
    ) -> CommandResult:
        """LAUNCH_SECRET (§2.1, §5.3): header = FLAGS(4) || IV(16) || MAC(32); the MAC covers the
        launch measurement too (context 1)."""
        cmd = Command.LAUNCH_UPDATE_SECRET
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest_paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        if (
            len(header) != channel.HEADER_LEN
            or guest_len == 0
            or guest_len % 16
            or guest_len > MAX_TRANSPORT
            or guest_len != len(trans)
        ):
            return _r(cmd, Status.INVALID_LEN)
        if guest.state is not GuestState.LSECRET:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        flags, iv, mac = channel.header_fields(header)
        assert guest.measure is not None
        expected = channel.packet_mac(
            guest.tik, channel.CONTEXT_SECRET, flags, iv, guest_len, trans, guest.measure[:32]
        )
        if not hmac.compare_digest(mac, expected):
            return _r(cmd, Status.BAD_MEASUREMENT)
        if flags & channel.FLAG_COMPRESSED:
            return _r(cmd, Status.UNSUPPORTED)
        plaintext = crypto.aes128_ctr(guest.tek, iv, trans)
        self.memory.write(guest_paddr, transform(guest.vek, guest_paddr, plaintext))
        return _r(cmd, Status.SUCCESS)

    def launch_finish(self, handle: int) -> CommandResult:
        """LAUNCH_FINISH: needs LSECRET; a pending ASID becomes valid; -> RUNNING."""
        cmd = Command.LAUNCH_FINISH
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LSECRET:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        self.make_active(guest)
        guest.tek = guest.tik = bytes(16)
        guest.ld = None
        guest.state = GuestState.RUNNING
        return _r(cmd, Status.SUCCESS)

    # -- attestation --------------------------------------------------------------------------------
    def attestation(self, handle: int, mnonce: bytes, length: int) -> CommandResult:
        """ATTESTATION (0x36; §2.1): WORKING; handle; state LSECRET, RUNNING, SUPDATE or SENT
        (INVALID_GUEST_STATE); a buffer under 0xD0 bytes gets INVALID_LEN with 0xD0 written back.

        The report is mnonce (16) || launch digest (32) || policy (LE32) || signature usage (PEK,
        0x1002) || algorithm (ECDSA_SHA256, 2) || reserved (4) || R (72, LE) || S (72, LE), signed
        by the PEK over its first 0x34 bytes. A guest that was received rather than launched has
        no launch digest: the model reports zeros (what the firmware puts there is not public).
        """
        cmd = Command.ATTESTATION
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state not in (GuestState.LSECRET, GuestState.RUNNING, GuestState.SUPDATE, GuestState.SENT):
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if length < ATTESTATION_REPORT_LEN:
            return _r(cmd, Status.INVALID_LEN, ATTESTATION_REPORT_LEN)
        signed = mnonce + (guest.digest or bytes(32)) + guest.policy.to_bytes(4, "little")
        keys = self.keys()
        assert keys.pek is not None
        r, s = crypto.sign(keys.pek, signed)
        report = (
            signed
            + int(certs.Usage.PEK).to_bytes(4, "little")
            + int(certs.Algo.ECDSA_SHA256).to_bytes(4, "little")
            + bytes(4)
            + r.to_bytes(72, "little")
            + s.to_bytes(72, "little")
        )
        return _r(cmd, Status.SUCCESS, report)
