"""The ccp driver's SEV side (drivers/crypto/ccp/sev-dev.c, psp-dev.c; 5.12 onwards), between
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

Later kernels (:class:`CcpVersion`): from 5.17 the INIT retry on SECURE_DATA_INVALID happens in
``__sev_platform_init_locked`` for every caller (e423b9d75e77), the "SEV API" line is printed
there after a successful INIT + DF_FLUSH (b64fa5fc9f44), and the probe's failure line carries the
return code (c8341ac62bed); from 5.19 the retry is logged (a77aba310936); from 6.9 the SNP host
series' ``sev_pci_init`` prints "SEV%s API:%d.%d build:%d" once more after the INIT attempt,
whatever its outcome (1ca5614b84ee).

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
from kvmsev.firmware.status import Command, Status


@dataclass(frozen=True, slots=True)
class CcpVersion:
    """Which shape of the driver's init path the kernel has."""

    #: e423b9d75e77 "crypto: ccp - Move SEV_INIT retry for corrupted data" (5.17)
    retry_in_init: bool = False
    #: b64fa5fc9f44 "crypto: ccp - Add psp_init_on_probe module parameter" (5.17): the API line
    #: moved into ``__sev_platform_init_locked``
    api_line_in_init: bool = False
    #: c8341ac62bed "crypto: ccp - Add SEV_INIT rc error logging on init" (5.17)
    error_line_has_rc: bool = False
    #: a77aba310936 "crypto: ccp - Log when resetting PSP SEV state" (5.19)
    retry_logged: bool = False
    #: 1ca5614b84ee "crypto: ccp: Add support to initialize the AMD-SP for SEV-SNP" (6.9): the
    #: probe prints the API line again after the INIT attempt
    api_line_at_probe_end: bool = False
    #: 3f8f0133a5fc / 9770b428b1a2 (6.16): the probe does not initialise the platform (KVM does),
    #: and failures are logged where they happen ("SEV: INIT failed %#x, rc %d", "SEV: DF_FLUSH
    #: failed %#x, rc %d")
    init_by_kvm: bool = False
    #: 1ca5614b84ee (6.9): ``_sev_platform_init_locked`` runs ``__sev_snp_init_locked`` first
    snp_init: bool = False


#: dev_err text of the retry (a77aba310936; the format string has no newline)
RETRY_LINE = (
    "SEV: retrying INIT command because of SECURE_DATA_INVALID error. Retrying once to reset PSP SEV state."
)


@dataclass(slots=True)
class SevDriver:
    """The driver's state: the cached platform state (``sev->state``) and whether it set up the
    SEV device at all (``psp_master->sev_data``, which also registers ``/dev/sev``)."""

    initialized: bool = False
    dev_sev: bool = False
    #: ``CC_ATTR_HOST_SEV_SNP`` as the kernel decided it, and ``sev->snp_initialized``
    host_snp: bool = False
    snp_initialized: bool = False
    #: the PCI device the driver's log lines name
    device: str = "0000:22:00.1"
    version: CcpVersion = field(default_factory=CcpVersion)
    log: list[str] = field(default_factory=list)

    def dev_log(self, text: str) -> None:
        self.log.append(f"ccp {self.device}: {text}")


def _init_once(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult:
    """INIT; cache INIT; WBINVD on all CPUs; DF_FLUSH (the body of ``__sev_platform_init_locked``).
    From 6.16 a failing DF_FLUSH is logged here."""
    result = psp.init()
    log(result)
    if not result.ok:
        return result
    driver.initialized = True
    wbinvd_all()
    result = psp.df_flush()
    log(result)
    if not result.ok and driver.version.init_by_kvm:
        driver.dev_log(f"SEV: DF_FLUSH failed {result.code:#x}, rc {result.ret}")
    return result


#: SNP_MIN_API_MAJOR / MINOR: older firmware gets no SNP_INIT (silently)
SNP_MIN_API = (1, 51)


def _snp_init_locked(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult | None:
    """``__sev_snp_init_locked``: nothing (None) without host SNP, when already done or with
    firmware older than 1.51; else WBINVD on all CPUs, SNP_INIT(_EX), WBINVD, SNP_DF_FLUSH. From
    6.16 success is logged ("SEV-SNP API:%d.%d build:%d")."""
    if not driver.host_snp or driver.snp_initialized or psp.api[:2] < SNP_MIN_API:
        return None
    wbinvd_all()
    result = psp.snp_init()
    log(result)
    if result.ok:
        wbinvd_all()
        result = psp.snp_df_flush()
        log(result)
    if result.ok:
        driver.snp_initialized = True
        if driver.version.init_by_kvm:
            major, minor, build = psp.api
            driver.dev_log(f"SEV-SNP API:{major}.{minor} build:{build}")
    return result


def _platform_init_locked(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult:
    """``_sev_platform_init_locked`` (6.9 on): SNP first; an SNP failure is logged and the legacy
    INIT runs anyway (6.9-6.15), or it ends the init (6131e119f579, 6.16)."""
    if driver.version.snp_init and not driver.initialized:
        snp = _snp_init_locked(psp, driver, wbinvd_all, log)
        if snp is not None and not snp.ok:
            if driver.version.init_by_kvm:
                name = "SNP_INIT_EX" if snp.command is Command.SNP_INIT_EX else "SNP_INIT"
                driver.dev_log(f"SEV-SNP: {name} failed rc {snp.ret}, error {snp.code:#x}")
                return snp
            driver.dev_log(f"SEV-SNP: failed to INIT rc {snp.ret}, error {snp.code:#x}")
    return _init_locked(psp, driver, wbinvd_all, log)


def _init_locked(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> CommandResult:
    """``__sev_platform_init_locked``: from 5.17 with the retry and the API line inside."""
    result = _init_once(psp, driver, wbinvd_all, log)
    if (
        driver.version.retry_in_init
        and result.status is Status.SECURE_DATA_INVALID
        and not driver.initialized
    ):
        if driver.version.retry_logged:
            driver.dev_log(RETRY_LINE)
        result = _init_once(psp, driver, wbinvd_all, log)
    if not result.ok and not driver.initialized and driver.version.init_by_kvm:
        driver.dev_log(f"SEV: INIT failed {result.code:#x}, rc {result.ret}")
    if result.ok and driver.version.api_line_in_init:
        _api_line(psp, driver)
    return result


def _api_line(psp: Psp, driver: SevDriver) -> None:
    major, minor, build = psp.api
    driver.dev_log(f"SEV API:{major}.{minor} build:{build}")


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
    version = driver.version
    if version.init_by_kvm:
        return issued
    result = _platform_init_locked(psp, driver, wbinvd_all, issued.append)
    if not version.retry_in_init and result.status is Status.SECURE_DATA_INVALID:
        result = _init_locked(psp, driver, wbinvd_all, issued.append)
    if not result.ok:
        rc = f", rc {result.ret}" if version.error_line_has_rc else ""
        driver.dev_log(f"SEV: failed to INIT error {result.code:#x}{rc}")
    elif not version.api_line_in_init:
        _api_line(psp, driver)
    if version.api_line_at_probe_end:
        major, minor, build = psp.api
        snp = "-SNP" if driver.snp_initialized else ""
        driver.dev_log(f"SEV{snp} API:{major}.{minor} build:{build}")
    return issued


def sev_platform_shutdown(psp: Psp, driver: SevDriver, log: Callable[[CommandResult], None]) -> None:
    """``sev_platform_shutdown`` (f7b86e0e75bc, 6.16; called by kvm_amd's unload): SHUTDOWN unless
    the cached state is UNINIT; a failure is logged and the state kept."""
    if not driver.dev_sev or not driver.initialized:
        return
    result = psp.shutdown()
    log(result)
    if not result.ok:
        driver.dev_log(f"SEV: failed to SHUTDOWN error {result.code:#x}, rc {result.ret}")
        return
    driver.initialized = False


def sev_platform_init(
    psp: Psp, driver: SevDriver, wbinvd_all: Callable[[], None], log: Callable[[CommandResult], None]
) -> tuple[int, int]:
    """(ret, error) as ``sev_platform_init(&error)`` returns them (-ENODEV when the driver set up
    no SEV device, ``error`` untouched)."""
    if not driver.dev_sev:
        return -int(Errno.ENODEV), 0
    if driver.initialized:
        return 0, 0
    result = _platform_init_locked(psp, driver, wbinvd_all, log)
    return result.ret, result.code
