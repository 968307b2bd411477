"""Debug commands of the SEV firmware (SEV API §8; firmware reference §2.1): DBG_DECRYPT and
DBG_ENCRYPT read or write guest memory through the guest's key, for guests whose policy allows
debugging. Mixed into :class:`~kvmsev.firmware.psp.Psp`."""

from __future__ import annotations

from kvmsev.firmware.guest import POLICY_NODBG, Activation
from kvmsev.firmware.platform import PspCore
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.result import result as _r
from kvmsev.firmware.status import Command, PlatformState, Status
from kvmsev.hw.memory import transform


class DebugCommands(PspCore):
    __slots__ = ()

    def dbg(self, encrypt: bool, handle: int, src: int, dst: int, length: int) -> CommandResult:
        """DBG_DECRYPT / DBG_ENCRYPT: WORKING; source and destination 16-byte aligned
        (INVALID_ADDRESS); length a multiple of 16 (INVALID_LEN); handle; NODBG in the policy
        (POLICY_FAILURE); activated (INACTIVE). No guest-state check."""
        cmd = Command.DBG_ENCRYPT if encrypt else Command.DBG_DECRYPT
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is not PlatformState.WORKING:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        if src % 16 or dst % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        if length % 16:
            return _r(cmd, Status.INVALID_LEN)
        guest = self.guests.get(handle)
        if guest is None:
            return _r(cmd, Status.INVALID_GUEST)
        if guest.policy & POLICY_NODBG:
            return _r(cmd, Status.POLICY_FAILURE)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        data = self.memory.read(src, length)
        self.memory.write(dst, transform(guest.vek, dst if encrypt else src, data))
        return _r(cmd, Status.SUCCESS)
