"""A booted host: hardware, firmware, kernel, and ``kvm_amd`` when loaded.

``Host.boot()`` runs what happens between power-on and a shell prompt that matters to SEV:
the BIOS settings are already in the platform; the kernel detects CPU features; the ccp driver
initialises the SEV firmware; then ``load_kvm_amd()`` is ``modprobe kvm_amd``. Hardware and
firmware state (the PSP, WBINVD flags) survive an unload and reload; module memory does not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kvmsev.errors import Errno
from kvmsev.firmware.psp import Psp
from kvmsev.firmware.result import CommandResult
from kvmsev.host.config import HostConfig, ResolvedConfig, resolve
from kvmsev.host.stream import Stream
from kvmsev.hw import cpuid
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.hw.svm_features import SvmFeatures
from kvmsev.kernel import ccp, kconfig
from kvmsev.kernel.alloc import Allocator
from kvmsev.kernel.cpufeatures import BootCpuFeatures, detect
from kvmsev.kernel.misc_cgroup import MiscCgroup
from kvmsev.kvm import svm
from kvmsev.kvm.behaviour import Behaviour
from kvmsev.kvm.cpuid import supported_8000001f
from kvmsev.kvm.env import Garbage, KernelEnv
from kvmsev.kvm.oops import KernelOops
from kvmsev.kvm.state import KvmAmd


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What ``modprobe kvm_amd`` did; ``events`` are its firmware commands and WBINVDs."""

    loaded: bool
    error: Errno | None
    dmesg: tuple[str, ...]
    events: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class UnloadResult:
    """What ``rmmod kvm_amd`` did: flush, firmware commands, log lines, what stayed allocated."""

    flushed: bool
    firmware: tuple[dict[str, object], ...]
    wbinvd_cpus: tuple[int, ...]
    dmesg: tuple[str, ...]
    leaked: dict[str, int]
    oops: str | None

    @property
    def leaked_bytes(self) -> int:
        return sum(self.leaked.values())


def ccp_version(b: Behaviour) -> ccp.CcpVersion:
    """The ccp driver's init path as the kernel behaviour has it."""
    return ccp.CcpVersion(
        retry_in_init=b.ccp_retry_in_init,
        api_line_in_init=b.ccp_retry_in_init,
        error_line_has_rc=b.ccp_init_error_logs_rc,
        retry_logged=b.ccp_init_retry_logged,
        api_line_at_probe_end=b.init_args_api and not b.psp_init_at_kvm_load,
        init_by_kvm=b.psp_init_at_kvm_load,
        snp_init=b.snp_host_init,
    )


@dataclass(slots=True)
class Host:
    config: ResolvedConfig
    env: KernelEnv
    features: BootCpuFeatures
    boot_firmware: tuple[CommandResult, ...]
    kvm: KvmAmd | None = None
    crashed: str | None = None
    #: the VMMs' side: migration streams this host's guests were sent on, by name
    streams: dict[str, Stream] = field(default_factory=dict)

    @classmethod
    def boot(cls, config: HostConfig | ResolvedConfig) -> Host:
        resolved = config if isinstance(config, ResolvedConfig) else resolve(config)
        platform = resolved.platform
        features = detect(
            platform.leaf,
            platform.msrs,
            resolved.kconfig,
            resolved.boot_args.mem_encrypt,
            resolved.behaviour.sme_flag_needs_active_sme,
            resolved.behaviour.snp_host_init,
            resolved.profile.family,
        )
        all_threads = (1 << resolved.nr_cpus) - 1
        api = resolved.profile.sev_api
        psp = Psp(
            present=resolved.profile.sev_firmware,
            mem_encrypt_enabled=platform.msrs.mem_encrypt_enabled,
            enabled_threads=all_threads,
            max_asid=platform.leaf.ecx,
            min_sev_asid=platform.leaf.edx,
            api=(0, 24, 0) if api is None else (api.major, api.minor, api.build),
            c_bit=platform.leaf.c_bit,
            smt=platform.smt,
            sockets=resolved.source.sockets,
            rng=random.Random(resolved.source.seed),
            identity_seed=f"{resolved.profile.name}:{resolved.source.seed}".encode(),
        )
        cgroup_misc = (
            resolved.behaviour.misc_cgroup
            and resolved.kconfig[kconfig.CGROUP_MISC]
            and resolved.kconfig[kconfig.KVM_AMD_SEV]
        )
        env = KernelEnv(
            behaviour=resolved.behaviour,
            leaf=platform.leaf,
            features=features,
            kconfig=resolved.kconfig,
            alloc=Allocator(fail_sites=set(resolved.fail_alloc)),
            psp=psp,
            misc=MiscCgroup(
                enabled=cgroup_misc,
                log_rejections=resolved.behaviour.misc_charge_rejection_logged,
                current_on_root=resolved.behaviour.misc_current_on_root,
            ),
            nr_cpus=resolved.nr_cpus,
            online=all_threads,
            svm_nasid=resolved.profile.svm_nasid,
            svm=SvmFeatures(resolved.profile.svm_edx, resolved.profile.ext21_eax),
            wbnoinvd_supported=cpuid.has_wbnoinvd(resolved.profile.family, resolved.profile.model),
            garbage=Garbage(
                resolved.source.seed, {(c, i): v for c, i, v in resolved.source.sev_vmcbs_garbage}
            ),
            memlock_limit=resolved.source.memlock_limit,
            cap_ipc_lock=resolved.source.cap_ipc_lock,
        )
        env.bounce_paddr = env.pages.alloc() << 12
        env.ccp.version = ccp_version(resolved.behaviour)
        env.ccp.host_snp = features.host_snp
        boot_fw = tuple(
            ccp.sev_pci_init(
                psp,
                env.ccp,
                lambda: psp.wbinvd(env.online),
                cpu_has_sev=features.has(cpuid.SEV),
                requires_sev_feature=resolved.behaviour.ccp_requires_sev_feature,
            )
        )
        return cls(resolved, env, features, boot_fw)

    # -- kvm_amd ------------------------------------------------------------------------------
    def load_kvm_amd(self) -> LoadResult:
        """``modprobe kvm_amd`` with the command line's and ``--param`` options."""
        if self.kvm is not None:
            raise RuntimeError("kvm_amd is already loaded")
        mark = self.env.trace.mark()
        try:
            kvm, error = svm.load(self.env, list(self.config.boot_args.kvm_amd))
        except KernelOops as oops:
            self.crash(oops)
            return LoadResult(False, None, self._dmesg_since(mark), self._effects_since(mark))
        self.kvm = kvm
        return LoadResult(kvm is not None, error, self._dmesg_since(mark), self._effects_since(mark))

    def unload_kvm_amd(self) -> UnloadResult:
        """``rmmod kvm_amd``; everything the module allocated should be freed."""
        if self.kvm is None:
            raise RuntimeError("kvm_amd is not loaded")
        mark = self.env.trace.mark()
        failures = self.env.df_flush_failures
        oops: str | None = None
        try:
            svm.unload(self.env, self.kvm)
        except KernelOops as exc:
            self.crash(exc)
            oops = exc.line
        self.kvm = None
        leaked = self.env.alloc.orphan()
        if leaked:
            self.env.unclean_teardowns.append(f"kvm_amd unload left {sorted(leaked)} allocated")
        if self.env.df_flush_failures != failures:
            self.env.unclean_teardowns.append("kvm_amd unload issued a DF_FLUSH that failed")
        firmware = tuple(
            {k: v for k, v in e.items() if k != "kind"} for e in self.env.trace.since(mark, "fw")
        )
        wbinvd: set[int] = set()
        for event in self.env.trace.since(mark, "wbinvd"):
            cpus = event["cpus"]
            assert isinstance(cpus, list)
            wbinvd.update(cpus)
        return UnloadResult(
            flushed=any(e["cmd"] == "DF_FLUSH" for e in firmware),
            firmware=firmware,
            wbinvd_cpus=tuple(sorted(wbinvd)),
            dmesg=self._dmesg_since(mark),
            leaked=leaked,
            oops=oops,
        )

    def crash(self, oops: KernelOops) -> None:
        """The kernel oopsed: the calling task is killed and the host is left as it crashed."""
        self.crashed = oops.line
        self.env.trace.dmesg(oops.line)

    def _effects_since(self, mark: int) -> tuple[dict[str, object], ...]:
        return tuple(e for e in self.env.trace.since(mark) if e["kind"] != "dmesg")

    def _dmesg_since(self, mark: int) -> tuple[str, ...]:
        return tuple(str(e["text"]) for e in self.env.trace.since(mark, "dmesg"))

    # -- views --------------------------------------------------------------------------------
    def supported_cpuid_8000001f(self) -> Cpuid8000001F | None:
        """KVM_GET_SUPPORTED_CPUID's leaf, or None when /dev/kvm does not exist (not loaded)."""
        if self.kvm is None:
            return None
        return supported_8000001f(self.env, self.kvm)

    def sysfs_parameters(self) -> dict[str, str]:
        return {} if self.kvm is None else self.kvm.sysfs()

    def boot_dmesg(self) -> tuple[str, ...]:
        """What the kernel logged about memory encryption before ``kvm_amd`` was loaded: the
        early CPU setup, then the ccp driver's probe."""
        return (*self.features.boot_dmesg(), *self.env.ccp.log)
