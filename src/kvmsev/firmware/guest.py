"""Firmware guest contexts: states, activation, policy bits, and the running launch digest.

Guest states (SEV API §5.2; firmware reference §2): UNINIT 0, LUPDATE 1, LSECRET 2, RUNNING 3,
SUPDATE 4, RUPDATE 5, SENT 6. Activation is a separate axis: inactive, pending (ACTIVATE done
before RUNNING: key installed, ASID reserved but invalid in hardware) and active (ASID valid).

Policy bits (SEV API §3): 0 NODBG, 1 NOKS, 2 ES, 3 NOSEND, 4 DOMAIN, 5 SEV, 6-15 reserved,
16-23 API_MAJOR, 24-31 API_MINOR.

Each context keeps the running launch digest; the digest and the measurement LAUNCH_MEASURE
derives from it are defined in :mod:`kvmsev.firmware.measurement`. The session and packet
formats are in :mod:`kvmsev.firmware.session`.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

POLICY_NODBG = 1 << 0
POLICY_NOKS = 1 << 1
POLICY_ES = 1 << 2
POLICY_NOSEND = 1 << 3
POLICY_DOMAIN = 1 << 4
POLICY_SEV = 1 << 5
POLICY_RESERVED = 0xFFC0

MAX_TRANSPORT = 0x5000


class GuestState(enum.IntEnum):
    UNINIT = 0
    LUPDATE = 1
    LSECRET = 2
    RUNNING = 3
    SUPDATE = 4
    RUPDATE = 5
    SENT = 6


class Activation(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(slots=True)
class GuestContext:
    handle: int
    policy: int
    vek: bytes
    tek: bytes
    tik: bytes
    state: GuestState = GuestState.LUPDATE
    asid: int = 0
    activation: Activation = Activation.INACTIVE
    ld: hashlib._Hash | None = field(default_factory=hashlib.sha256)
    digest: bytes | None = None
    measure: bytes | None = None

    @property
    def es(self) -> bool:
        return bool(self.policy & POLICY_ES)

    def __deepcopy__(self, memo: dict[int, object]) -> GuestContext:
        """Copy with the running digest duplicated (``hashlib`` objects copy, they do not pickle)."""
        return GuestContext(
            self.handle,
            self.policy,
            self.vek,
            self.tek,
            self.tik,
            self.state,
            self.asid,
            self.activation,
            None if self.ld is None else self.ld.copy(),
            self.digest,
            self.measure,
        )


class SnpGuestState(enum.IntEnum):
    """``GCTX.STATE`` (56860 table 7)."""

    INIT = 0
    LAUNCH = 1
    RUNNING = 2


@dataclass(slots=True)
class SnpContext:
    """One guest context page (GCTX) the firmware owns."""

    gctx: int
    state: SnpGuestState = SnpGuestState.INIT
    policy: int = 0
    asid: int = 0
    active: bool = False
    #: guest physical frame numbers already launched (their RMP entries are guest-owned)
    pages: set[int] = field(default_factory=set)
