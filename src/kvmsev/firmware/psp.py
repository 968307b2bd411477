"""The PSP's SEV platform: platform state, and DF_FLUSH against per-thread WBINVD_DONE flags.

Platform states UNINIT(0) / INIT(1) / WORKING(2) (SEV API §5.1; firmware reference §1.2).

* INIT is legal only in UNINIT (else INVALID_PLATFORM_STATE). It needs memory encryption enabled
  in hardware (SYSCFG MemEncryptionModEn, the BIOS SMEE switch), else HWSEV_RET_PLATFORM (0x13),
  the code users see as "SEV: failed to INIT error 0x13" with SMEE off (AMDESE/sev-tool#43).
  INIT clears every thread's WBINVD_DONE flag (firmware reference §1.4 step 8).
* SHUTDOWN is legal in any state and returns to UNINIT.
* DF_FLUSH is legal in INIT and WORKING per the SEV API spec 0.17 state table (the 1.55 source
  dropped the check; the 2021-era parts this model targets speak API 0.17-1.51). It fails with
  WBINVD_REQUIRED while any thread enabled at boot lacks WBINVD_DONE; WBINVD on every *online*
  CPU is what Linux's ``wbinvd_on_all_cpus()`` provides, so an offlined CPU makes every DF_FLUSH
  fail (firmware reference §3.3). DF_FLUSH does not clear the flags.

Where the part has no SEV firmware (client Ryzen, parts without SEV) the ccp driver never
registers SEV and every command fails in the driver with ``-ENODEV`` before reaching a
firmware (drivers/crypto/ccp ``__sev_do_cmd_locked``: ``if (!psp || !psp->sev_data)``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmsev.errors import Errno
from kvmsev.firmware.status import Command, Status


class PlatformState(enum.IntEnum):
    UNINIT = 0
    INIT = 1
    WORKING = 2


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command as the driver saw it: ``ret`` is the driver's return (0, -EIO, -ENODEV),
    ``status`` the firmware code (None when the firmware was never reached)."""

    command: Command
    ret: int
    status: Status | None

    @property
    def ok(self) -> bool:
        return self.ret == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "cmd": self.command.name,
            "ret": self.ret,
            "status": None if self.status is None else self.status.name,
            "code": None if self.status is None else int(self.status),
        }


@dataclass(slots=True)
class Psp:
    """The SEV firmware of one platform.

    ``wbinvd_done`` is a bit mask over hardware threads: bit *n* set means thread *n* executed
    WBINVD since the flag was last cleared. ``enabled_threads`` is the mask of threads enabled at
    boot; the firmware requires all of them.
    """

    present: bool
    mem_encrypt_enabled: bool
    enabled_threads: int
    state: PlatformState = PlatformState.UNINIT
    wbinvd_done: int = 0

    def _result(self, command: Command, status: Status) -> CommandResult:
        ret = 0 if status is Status.SUCCESS else -Errno.EIO
        return CommandResult(command, ret, status)

    def _absent(self, command: Command) -> CommandResult | None:
        if self.present:
            return None
        return CommandResult(command, -Errno.ENODEV, None)

    def init(self) -> CommandResult:
        """SEV INIT: UNINIT -> INIT."""
        if (absent := self._absent(Command.INIT)) is not None:
            return absent
        if self.state is not PlatformState.UNINIT:
            return self._result(Command.INIT, Status.INVALID_PLATFORM_STATE)
        if not self.mem_encrypt_enabled:
            return self._result(Command.INIT, Status.HWSEV_RET_PLATFORM)
        self.wbinvd_done = 0
        self.state = PlatformState.INIT
        return self._result(Command.INIT, Status.SUCCESS)

    def shutdown(self) -> CommandResult:
        """SHUTDOWN: any state -> UNINIT."""
        if (absent := self._absent(Command.SHUTDOWN)) is not None:
            return absent
        self.state = PlatformState.UNINIT
        return self._result(Command.SHUTDOWN, Status.SUCCESS)

    def wbinvd(self, threads: int) -> None:
        """Hardware: the threads in mask ``threads`` executed WBINVD."""
        self.wbinvd_done |= threads

    def df_flush(self) -> CommandResult:
        """DF_FLUSH: needs INIT/WORKING and WBINVD_DONE on every enabled thread."""
        if (absent := self._absent(Command.DF_FLUSH)) is not None:
            return absent
        if self.state is PlatformState.UNINIT:
            return self._result(Command.DF_FLUSH, Status.INVALID_PLATFORM_STATE)
        if self.wbinvd_done & self.enabled_threads != self.enabled_threads:
            return self._result(Command.DF_FLUSH, Status.WBINVD_REQUIRED)
        return self._result(Command.DF_FLUSH, Status.SUCCESS)
