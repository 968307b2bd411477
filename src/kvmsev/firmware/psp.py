"""The SEV firmware of one platform, whole: :class:`~kvmsev.firmware.platform.PspCore`'s state,
platform and ASID commands, with the guest command families mixed in (launch and attestation,
migration, debug)."""

from __future__ import annotations

from kvmsev.firmware.debug import DebugCommands
from kvmsev.firmware.launch import LaunchCommands
from kvmsev.firmware.platform import MAX_HANDLES, VMSA_SIZE
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.snp import SnpCommands
from kvmsev.firmware.status import PlatformState
from kvmsev.firmware.transport import TransportCommands

__all__ = ["MAX_HANDLES", "VMSA_SIZE", "CommandResult", "PlatformState", "Psp"]


class Psp(LaunchCommands, TransportCommands, DebugCommands, SnpCommands):
    """What ``kvm_amd`` and the ccp driver talk to."""

    __slots__ = ()
