"""The PSP's SEV firmware: platform state, guest contexts, the ASID table and WBINVD flags.

A clean-room behavioural model of the SEV API (AMD pub. 55766) as the project's firmware
reference describes it (§1-§5). Checks run in the order the firmware applies them (platform
state, then handle, then guest state, ...), so that the status code of a command that breaks
several rules is the real one.

Platform (§1.2-1.4): UNINIT -> INIT by INIT (needs SMEE: else HWSEV_RET_PLATFORM 0x13; clears
every thread's WBINVD_DONE and marks every ASID dirty, so a DF_FLUSH must follow before any
ACTIVATE); LAUNCH_START or RECEIVE_START makes it WORKING; the last DECOMMISSION returns it to
INIT; SHUTDOWN returns it to UNINIT from anywhere. DF_FLUSH is accepted in INIT and WORKING (API
0.17 table). The platform's keys (CEK, OCA, PEK, PDH; :mod:`kvmsev.firmware.certs`) are made the
first time a command needs them and survive reboots, as the firmware keeps them in flash.

ASIDs (§3): one state per ASID (clean / allocated / in use / dirty; a single cache domain, so
the per-CCX dimension collapses). ACTIVATE reserves a clean ASID (pending) or makes it valid
(active, for RUNNING or SUPDATE guests); LAUNCH_FINISH and RECEIVE_FINISH turn pending into
active; DEACTIVATE makes an in-use ASID dirty and clears WBINVD_DONE on every thread, or an
allocated one clean again. DF_FLUSH cleans every dirty ASID only when every thread enabled at
boot has WBINVD_DONE, else WBINVD_REQUIRED (0x0E).

The guest commands live with their family: launch and attestation in
:mod:`kvmsev.firmware.launch`, migration in :mod:`kvmsev.firmware.transport`, debug in
:mod:`kvmsev.firmware.debug`; :mod:`kvmsev.firmware.psp` puts them together. Where the part has
no SEV firmware, commands never reach one: the driver answers -ENODEV.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kvmsev.firmware import certs
from kvmsev.firmware import session as channel
from kvmsev.firmware.certs import CERT_LEN, PlatformIdentity
from kvmsev.firmware.guest import (
    POLICY_ES,
    POLICY_NOKS,
    POLICY_RESERVED,
    Activation,
    GuestContext,
    GuestState,
    SnpContext,
)
from kvmsev.firmware.result import ENODEV, CommandResult
from kvmsev.firmware.result import result as _r
from kvmsev.firmware.status import Command, PlatformState, Status
from kvmsev.hw.memory import PhysicalMemory

MAX_HANDLES = 1024
VMSA_SIZE = 4096


@dataclass(slots=True)
class PspCore:
    """The SEV firmware of one platform: its state (which survives ``kvm_amd`` reloads), the
    platform commands and the ASID commands. :class:`kvmsev.firmware.psp.Psp` adds the guest
    command families."""

    present: bool
    mem_encrypt_enabled: bool
    enabled_threads: int
    max_asid: int = 0
    min_sev_asid: int = 0
    api: tuple[int, int, int] = (0, 24, 0)
    #: position of the C-bit (CPUID 0x8000001F EBX[5:0]): KVM sets it in guest addresses it
    #: passes for migration, and the firmware looks past it
    c_bit: int = 51
    #: SMT enabled in the BIOS: the SNP guest policy must then allow it (bit 16)
    smt: bool = False
    #: processors in the system: an SNP policy with SINGLE_SOCKET (bit 20) fails on more than one
    sockets: int = 1
    memory: PhysicalMemory = field(default_factory=PhysicalMemory)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: what the platform's keys are derived from (a chip's fused secrets, in the model a seed)
    identity_seed: bytes = b"kvmsev"
    state: PlatformState = PlatformState.UNINIT
    es_initialized: bool = False
    wbinvd_done: int = 0
    guests: dict[int, GuestContext] = field(default_factory=dict)
    # ASID table as bit masks over ASID numbers
    asid_allocated: int = 0
    asid_in_use: int = 0
    asid_dirty: int = 0
    #: every ASID dirty (after INIT), kept as a flag so the table's size never matters
    asid_all_dirty: bool = False
    asid_owner: dict[int, int] = field(default_factory=dict)
    #: externally owned (PEK_CERT_IMPORT done) rather than self-owned
    owned: bool = False
    #: the platform's keys and certificates, made when a command first needs them
    identity: PlatformIdentity | None = None
    #: SEV-SNP (:mod:`kvmsev.firmware.snp`): SNP_INIT done, and the SNP guest contexts by GCTX
    snp_initialized: bool = False
    snp_guests: dict[int, SnpContext] = field(default_factory=dict)
    #: injected faults: the next command of each kind fails with the given status, changing
    #: nothing (the checker's "firmware failures" choices; never set by the model itself)
    faults: dict[Command, Status] = field(default_factory=dict)

    #: the checker's number for this object's share of a state fingerprint (never compared)
    fingerprint_cache: int | None = field(default=None, compare=False, repr=False)
    #: the command whose last failure was injected (so observers can tell it from a real one)
    injected: Command | None = None

    # -- helpers ------------------------------------------------------------------------------
    def _refused(self, command: Command) -> CommandResult | None:
        """What comes back before the firmware looks at ``command``: -ENODEV without SEV firmware
        (``sev_do_cmd`` in drivers/crypto/ccp/sev-dev.c finds no ``psp_master``), or the failure a
        scenario armed for this command."""
        if not self.present:
            return CommandResult(command, ENODEV, None)
        status = self.faults.pop(command, None) if self.faults else None
        if status is None:
            return None
        self.injected = command
        return _r(command, status)

    def _guest(self, handle: int) -> GuestContext | None:
        return self.guests.get(handle)

    def keys(self) -> PlatformIdentity:
        """The platform's identity, made on first use."""
        if self.identity is None:
            self.identity = PlatformIdentity(self.identity_seed, self.api[:2])
        self.identity.ensure()
        return self.identity

    def new_key(self) -> bytes:
        """16 random bytes (VEK, TEK, TIK, nonces, IVs) from the platform's random source."""
        return self.rng.getrandbits(128).to_bytes(16, "little")

    def new_handle(self) -> int | None:
        """The lowest free guest handle, from 1 (at most 1024 guests)."""
        return next((h for h in range(1, MAX_HANDLES + 1) if h not in self.guests), None)

    def strip_c_bit(self, paddr: int) -> int:
        return paddr & ~(1 << self.c_bit)

    def asid_state(self, asid: int) -> str:
        bit = 1 << asid
        if self.asid_in_use & bit:
            return "in_use"
        if self.asid_allocated & bit:
            return "allocated"
        if self.asid_all_dirty or self.asid_dirty & bit:
            return "dirty"
        return "clean"

    # -- platform commands --------------------------------------------------------------------
    def init(self, es: bool = True) -> CommandResult:
        """INIT: UNINIT -> INIT; every ASID becomes dirty and WBINVD_DONE is cleared."""
        if (refused := self._refused(Command.INIT)) is not None:
            return refused
        if self.state is not PlatformState.UNINIT:
            return _r(Command.INIT, Status.INVALID_PLATFORM_STATE)
        if not self.mem_encrypt_enabled:
            return _r(Command.INIT, Status.HWSEV_RET_PLATFORM)
        self.wbinvd_done = 0
        self.asid_all_dirty = True
        self.asid_allocated = self.asid_in_use = 0
        self.asid_owner.clear()
        self.es_initialized = es
        self.state = PlatformState.INIT
        return _r(Command.INIT, Status.SUCCESS)

    def shutdown(self) -> CommandResult:
        """SHUTDOWN: any state -> UNINIT; every guest context is wiped."""
        if (refused := self._refused(Command.SHUTDOWN)) is not None:
            return refused
        self.guests.clear()
        self.asid_dirty |= self.asid_in_use
        self.asid_allocated = self.asid_in_use = 0
        self.asid_owner.clear()
        self.state = PlatformState.UNINIT
        return _r(Command.SHUTDOWN, Status.SUCCESS)

    def platform_status(self) -> CommandResult:
        if (refused := self._refused(Command.PLATFORM_STATUS)) is not None:
            return refused
        major, minor, build = self.api
        sev_guests = sum(1 for _ in self.guests)
        out = {
            "api_major": major,
            "api_minor": minor,
            "build": build,
            "state": int(self.state),
            "flags": (0x100 if self.es_initialized and self.state else 0)
            | (1 if self.owned and self.state else 0),
            "guest_count": sev_guests if self.state else 0,
        }
        return _r(Command.PLATFORM_STATUS, Status.SUCCESS, out)

    def _platform_cmd(self, cmd: Command, legal: tuple[PlatformState, ...]) -> CommandResult:
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state not in legal:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        return _r(cmd, Status.SUCCESS)

    def factory_reset(self) -> CommandResult:
        """PLATFORM_RESET (Linux: FACTORY_RESET): UNINIT only; erases the persistent keys."""
        result = self._platform_cmd(Command.FACTORY_RESET, (PlatformState.UNINIT,))
        if result.ok:
            self.owned = False
            if self.identity is not None:
                self.identity.reset()
        return result

    def pek_gen(self) -> CommandResult:
        """PEK_GEN: INIT only; new self-signed OCA, PEK and PDH (the platform becomes self-owned)."""
        result = self._platform_cmd(Command.PEK_GEN, (PlatformState.INIT,))
        if result.ok:
            self.owned = False
            self.keys().pek_gen()
        return result

    def pek_csr(self) -> CommandResult:
        """PEK_CSR: INIT or WORKING (FW 1.55; the 0.17 spec allowed INIT only)."""
        return self._platform_cmd(Command.PEK_CSR, (PlatformState.INIT, PlatformState.WORKING))

    def pek_cert_import(self) -> CommandResult:
        """PEK_CERT_IMPORT: INIT only; ALREADY_OWNED once externally owned."""
        if (refused := self._refused(Command.PEK_CERT_IMPORT)) is not None:
            return refused
        if self.state is not PlatformState.INIT:
            return _r(Command.PEK_CERT_IMPORT, Status.INVALID_PLATFORM_STATE)
        if self.owned:
            return _r(Command.PEK_CERT_IMPORT, Status.ALREADY_OWNED)
        self.owned = True
        return _r(Command.PEK_CERT_IMPORT, Status.SUCCESS)

    def pdh_gen(self) -> CommandResult:
        """PDH_GEN: INIT or WORKING; a new PDH key pair, signed by the PEK."""
        result = self._platform_cmd(Command.PDH_GEN, (PlatformState.INIT, PlatformState.WORKING))
        if result.ok:
            self.keys().pdh_gen()
        return result

    def pdh_cert_export(self, pdh_len: int = CERT_LEN, chain_len: int = 3 * CERT_LEN) -> CommandResult:
        """PDH_CERT_EXPORT: INIT or WORKING; the PDH certificate and the chain PEK || OCA || CEK.

        A buffer shorter than a certificate (or than the three of the chain) gets INVALID_LEN
        with both required lengths written back (§1.4).
        """
        cmd = Command.PDH_CERT_EXPORT
        result = self._platform_cmd(cmd, (PlatformState.INIT, PlatformState.WORKING))
        if not result.ok:
            return result
        if pdh_len < CERT_LEN or chain_len < 3 * CERT_LEN:
            return _r(cmd, Status.INVALID_LEN, {"pdh_len": CERT_LEN, "chain_len": 3 * CERT_LEN})
        keys = self.keys()
        assert keys.pdh_cert is not None
        return _r(cmd, Status.SUCCESS, {"pdh": keys.pdh_cert.encode(), "chain": keys.chain()})

    def wbinvd(self, threads: int) -> None:
        """Hardware: the threads in mask ``threads`` executed WBINVD."""
        self.wbinvd_done |= threads

    def df_flush(self) -> CommandResult:
        """DF_FLUSH: dirty ASIDs become clean when every enabled thread did WBINVD."""
        if (refused := self._refused(Command.DF_FLUSH)) is not None:
            return refused
        if self.state is PlatformState.UNINIT:
            return _r(Command.DF_FLUSH, Status.INVALID_PLATFORM_STATE)
        if self.wbinvd_done & self.enabled_threads != self.enabled_threads:
            return _r(Command.DF_FLUSH, Status.WBINVD_REQUIRED)
        self.asid_dirty = 0
        self.asid_all_dirty = False
        return _r(Command.DF_FLUSH, Status.SUCCESS)

    # -- guest contexts shared by LAUNCH_START and RECEIVE_START ------------------------------
    def open_channel(
        self, cmd: Command, policy: int, dh_cert: bytes, session: bytes
    ) -> tuple[bytes, bytes] | CommandResult:
        """Establish the transport keys from a peer's DH certificate and a session blob, in the
        firmware's order: session length 128, certificate length 0x824 (INVALID_LEN); the
        certificate must hold a P-384 ECDH PDH key (INVALID_CERTIFICATE: which status the firmware
        gives here is not in any public source); wrap MAC, then policy MAC (BAD_MEASUREMENT); the
        policy's minimum API above this firmware's, or reserved bits 6-15 set (POLICY_FAILURE)."""
        if len(session) != channel.SESSION_LEN or len(dh_cert) != certs.CERT_LEN:
            return _r(cmd, Status.INVALID_LEN)
        peer = certs.decode(dh_cert)
        assert peer is not None
        keys = self.keys()
        assert keys.pdh is not None
        opened = channel.unwrap(keys.pdh, peer, session, policy)
        if opened.problem == "certificate":
            return _r(cmd, Status.INVALID_CERTIFICATE)
        if opened.problem is not None:
            return _r(cmd, Status.BAD_MEASUREMENT)
        if (self.api[0], self.api[1]) < ((policy >> 16) & 0xFF, (policy >> 24) & 0xFF):
            return _r(cmd, Status.POLICY_FAILURE)
        if policy & POLICY_RESERVED:
            return _r(cmd, Status.POLICY_FAILURE)
        return opened.tek, opened.tik

    def new_context(
        self, cmd: Command, handle: int, policy: int, tek: bytes, tik: bytes, state: GuestState
    ) -> CommandResult:
        """Create a guest context in ``state``; a non-zero ``handle`` asks to share that guest's
        VEK (INVALID_GUEST if it does not exist, POLICY_FAILURE if the policies differ or it has
        NOKS); no free handle gives RESOURCE_LIMIT; an ES policy on a platform initialised
        without ES gives UNSUPPORTED. On success ``out`` is the new handle."""
        vek: bytes | None = None
        if handle:
            shared = self.guests.get(handle)
            if shared is None:
                return _r(cmd, Status.INVALID_GUEST)
            if shared.policy != policy or shared.policy & POLICY_NOKS:
                return _r(cmd, Status.POLICY_FAILURE)
            vek = shared.vek
        new = self.new_handle()
        if new is None:
            return _r(cmd, Status.RESOURCE_LIMIT)
        if policy & POLICY_ES and not self.es_initialized:
            return _r(cmd, Status.UNSUPPORTED)
        if vek is None:
            vek = self.new_key()
        context = GuestContext(new, policy, vek, tek, tik, state)
        if state is not GuestState.LUPDATE:
            context.ld = None
        self.guests[new] = context
        self.state = PlatformState.WORKING
        return _r(cmd, Status.SUCCESS, new)

    def make_active(self, guest: GuestContext) -> None:
        """A pending ASID becomes valid in hardware (LAUNCH_FINISH, RECEIVE_FINISH)."""
        if guest.activation is Activation.PENDING:
            bit = 1 << guest.asid
            self.asid_allocated &= ~bit
            self.asid_in_use |= bit
            guest.activation = Activation.ACTIVE

    # -- guest contexts and ASIDs ---------------------------------------------------------
    def activate(self, handle: int, asid: int) -> CommandResult:
        """ACTIVATE (§3.2), checks in the firmware's order."""
        if (refused := self._refused(Command.ACTIVATE)) is not None:
            return refused
        cmd = Command.ACTIVATE
        if self.state is not PlatformState.WORKING:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        guest = self.guests.get(handle)
        if guest is None:
            return _r(cmd, Status.INVALID_GUEST)
        if asid == 0 or asid > self.max_asid:
            return _r(cmd, Status.INVALID_ASID)
        bit = 1 << asid
        if (self.asid_allocated | self.asid_in_use) & bit:
            return _r(cmd, Status.ASID_OWNED)
        if guest.activation is not Activation.INACTIVE:
            return _r(cmd, Status.ACTIVE)
        if guest.state is GuestState.SENT:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if self.asid_all_dirty or self.asid_dirty & bit:
            return _r(cmd, Status.DFFLUSH_REQUIRED)
        es_range = 1 <= asid < self.min_sev_asid
        if not (es_range if guest.es else self.min_sev_asid <= asid <= self.max_asid):
            return _r(cmd, Status.INVALID_ASID)
        guest.asid = asid
        self.asid_owner[asid] = handle
        if guest.state in (GuestState.RUNNING, GuestState.SUPDATE):
            guest.activation = Activation.ACTIVE
            self.asid_in_use |= bit
        else:
            guest.activation = Activation.PENDING
            self.asid_allocated |= bit
        return _r(cmd, Status.SUCCESS)

    def _working_guest(self, cmd: Command, handle: int) -> GuestContext | CommandResult:
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is not PlatformState.WORKING:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        guest = self.guests.get(handle)
        if guest is None:
            return _r(cmd, Status.INVALID_GUEST)
        return guest

    def guest_status(self, handle: int) -> CommandResult:
        """GUEST_STATUS: an unknown handle answers SUCCESS with everything 0 (FW 1.55)."""
        cmd = Command.GUEST_STATUS
        if (refused := self._refused(cmd)) is not None:
            return refused
        if self.state is PlatformState.UNINIT:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        guest = self.guests.get(handle)
        if guest is None:
            return _r(cmd, Status.SUCCESS, {"policy": 0, "asid": 0, "state": 0})
        return _r(
            cmd, Status.SUCCESS, {"policy": guest.policy, "asid": guest.asid, "state": int(guest.state)}
        )

    def deactivate(self, handle: int) -> CommandResult:
        """DEACTIVATE: an in-use ASID becomes dirty (and every WBINVD_DONE flag clears)."""
        cmd = Command.DEACTIVATE
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        bit = 1 << guest.asid
        if guest.activation is Activation.ACTIVE:
            self.asid_in_use &= ~bit
            self.asid_dirty |= bit
            self.wbinvd_done = 0
        else:
            self.asid_allocated &= ~bit
        self.asid_owner.pop(guest.asid, None)
        guest.asid = 0
        guest.activation = Activation.INACTIVE
        return _r(cmd, Status.SUCCESS)

    def decommission(self, handle: int) -> CommandResult:
        """DECOMMISSION: the ASID must be released first (ACTIVE); the last guest -> INIT."""
        cmd = Command.DECOMMISSION
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.activation is not Activation.INACTIVE:
            return _r(cmd, Status.ACTIVE)
        del self.guests[handle]
        if not self.guests:
            self.state = PlatformState.INIT
        return _r(cmd, Status.SUCCESS)

    def asid_valid(self, asid: int) -> bool:
        """Hardware view: VMRUN with this ASID works only while it is in use (activated, RUNNING)."""
        return bool(self.asid_in_use >> asid & 1)
