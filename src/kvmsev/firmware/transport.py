"""Migration commands of the SEV firmware (SEV API §7; firmware reference §2.1, §5.3): SEND_START,
SEND_UPDATE_DATA, SEND_FINISH, SEND_CANCEL on the source; RECEIVE_START, RECEIVE_UPDATE_DATA,
RECEIVE_FINISH on the target.

The source firmware plays the guest owner's part for the target: SEND_START makes a new TEK and
TIK and wraps them for the target's PDH with its own PDH key, so the target's RECEIVE_START, given
the source's PDH certificate and the session blob, derives the same keys. Guest pages travel as
packets: SEND_UPDATE_DATA decrypts them with the guest's key and encrypts them under the TEK
with a MAC under the TIK; RECEIVE_UPDATE_DATA checks the MAC and encrypts them with the target
guest's own key. SEND_UPDATE_VMSA and RECEIVE_UPDATE_VMSA exist in the firmware but KVM (5.13)
never issues them, so they are not modeled.

Mixed into :class:`~kvmsev.firmware.psp.Psp`.
"""

from __future__ import annotations

import hmac

from kvmsev.firmware import certs, crypto
from kvmsev.firmware import session as channel
from kvmsev.firmware.guest import (
    MAX_TRANSPORT,
    POLICY_DOMAIN,
    POLICY_NOSEND,
    POLICY_SEV,
    Activation,
    GuestState,
)
from kvmsev.firmware.platform import PspCore
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.result import result as _r
from kvmsev.firmware.status import Command, PlatformState, Status
from kvmsev.hw.memory import transform


class TransportCommands(PspCore):
    __slots__ = ()

    def send_start(self, handle: int, pdh_cert: bytes, plat_certs: bytes, session_len: int) -> CommandResult:
        """SEND_START: WORKING; handle; a session buffer under 128 bytes gets INVALID_LEN with 128
        written back (the length query); state RUNNING (INVALID_GUEST_STATE); NOSEND in the policy
        (POLICY_FAILURE); with SEV or DOMAIN in the policy the target's PDH must be signed by its
        chain (PEK by OCA and CEK; the AMD part of the chain is not modeled; the status of a bad
        chain is not public: BAD_SIGNATURE here), and the target's API must not be below the
        policy's (POLICY_FAILURE); the PDH certificate must be 0x824 bytes (INVALID_LEN).

        On success ``out`` holds the session blob and the policy; the guest goes to SUPDATE.
        """
        cmd = Command.SEND_START
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if session_len < channel.SESSION_LEN:
            return _r(cmd, Status.INVALID_LEN, {"session_len": channel.SESSION_LEN, "policy": guest.policy})
        if guest.state is not GuestState.RUNNING:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.policy & POLICY_NOSEND:
            return _r(cmd, Status.POLICY_FAILURE)
        target = certs.decode(pdh_cert)
        if guest.policy & (POLICY_SEV | POLICY_DOMAIN):
            if target is None or not certs.chain_is_valid(target, plat_certs):
                return _r(cmd, Status.BAD_SIGNATURE)
            if (target.api_major, target.api_minor) < (
                (guest.policy >> 16) & 0xFF,
                (guest.policy >> 24) & 0xFF,
            ):
                return _r(cmd, Status.POLICY_FAILURE)
        if target is None or target.public_key() is None:
            return _r(cmd, Status.INVALID_LEN)
        keys = self.keys()
        assert keys.pdh is not None
        guest.tek, guest.tik = self.new_key(), self.new_key()
        blob = channel.wrap(
            keys.pdh, target, guest.tek, guest.tik, guest.policy, self.new_key(), self.new_key()
        )
        guest.state = GuestState.SUPDATE
        return _r(cmd, Status.SUCCESS, {"session": blob.encode(), "policy": guest.policy})

    def send_update_data(
        self, handle: int, guest_paddr: int, guest_len: int, hdr_len: int, trans_len: int
    ) -> CommandResult:
        """SEND_UPDATE_DATA: WORKING; a header buffer under 52 bytes gets INVALID_LEN with 52
        written back (the length query); handle; state SUPDATE; the guest's ASID reserved or in
        use (INACTIVE); guest length non-zero, at most 20 KiB, a multiple of 16, and a transport
        buffer at least as long (INVALID_LEN); guest address 16-byte aligned (INVALID_ADDRESS).

        The guest's pages are decrypted with its key, encrypted under the TEK with a fresh IV and
        MACed under the TIK (context 2); ``out`` holds the header and the transport data.
        """
        cmd = Command.SEND_UPDATE_DATA
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is not PlatformState.WORKING:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        if hdr_len < channel.HEADER_LEN:
            return _r(cmd, Status.INVALID_LEN, {"hdr_len": channel.HEADER_LEN, "trans_len": trans_len})
        guest = self.guests.get(handle)
        if guest is None:
            return _r(cmd, Status.INVALID_GUEST)
        if guest.state is not GuestState.SUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        if guest_len == 0 or guest_len > MAX_TRANSPORT or guest_len % 16 or trans_len < guest_len:
            return _r(cmd, Status.INVALID_LEN)
        paddr = self.strip_c_bit(guest_paddr)
        if paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        plain = transform(guest.vek, paddr, self.memory.read(paddr, guest_len))
        header, trans = channel.seal(guest.tek, guest.tik, channel.CONTEXT_DATA, self.new_key(), plain)
        return _r(cmd, Status.SUCCESS, {"header": header, "trans": trans})

    def _supdate_guest_cmd(self, cmd: Command, handle: int, to: GuestState) -> CommandResult:
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.SUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if to is GuestState.SENT:
            guest.tek = guest.tik = bytes(16)
        guest.state = to
        return _r(cmd, Status.SUCCESS)

    def send_finish(self, handle: int) -> CommandResult:
        """SEND_FINISH: SUPDATE -> SENT; the channel is wiped. A SENT guest cannot be ACTIVATEd
        again, but can be attested, DEACTIVATEd and DECOMMISSIONed."""
        return self._supdate_guest_cmd(Command.SEND_FINISH, handle, GuestState.SENT)

    def send_cancel(self, handle: int) -> CommandResult:
        """SEND_CANCEL: SUPDATE -> RUNNING."""
        return self._supdate_guest_cmd(Command.SEND_CANCEL, handle, GuestState.RUNNING)

    def receive_start(self, handle: int, policy: int, pdh_cert: bytes, session: bytes) -> CommandResult:
        """RECEIVE_START: INIT or WORKING; the session (128) and the source's PDH certificate
        (0x824) are mandatory (INVALID_LEN); then the session, policy and key-sharing checks of
        LAUNCH_START; ES needs a platform initialised with ES. New handle in ``out``; the guest
        starts in RUPDATE and the platform is WORKING."""
        cmd = Command.RECEIVE_START
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is PlatformState.UNINIT:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        keys = self.open_channel(cmd, policy, pdh_cert, session)
        if isinstance(keys, CommandResult):
            return keys
        return self.new_context(cmd, handle, policy, keys[0], keys[1], GuestState.RUPDATE)

    def receive_update_data(
        self, handle: int, header: bytes, guest_paddr: int, guest_len: int, trans: bytes
    ) -> CommandResult:
        """RECEIVE_UPDATE_DATA: WORKING; handle; state RUPDATE; ASID reserved or in use
        (INACTIVE); transport non-empty, at most 20 KiB, as long as the guest data, a multiple of
        16, header at least 52 bytes (INVALID_LEN); guest address aligned (INVALID_ADDRESS); the
        COMPRESSED flag (UNSUPPORTED); the MAC (BAD_MEASUREMENT). The data is decrypted with the
        TEK and written with the guest's own key."""
        cmd = Command.RECEIVE_UPDATE_DATA
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.RUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        if (
            not trans
            or len(trans) > MAX_TRANSPORT
            or guest_len != len(trans)
            or guest_len % 16
            or len(header) < channel.HEADER_LEN
        ):
            return _r(cmd, Status.INVALID_LEN)
        paddr = self.strip_c_bit(guest_paddr)
        if paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        flags, iv, mac = channel.header_fields(header)
        if flags & channel.FLAG_COMPRESSED:
            return _r(cmd, Status.UNSUPPORTED)
        expected = channel.packet_mac(guest.tik, channel.CONTEXT_DATA, flags, iv, guest_len, trans)
        if not hmac.compare_digest(mac, expected):
            return _r(cmd, Status.BAD_MEASUREMENT)
        plain = crypto.aes128_ctr(guest.tek, iv, trans)
        self.memory.write(paddr, transform(guest.vek, paddr, plain))
        return _r(cmd, Status.SUCCESS)

    def receive_finish(self, handle: int) -> CommandResult:
        """RECEIVE_FINISH: RUPDATE -> RUNNING; a pending ASID becomes valid; the channel is wiped."""
        cmd = Command.RECEIVE_FINISH
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.RUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        self.make_active(guest)
        guest.tek = guest.tik = bytes(16)
        guest.state = GuestState.RUNNING
        return _r(cmd, Status.SUCCESS)
