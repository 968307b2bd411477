"""The PSP's SEV firmware: platform state, guest contexts, the ASID table and WBINVD flags.

A clean-room behavioural model of the SEV API (AMD pub. 55766) as the project's firmware
reference describes it (§1-§5). Checks run in the order the firmware applies them (platform
state, then handle, then guest state, ...), so that the status code of a command that breaks
several rules is the real one.

Platform (§1.2-1.4): UNINIT -> INIT by INIT (needs SMEE: else HWSEV_RET_PLATFORM 0x13; clears
every thread's WBINVD_DONE and marks every ASID dirty, so a DF_FLUSH must follow before any
ACTIVATE); LAUNCH_START makes it WORKING; the last DECOMMISSION returns it to INIT; SHUTDOWN
returns it to UNINIT from anywhere. DF_FLUSH is accepted in INIT and WORKING (API 0.17 table).

ASIDs (§3): one state per ASID (clean / allocated / in use / dirty; a single cache domain, so
the per-CCX dimension collapses). ACTIVATE reserves a clean ASID (pending) or makes it valid
(active, for RUNNING guests); LAUNCH_FINISH turns pending into active; DEACTIVATE makes an
in-use ASID dirty and clears WBINVD_DONE on every thread, or an allocated one clean again.
DF_FLUSH cleans every dirty ASID only when every thread enabled at boot has WBINVD_DONE,
else WBINVD_REQUIRED (0x0E).

Where the part has no SEV firmware, commands never reach one: the driver answers -ENODEV.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import random
from dataclasses import dataclass, field

from kvmsev.errors import Errno
from kvmsev.firmware import aes
from kvmsev.firmware.guest import (
    MAX_TRANSPORT,
    MEASUREMENT_LEN,
    POLICY_ES,
    POLICY_NODBG,
    POLICY_NOKS,
    POLICY_RESERVED,
    SECRET_HEADER_LEN,
    Activation,
    GuestContext,
    GuestState,
    Session,
    measure,
    secret_header_mac,
)
from kvmsev.firmware.status import Command, Status
from kvmsev.hw.memory import PAGE_SIZE, PhysicalMemory

MAX_HANDLES = 1024
VMSA_SIZE = 4096
_EIO = -int(Errno.EIO)
_ENODEV = -int(Errno.ENODEV)


class PlatformState(enum.IntEnum):
    UNINIT = 0
    INIT = 1
    WORKING = 2


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command as the driver saw it: ``ret`` is the driver's return (0, -EIO, -ENODEV),
    ``status`` the firmware code (None when the firmware was never reached), ``out`` what the
    firmware wrote back (handle, measurement, status fields, required length)."""

    command: Command
    ret: int
    status: Status | None
    out: object = None

    @property
    def ok(self) -> bool:
        return self.ret == 0

    @property
    def code(self) -> int:
        """The value Linux stores in ``*error``: the status, or 0 when never reached."""
        return 0 if self.status is None else int(self.status)

    def as_dict(self) -> dict[str, object]:
        return {
            "cmd": self.command.name,
            "ret": self.ret,
            "status": None if self.status is None else self.status.name,
            "code": None if self.status is None else int(self.status),
        }


_RESULTS: dict[tuple[Command, Status], CommandResult] = {}


def _r(command: Command, status: Status, out: object = None) -> CommandResult:
    """Results without payload are interned: the hot paths allocate nothing."""
    if out is not None:
        return CommandResult(command, 0 if status is Status.SUCCESS else _EIO, status, out)
    key = (command, status)
    cached = _RESULTS.get(key)
    if cached is None:
        cached = _RESULTS[key] = CommandResult(command, 0 if status is Status.SUCCESS else _EIO, status)
    return cached


def keystream(vek: bytes, pfn: int) -> bytes:
    """The memory controller's per-page transform under a guest key.

    Real hardware uses AES with a physical-address tweak; the model needs only that the same
    key and page give the same bytes, and different ones do not.
    """
    return hashlib.shake_256(vek + pfn.to_bytes(8, "little")).digest(PAGE_SIZE)


def _xor_page_range(mem: PhysicalMemory, vek: bytes, paddr: int, length: int, data: bytes) -> bytes:
    out = bytearray(length)
    pos = 0
    while pos < length:
        pfn, offset = divmod(paddr + pos, PAGE_SIZE)
        take = min(length - pos, PAGE_SIZE - offset)
        stream = keystream(vek, pfn)[offset : offset + take]
        mixed = int.from_bytes(data[pos : pos + take], "little") ^ int.from_bytes(stream, "little")
        out[pos : pos + take] = mixed.to_bytes(take, "little")
        pos += take
    return bytes(out)


@dataclass(slots=True)
class Psp:
    """The SEV firmware of one platform (its state survives ``kvm_amd`` reloads)."""

    present: bool
    mem_encrypt_enabled: bool
    enabled_threads: int
    max_asid: int = 0
    min_sev_asid: int = 0
    api: tuple[int, int, int] = (0, 24, 0)
    memory: PhysicalMemory = field(default_factory=PhysicalMemory)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
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
            return CommandResult(command, _ENODEV, None)
        status = self.faults.pop(command, None) if self.faults else None
        if status is None:
            return None
        self.injected = command
        return _r(command, status)

    def _guest(self, handle: int) -> GuestContext | None:
        return self.guests.get(handle)

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
        return result

    def pek_gen(self) -> CommandResult:
        """PEK_GEN: INIT only; new self-signed OCA, PEK and PDH (the platform becomes self-owned)."""
        result = self._platform_cmd(Command.PEK_GEN, (PlatformState.INIT,))
        if result.ok:
            self.owned = False
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
        return self._platform_cmd(Command.PDH_GEN, (PlatformState.INIT, PlatformState.WORKING))

    def pdh_cert_export(self) -> CommandResult:
        return self._platform_cmd(Command.PDH_CERT_EXPORT, (PlatformState.INIT, PlatformState.WORKING))

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

    # -- guest commands -----------------------------------------------------------------------
    def launch_start(self, handle: int, policy: int, session: Session | None) -> CommandResult:
        """LAUNCH_START (§2.1): on success ``out`` is the new handle."""
        if (refused := self._refused(Command.LAUNCH_START)) is not None:
            return refused
        cmd = Command.LAUNCH_START
        if self.state is PlatformState.UNINIT:
            return _r(cmd, Status.INVALID_PLATFORM_STATE)
        tek = tik = bytes(16)
        if session is not None:
            if not session.valid:
                return _r(cmd, Status.BAD_MEASUREMENT)
            if (self.api[0], self.api[1]) < ((policy >> 16) & 0xFF, (policy >> 24) & 0xFF):
                return _r(cmd, Status.POLICY_FAILURE)
            if policy & POLICY_RESERVED:
                return _r(cmd, Status.POLICY_FAILURE)
            tek, tik = session.tek, session.tik
        vek: bytes | None = None
        if handle:
            shared = self.guests.get(handle)
            if shared is None:
                return _r(cmd, Status.INVALID_GUEST)
            if shared.policy != policy or shared.policy & POLICY_NOKS:
                return _r(cmd, Status.POLICY_FAILURE)
            vek = shared.vek
        new = next((h for h in range(1, MAX_HANDLES + 1) if h not in self.guests), None)
        if new is None:
            return _r(cmd, Status.RESOURCE_LIMIT)
        if policy & POLICY_ES and not self.es_initialized:
            return _r(cmd, Status.UNSUPPORTED)
        if vek is None:
            vek = self.rng.getrandbits(128).to_bytes(16, "little")
        self.guests[new] = GuestContext(new, policy, vek, tek, tik)
        self.state = PlatformState.WORKING
        return _r(cmd, Status.SUCCESS, new)

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

    def launch_update_data(self, handle: int, paddr: int, length: int) -> CommandResult:
        """LAUNCH_UPDATE_DATA: hash the plaintext into LD, then encrypt it in place."""
        cmd = Command.LAUNCH_UPDATE_DATA
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        if paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        if length == 0 or length % 16:
            return _r(cmd, Status.INVALID_LEN)
        plaintext = self.memory.read(paddr, length)
        assert guest.ld is not None
        guest.ld.update(plaintext)
        self.memory.write(paddr, _xor_page_range(self.memory, guest.vek, paddr, length, plaintext))
        return _r(cmd, Status.SUCCESS)

    def launch_update_vmsa(self, handle: int, paddr: int, length: int) -> CommandResult:
        """LAUNCH_UPDATE_VMSA: length checked first; needs an ES policy and activation."""
        cmd = Command.LAUNCH_UPDATE_VMSA
        if (refused := self._refused(cmd)) is not None:
            return refused
        if length != VMSA_SIZE:
            return _r(cmd, Status.INVALID_LEN)
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if not guest.es:
            return _r(cmd, Status.UNSUPPORTED)
        if guest.activation is Activation.INACTIVE:
            return _r(cmd, Status.INACTIVE)
        if paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        plaintext = self.memory.read(paddr, length)
        assert guest.ld is not None
        guest.ld.update(plaintext)
        self.memory.write(paddr, _xor_page_range(self.memory, guest.vek, paddr, length, plaintext))
        return _r(cmd, Status.SUCCESS)

    def launch_measure(self, handle: int, length: int) -> CommandResult:
        """LAUNCH_MEASURE: a short buffer gets INVALID_LEN with 48 written back, no state change."""
        cmd = Command.LAUNCH_MEASURE
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LUPDATE:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if length < MEASUREMENT_LEN:
            return CommandResult(cmd, _EIO, Status.INVALID_LEN, MEASUREMENT_LEN)
        assert guest.ld is not None
        guest.digest = guest.ld.digest()
        mnonce = self.rng.getrandbits(128).to_bytes(16, "little")
        guest.measure = measure(guest.tik, self.api, guest.policy, guest.digest, mnonce) + mnonce
        guest.state = GuestState.LSECRET
        return _r(cmd, Status.SUCCESS, guest.measure)

    def launch_secret(
        self, handle: int, header: bytes, guest_paddr: int, guest_len: int, trans: bytes
    ) -> CommandResult:
        """LAUNCH_SECRET (§2.1, §5.3): header = FLAGS(4) || IV(16) || MAC(32)."""
        cmd = Command.LAUNCH_UPDATE_SECRET
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest_paddr % 16:
            return _r(cmd, Status.INVALID_ADDRESS)
        if (
            len(header) != SECRET_HEADER_LEN
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
        flags = int.from_bytes(header[:4], "little")
        iv, mac = header[4:20], header[20:52]
        assert guest.measure is not None
        expected = secret_header_mac(guest.tik, flags, iv, guest_len, trans, guest.measure[:32])
        if not hmac.compare_digest(mac, expected):
            return _r(cmd, Status.BAD_MEASUREMENT)
        if flags & 1:
            return _r(cmd, Status.UNSUPPORTED)
        plaintext = aes.ctr(guest.tek, iv, trans)
        self.memory.write(
            guest_paddr, _xor_page_range(self.memory, guest.vek, guest_paddr, guest_len, plaintext)
        )
        return _r(cmd, Status.SUCCESS)

    def launch_finish(self, handle: int) -> CommandResult:
        """LAUNCH_FINISH: needs LSECRET; a pending ASID becomes valid; -> RUNNING."""
        cmd = Command.LAUNCH_FINISH
        guest = self._working_guest(cmd, handle)
        if isinstance(guest, CommandResult):
            return guest
        if guest.state is not GuestState.LSECRET:
            return _r(cmd, Status.INVALID_GUEST_STATE)
        if guest.activation is Activation.PENDING:
            bit = 1 << guest.asid
            self.asid_allocated &= ~bit
            self.asid_in_use |= bit
            guest.activation = Activation.ACTIVE
        guest.tek = guest.tik = bytes(16)
        guest.ld = None
        guest.state = GuestState.RUNNING
        return _r(cmd, Status.SUCCESS)

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

    def dbg(self, encrypt: bool, handle: int, src: int, dst: int, length: int) -> CommandResult:
        """DBG_DECRYPT / DBG_ENCRYPT: alignment, length, handle, NODBG, activation; no state check."""
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
        if encrypt:
            self.memory.write(dst, _xor_page_range(self.memory, guest.vek, dst, length, data))
        else:
            self.memory.write(dst, _xor_page_range(self.memory, guest.vek, src, length, data))
        return _r(cmd, Status.SUCCESS)

    def asid_valid(self, asid: int) -> bool:
        """Hardware view: VMRUN with this ASID works only while it is in use (activated, RUNNING)."""
        return bool(self.asid_in_use >> asid & 1)
