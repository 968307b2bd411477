"""The ccp driver's SEV side (drivers/crypto/ccp/sev-dev.c, psp-dev.c; 5.12 and 5.13), between
KVM and the PSP.

* Probe, when the PSP offers SEV: ``sev_dev_init`` registers ``/dev/sev`` ("sev enabled"), then
  "psp enabled"; from 1877c73b7c03 ("crypto: ccp - Don't initialize SEV support without the SEV
  feature", 5.13) it first checks X86_FEATURE_SEV and, without it (memory encryption off in the
  BIOS), prints "SEV: memory encryption not enabled by BIOS" once and sets up nothing: no
  ``/dev/sev``, no INIT, and KVM's ``sev_platform_init`` gets -ENODEV.
* ``sev_pci_init``: PLATFORM_STATUS, SHUTDOWN if the firmware is not UNINIT, then
  ``sev_platform_init``; only here an INIT failing with SECURE_DATA_INVALID is retried once.
  Failure logs "SEV: failed to INIT error %#x" (the device is kept); success "SEV API:%d.%d
  build:%d". Firmware download is not modeled.
* ``__sev_platform_init_locked``: INIT, then the driver caches ``SEV_STATE_INIT`` *before* the
  WBINVD on all CPUs and the DF_FLUSH that prepare the first guest launch. A failing DF_FLUSH is
  returned, but the cached state stays INIT, so every later ``sev_platform_init`` (KVM_SEV_INIT)
  returns 0 at once and the DF_FLUSH is never retried.
* ``sev_platform_init()`` (KVM_SEV_INIT): 0 at once when the cached state is INIT -- the driver
  caches only UNINIT/INIT and never looks at WORKING -- otherwise the same sequence, no retry.

Log lines are the driver's ``dev_*`` lines, prefixed by the PSP's PCI device as the kernel prints
them ("ccp 0000:22:00.1: ..."; the address is the profile's). A command that reaches the firmware
returns -EIO with the status in ``*error`` when the status is not SUCCESS; without SEV firmware
every command returns -ENODEV, ``*error`` untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kvmsev.errors import Errno
from kvmsev.firmware.psp import Psp
from kvmsev.firmware.result import CommandResult
from kvmsev.firmware.status import Status


@dataclass(slots=True)
class SevDriver:
    """The driver's state: the cached platform state (``sev->state``) and whether it set up the
    SEV device at all (``psp_master->sev_data``, which also registers ``/dev/sev``)."""

    initialized: bool = False
    dev_sev: bool = False
    #: the PCI device the driver's log lines name
    device: str = "0000:22:00.1"
    log: list[str] = field(default_factory=list)

    def dev_log(self, text: str) -> None:
        self.log.append(f"ccp {self.device}: {text}")


def _init_locked(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult:
    """``__sev_platform_init_locked``: INIT; cache INIT; WBINVD on all CPUs; DF_FLUSH."""
    result = psp.init()
    log(result)
    if not result.ok:
        return result
    driver.initialized = True
    wbinvd_all()
    result = psp.df_flush()
    log(result)
    return result


def sev_pci_init(
    psp: Psp,
    driver: SevDriver,
    wbinvd_all: Callable[[], None],
    cpu_has_sev: bool,
    requires_sev_feature: bool,
) -> list[CommandResult]:
    """Probe-time setup; returns the firmware commands issued (log lines go to ``driver.log``)."""
    issued: list[CommandResult] = []
    if not psp.present:
        return issued
    if requires_sev_feature and not cpu_has_sev:
        driver.dev_log("SEV: memory encryption not enabled by BIOS")
        driver.dev_log("psp enabled")
        return issued
    driver.dev_sev = True
    driver.dev_log("sev enabled")
    driver.dev_log("psp enabled")
    status = psp.platform_status()
    issued.append(status)
    if psp.state:
        issued.append(psp.shutdown())
    result = _init_locked(psp, driver, wbinvd_all, issued.append)
    if result.status is Status.SECURE_DATA_INVALID:
        result = _init_locked(psp, driver, wbinvd_all, issued.append)
    if not result.ok:
        driver.dev_log(f"SEV: failed to INIT error {result.code:#x}")
        return issued
    major, minor, build = psp.api
    driver.dev_log(f"SEV API:{major}.{minor} build:{build}")
    return issued


def sev_platform_init(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> tuple[int, int]:
    """(ret, error) as ``sev_platform_init(&error)`` returns them (-ENODEV when the driver set up
    no SEV device, ``error`` untouched)."""
    if not driver.dev_sev:
        return -int(Errno.ENODEV), 0
    if driver.initialized:
        return 0, 0
    result = _init_locked(psp, driver, wbinvd_all, log)
    return result.ret, result.code
