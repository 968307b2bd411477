"""The ccp driver's SEV side (drivers/crypto/ccp/sev-dev.c, 5.11-5.13), between KVM and the PSP.

* Probe (``sev_pci_init``): when the PSP offers SEV, INIT (retried once on
  SECURE_DATA_INVALID), then -- "to prepare for the first guest launch" -- WBINVD on all CPUs and
  DF_FLUSH (``__sev_platform_init_locked``). On failure it logs "SEV: failed to INIT error %#x"
  and the platform stays UNINIT. Device-prefixed log lines are not modeled (they carry the PCI
  address of the host's PSP).
* ``sev_platform_init()`` (called by KVM_SEV_INIT): returns 0 at once when the driver's cached
  state is INIT -- the driver caches only UNINIT/INIT and never looks at WORKING -- otherwise
  runs the same sequence.
* A command that reaches the firmware returns -EIO with the status in ``*error`` when the
  status is not SUCCESS; without SEV firmware every command returns -ENODEV, ``*error``
  untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvmsev.errors import Errno
from kvmsev.firmware.psp import CommandResult, Psp
from kvmsev.firmware.status import Status


@dataclass(slots=True)
class SevDriver:
    """The driver's cached platform state (``sev->state``)."""

    initialized: bool = False


def _init_sequence(
    psp: Psp, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult:
    """``__sev_platform_init_locked``: INIT (once more on SECURE_DATA_INVALID), WBINVD, DF_FLUSH."""
    result = psp.init()
    log(result)
    if result.status is Status.SECURE_DATA_INVALID:
        result = psp.init()
        log(result)
    if not result.ok:
        return result
    wbinvd_all()
    result = psp.df_flush()
    log(result)
    return result


def sev_pci_init(psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None]) -> list[CommandResult]:
    """Probe-time platform initialisation; returns the commands issued."""
    issued: list[CommandResult] = []
    if psp.present:
        driver.initialized = _init_sequence(psp, wbinvd_all, issued.append).ok
    return issued


def sev_platform_init(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> tuple[int, int]:
    """(ret, error) as ``sev_platform_init(&error)`` returns them (-ENODEV without firmware,
    ``error`` untouched)."""
    if not psp.present:
        return -int(Errno.ENODEV), 0
    if driver.initialized:
        return 0, 0
    result = _init_sequence(psp, wbinvd_all, log)
    if result.ok:
        driver.initialized = True
    return result.ret, result.code
