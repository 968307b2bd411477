"""The ccp driver's SEV start-up at boot (drivers/crypto/ccp/sev-dev.c ``sev_pci_init``, 5.11-5.13).

When the PSP offers SEV, the driver initialises the platform at probe time, before ``kvm_amd``
loads: SEV INIT (retried once on SECURE_DATA_INVALID), then -- "to prepare for the first guest
launch" -- WBINVD on all CPUs and DF_FLUSH (``__sev_platform_init_locked``). On failure it logs
"SEV: failed to INIT error %#x" and leaves the platform UNINIT; KVM learns of that only when a
firmware command fails later. Device-prefixed ccp log lines are not modeled (they carry the PCI
address of the host's PSP).
"""

from __future__ import annotations

from kvmsev.firmware.psp import CommandResult, Psp
from kvmsev.firmware.status import Status


def sev_pci_init(psp: Psp, online_threads: int) -> list[CommandResult]:
    """Run the driver's probe-time platform initialisation; returns the commands issued."""
    if not psp.present:
        return []
    issued = [psp.init()]
    if issued[-1].status is Status.SECURE_DATA_INVALID:
        issued.append(psp.init())
    if not issued[-1].ok:
        return issued
    psp.wbinvd(online_threads)
    issued.append(psp.df_flush())
    return issued
