"""The SEV-SNP commands the modeled kernels issue (AMD SEV Secure Nested Paging Firmware ABI
Specification, 56860, chapter 8): platform SNP_INIT / SNP_INIT_EX and SNP_DF_FLUSH, and a guest's
SNP_GCTX_CREATE, SNP_LAUNCH_START, SNP_ACTIVATE, SNP_LAUNCH_UPDATE, SNP_LAUNCH_FINISH and
SNP_DECOMMISSION.

The SNP guest shares the ASID table with SEV guests: SNP_ACTIVATE takes an ASID below
``min_sev_asid`` (INVALID_ASID otherwise) that is not owned (ASID_OWNED) and not dirty
(DFFLUSH_REQUIRED); SNP_DECOMMISSION of an active guest leaves its ASID dirty until an
SNP_DF_FLUSH, which needs a WBINVD on every thread since (WBINVD_REQUIRED) -- the same cache
discipline as DEACTIVATE and DF_FLUSH.

Modeled only as far as KVM's commands need: the RMP is the set of guest pages launched into each
context (a page is launched once); the launch digest (SHA-384 over PAGE_INFO structures) is not
computed, nor ID blocks, VMPLs, guest requests, page swapping or SNP_SHUTDOWN.
"""

from __future__ import annotations

from kvmsev.firmware.guest import SnpContext, SnpGuestState
from kvmsev.firmware.platform import PspCore
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.result import result as _r
from kvmsev.firmware.status import Command, Status
from kvmsev.hw.memory import PAGE_SIZE

#: firmware versions with SNP_INIT_EX (56860 8.2: from ABI 1.52)
SNP_INIT_EX_API = (1, 52)
#: guest policy bit 16: SMT allowed; bit 20: the guest runs on one socket only
SNP_POLICY_SMT = 1 << 16
SNP_POLICY_SINGLE_SOCKET = 1 << 20


class SnpCommands(PspCore):
    """The SNP command family, on the platform's shared state (``snp_initialized``,
    ``snp_guests``)."""

    __slots__ = ()

    def snp_init(self) -> CommandResult:
        """SNP_INIT (or SNP_INIT_EX from ABI 1.52): the legacy platform must still be UNINIT."""
        cmd = Command.SNP_INIT_EX if self.api[:2] >= SNP_INIT_EX_API else Command.SNP_INIT
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.snp_initialized or self.state.value:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        self.snp_initialized = True
        self.wbinvd_done = 0
        self.asid_all_dirty = True
        return _r(cmd, Status.SUCCESS)

    def snp_df_flush(self) -> CommandResult:
        """SNP_DF_FLUSH: dirty ASIDs clean, once every enabled thread did WBINVD."""
        cmd = Command.SNP_DF_FLUSH
        if (refused := self._refused(cmd)) is not None:
            return refused
        if not self.snp_initialized:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        if self.wbinvd_done & self.enabled_threads != self.enabled_threads:
            return _r(cmd, Status.WBINVD_REQUIRED)
        self.asid_dirty = 0
        self.asid_all_dirty = False
        return _r(cmd, Status.SUCCESS)

    def _snp_guest(self, cmd: Command, gctx: int) -> SnpContext | CommandResult:
        if (refused := self._refused(cmd)) is not None:
            return refused
        if not self.snp_initialized:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        guest = self.snp_guests.get(gctx)
        if guest is None:
            return _r(cmd, Status.INVALID_GUEST)
        return guest

    def snp_gctx_create(self) -> CommandResult:
        """SNP_GCTX_CREATE: a new context page; out: its address (the model's handle)."""
        cmd = Command.SNP_GCTX_CREATE
        if (refused := self._refused(cmd)) is not None:
            return refused
        if not self.snp_initialized:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        gctx = max(self.snp_guests, default=0) + 1
        self.snp_guests[gctx] = SnpContext(gctx)
        return _r(cmd, Status.SUCCESS, gctx)

    def snp_launch_start(self, gctx: int, policy: int) -> CommandResult:
        """SNP_LAUNCH_START: a new context (INIT) begins its launch (LAUNCH). A policy that
        forbids SMT (bit 16 clear) fails with POLICY_FAILURE while SMT is enabled in the BIOS,
        and passes with it disabled (the firmware behaviour 9f4701e05fae describes)."""
        cmd = Command.SNP_LAUNCH_START
        guest = self._snp_guest(cmd, gctx)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not SnpGuestState.INIT:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if self.smt and not policy & SNP_POLICY_SMT:
            return _r(cmd, Status.POLICY_FAILURE)
        guest.policy = policy
        guest.state = SnpGuestState.LAUNCH
        return _r(cmd, Status.SUCCESS)

    def snp_activate(self, gctx: int, asid: int) -> CommandResult:
        """SNP_ACTIVATE: bind ``asid`` (an SEV-ES ASID: below ``min_sev_asid``) to the context.
        A SINGLE_SOCKET policy fails with POLICY_FAILURE on a system of more than one socket
        (before the ASID checks; FW 1.55, and 24be2b7956a5's cover letter: SNP_ACTIVATE_EX with
        scheduling support would be needed there)."""
        cmd = Command.SNP_ACTIVATE
        guest = self._snp_guest(cmd, gctx)
        if isinstance(guest, CommandResult):
            return guest
        if self.sockets > 1 and guest.policy & SNP_POLICY_SINGLE_SOCKET:
            return _r(cmd, Status.POLICY_FAILURE)
        if guest.active:
            return _r(cmd, Status.ACTIVE)
        if not 1 <= asid < self.min_sev_asid:
            return _r(cmd, Status.INVALID_ASID)
        bit = 1 << asid
        if (self.asid_allocated | self.asid_in_use) & bit:
            return _r(cmd, Status.ASID_OWNED)
        if self.asid_all_dirty or self.asid_dirty & bit:
            return _r(cmd, Status.DFFLUSH_REQUIRED)
        guest.asid, guest.active = asid, True
        self.asid_in_use |= bit
        return _r(cmd, Status.SUCCESS)

    def snp_launch_update(self, gctx: int, gfn: int) -> CommandResult:
        """SNP_LAUNCH_UPDATE of one page (or a vCPU's VMSA) during the launch; a page already
        assigned to the guest cannot be launched again (INVALID_PARAM)."""
        cmd = Command.SNP_LAUNCH_UPDATE
        guest = self._snp_guest(cmd, gctx)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not SnpGuestState.LAUNCH:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if gfn in guest.pages:
            return _r(cmd, Status.INVALID_PARAM)
        if self.memory.budget is not None:
            # the page is encrypted in place: the model does not hold its contents, but counts it
            # as a page written, so a run's launch stays within what the model bounds
            self.memory.budget.spend(PAGE_SIZE)
        guest.pages.add(gfn)
        return _r(cmd, Status.SUCCESS)

    def snp_launch_finish(self, gctx: int) -> CommandResult:
        """SNP_LAUNCH_FINISH: LAUNCH -> RUNNING."""
        cmd = Command.SNP_LAUNCH_FINISH
        guest = self._snp_guest(cmd, gctx)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not SnpGuestState.LAUNCH:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        guest.state = SnpGuestState.RUNNING
        return _r(cmd, Status.SUCCESS)

    def snp_decommission(self, gctx: int) -> CommandResult:
        """SNP_DECOMMISSION: the context goes; an active ASID becomes dirty (and every WBINVD_DONE
        flag clears) until the next SNP_DF_FLUSH."""
        cmd = Command.SNP_DECOMMISSION
        guest = self._snp_guest(cmd, gctx)
        if isinstance(guest, CommandResult):
            return guest
        if guest.active:
            bit = 1 << guest.asid
            self.asid_in_use &= ~bit
            self.asid_dirty |= bit
            self.wbinvd_done = 0
        del self.snp_guests[gctx]
        return _r(cmd, Status.SUCCESS)
