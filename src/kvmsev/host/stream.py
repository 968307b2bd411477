"""A migration stream: what QEMU's migration channel carries between the source and the target
of an SEV guest (the VMMs' side; no kernel state)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Packet:
    header: bytes
    trans: bytes
    guest_uaddr: int
    guest_len: int


@dataclass(slots=True)
class Stream:
    """One guest's channel: the source's PDH certificate, the session and policy from
    SEND_START, and the packets SEND_UPDATE_DATA produced."""

    source_pdh: bytes = b""
    session: bytes = b""
    policy: int = 0
    packets: list[Packet] = field(default_factory=list)
    received: int = 0

    def copy(self) -> Stream:
        return Stream(self.source_pdh, self.session, self.policy, list(self.packets), self.received)
