"""The "KVM: SVM: Misc SEV cleanups" series as data: what each commit changed, and switches.

Fifteen commits were merged for Linux 5.13 (v5 of the series, posted 2021-04-22): the fourteen
of v4 (posted 2021-03-06) with its CPUID patch replaced, plus v5's new "Disable SEV/SEV-ES if NPT
is disabled". The v4 CPUID patch as posted is listed too, as ``cpuid-mask-v4``. Numbers are v5's.

A patch with a ``field`` can be applied to ``v5.12`` or reverted from ``v5.13``. ``kind`` says
what the commit does to behaviour: ``behaviour`` (observable change), ``refactor`` (the code
moved; the model implements both shapes and the tests show they agree) or ``cosmetic`` (nothing
for a model to represent).
"""

from __future__ import annotations

from kvmsev.errors import InputError
from kvmsev.kvm.behaviour import CpuidMask
from kvmsev.kvm.later import LATER
from kvmsev.kvm.patch import Patch

SERIES_AND_5_13: tuple[Patch, ...] = (
    Patch(
        "zero-vmcb-array",
        "01",
        "3b1902b87bf1",
        "KVM: SVM: Zero out the VMCB array used to track SEV ASID association",
        "behaviour",
        "sev_vmcbs_zeroed",
        "per-CPU sev_vmcbs allocated zeroed (kcalloc) instead of uninitialised (kmalloc_array); "
        "a garbage entry can no longer match a new VMCB and make pre_sev_run skip its flush "
        "(a vCPU's first KVM_RUN flushes in kvm_mmu_load all the same)",
    ),
    Patch(
        "free-bitmap-on-setup-failure",
        "02",
        "f31b88b35f90",
        "KVM: SVM: Free sev_asid_bitmap during init if SEV setup fails",
        "behaviour",
        "free_asid_bitmap_on_setup_failure",
        "if the reclaim bitmap allocation fails, the ASID bitmap is freed instead of kept; only "
        "visible on OOM (memory held while SEV is off; a leak once svm_sev_enabled() is gone)",
    ),
    Patch(
        "npt-required",
        "03",
        "fa13680f5668",
        "KVM: SVM: Disable SEV/SEV-ES if NPT is disabled",
        "behaviour",
        "sev_requires_npt",
        "NPT is decided before SEV setup and SEV/SEV-ES stay off without it (kvm_amd.npt=0 no "
        "longer reports SEV supported); 'Nested Paging' is now printed before the SEV lines",
    ),
    Patch(
        "move-params-to-sev-c",
        "04",
        "e8126bdaf194",
        "KVM: SVM: Move SEV module params/variables to sev.c",
        "refactor",
        "sev_setup_called_unconditionally",
        "sev_hardware_setup() is always called and checks Kconfig, the parameter and NPT itself",
    ),
    Patch(
        "cpuid-mask",
        "05",
        "d9db0fd6c5c9",
        "KVM: SEV: Mask CPUID[0x8000001F].eax according to supported features",
        "behaviour",
        "cpuid_mask",
        "KVM_GET_SUPPORTED_CPUID 0x8000001F: EAX limited to SEV, SEV_ES, SME_COHERENT and to "
        "what KVM enabled; the whole leaf is zero when KVM's SEV is off",
        applied=CpuidMask.MASKED,
        reverted=CpuidMask.RAW,
    ),
    Patch(
        "drop-x86-sev-enabled",
        "06",
        "4daf2a1c45ac",
        "x86/sev: Drop redundant and potentially misleading 'sev_enabled'",
        "cosmetic",
        None,
        "host memory-encryption code uses sev_active(); frees the name for KVM",
    ),
    Patch(
        "append-enabled",
        "07",
        "8d364a0792dd",
        'KVM: SVM: Append "_enabled" to module-scoped SEV/SEV-ES control variables',
        "behaviour",
        "bool_sev_params",
        "sev/sev_es become bool parameters: sysfs shows Y/N instead of 1/0, and values are "
        "parsed by strtobool (sev=2 now fails the load; sev=yes now works). The commit "
        "message says no functional change; the type change is one",
    ),
    Patch(
        "kconfig-gated-params",
        "08",
        "a479c3348422",
        "KVM: SVM: Condition sev_enabled and sev_es_enabled on CONFIG_KVM_AMD_SEV=y",
        "behaviour",
        "sev_params_need_kconfig",
        "with CONFIG_KVM_AMD_SEV=n the sev/sev_es parameters no longer exist (no sysfs files; "
        "kvm_amd.sev=1 is an unknown parameter)",
    ),
    Patch(
        "enable-by-default",
        "09",
        "6c2c7bf5803c",
        "KVM: SVM: Enable SEV/SEV-ES functionality by default (when supported)",
        "behaviour",
        "sev_params_default_on",
        "sev/sev_es default to true instead of CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT",
    ),
    Patch(
        "unconditional-teardown",
        "10",
        "4cafd0c572a2",
        "KVM: SVM: Unconditionally invoke sev_hardware_teardown()",
        "refactor",
        "sev_teardown_called_unconditionally",
        "the svm_sev_enabled() guard moves from svm_hardware_teardown() into the callee",
    ),
    Patch(
        "explicit-max-asid-check",
        "11",
        "8cb756b7bdcc",
        "KVM: SVM: Explicitly check max SEV ASID during sev_hardware_setup()",
        "refactor",
        "explicit_max_asid_check",
        "if (!max_sev_asid) replaces if (!svm_sev_enabled()) inside setup",
    ),
    Patch(
        "sev-cpu-init",
        "12",
        "b95c221cac16",
        "KVM: SVM: Move SEV VMCB tracking allocation to sev.c",
        "refactor",
        "sev_cpu_init_helper",
        "sev_vmcbs allocated by the new sev_cpu_init(); svm_cpu_init() propagates its error",
    ),
    Patch(
        "drop-svm-sev-enabled",
        "13",
        "a5c1c5aad6cf",
        "KVM: SVM: Drop redundant svm_sev_enabled() helper",
        "behaviour",
        "gates_on_sev_enabled",
        "per-CPU arrays, the unload teardown and the ioctl gate key on the final sev_enabled "
        "instead of max_sev_asid != 0; differs only when setup failed after reading CPUID",
    ),
    Patch(
        "drop-flush-prototype",
        "14",
        "82b7ae0481ae",
        "KVM: SVM: Remove an unnecessary prototype declaration of sev_flush_asids()",
        "cosmetic",
        None,
        "prototype removed",
    ),
    Patch(
        "skip-unused-flush",
        "15",
        "469bb32b68d5",
        "KVM: SVM: Skip SEV cache flush if no ASIDs have been used",
        "behaviour",
        "flush_only_if_reclaim_pending",
        "WBINVD + DF_FLUSH only when some freed ASID awaits reclaim: an unused host no longer "
        "flushes (or logs 'SEV: DF_FLUSH failed') at kvm_amd unload",
    ),
    Patch(
        "cpuid-mask-v4",
        "v4 04/14",
        "(not merged)",
        "KVM: x86: Do not advertise SME, VM_PAGE_FLUSH, or unknown features",
        "behaviour",
        "cpuid_mask",
        "as posted in v4: EAX masked to SEV|SEV_ES|SME_COHERENT, but the leaf is zeroed on the "
        "host's SEV bit and KVM's module parameters are ignored (reverse-CPUID sub-index 1)",
        applied=CpuidMask.V4_POSTED,
        reverted=CpuidMask.RAW,
        group="v4",
    ),
    Patch(
        "misc-cgroup",
        "5.13",
        "7aef27f0b2a8",
        "svm/sev: Register SEV and SEV-ES ASIDs to the misc controller",
        "behaviour",
        "misc_cgroup",
        "misc cgroup resources sev/sev_es: capacities set at setup, one unit charged per guest "
        "at KVM_SEV_INIT (-EINVAL at capacity 0, -EBUSY over misc.max; both seen as -EBUSY)",
        group="5.13",
    ),
    Patch(
        "created-vcpus-check",
        "5.13",
        "8727906fde6e",
        "KVM: SVM: Do not allow SEV/SEV-ES initialization after vCPUs are created",
        "behaviour",
        "created_vcpus_check",
        "KVM_SEV_INIT / KVM_SEV_ES_INIT fail with -EINVAL once the VM has a vCPU",
        group="5.13",
    ),
    Patch(
        "es-active-on-success",
        "5.13",
        "9fa1521daafb",
        "KVM: SVM: Do not set sev->es_active until KVM_SEV_ES_INIT completes",
        "behaviour",
        "es_active_set_on_success_only",
        "a failed KVM_SEV_ES_INIT no longer leaves the VM marked SEV-ES (which made a later "
        "KVM_SEV_INIT draw from the SEV-ES ASID range)",
        group="5.13",
    ),
    Patch(
        "decommission-on-bind-failure",
        "5.13",
        "934002cd660b",
        "KVM: SVM: Call SEV Guest Decommission if ASID binding fails",
        "behaviour",
        "decommission_on_bind_failure",
        "LAUNCH_START whose ACTIVATE fails DECOMMISSIONs the new firmware context instead of leaking it",
        group="5.13",
    ),
    Patch(
        "migration-commands",
        "5.13",
        "4cfdd47d6d95",
        "KVM: SVM: Add KVM_SEV SEND_START command",
        "behaviour",
        "migration_commands",
        "KVM_SEV_SEND_START/UPDATE_DATA/FINISH/CANCEL and RECEIVE_START/UPDATE_DATA/FINISH reach the "
        "firmware instead of failing with -EINVAL (4cfdd47d6d95 and its six siblings d3d1af85e2c7, "
        "fddecf6a237e, 5569e2e7a650, af43cbbf954b, 15fb7de1a7f5, 6a443def87d2, all v5.13-rc1)",
        group="5.13",
    ),
    Patch(
        "mirror-vms",
        "5.13",
        "54526d1fd593",
        "KVM: x86: Support KVM VMs sharing SEV context",
        "behaviour",
        "mirror_vms",
        "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM: a VM shares another's ASID (no handle, no SEV commands, "
        "no cgroup charge); the owner lives until its last mirror is gone",
        group="5.13",
    ),
    Patch(
        "ccp-requires-sev-feature",
        "5.13",
        "1877c73b7c03",
        "crypto: ccp - Don't initialize SEV support without the SEV feature",
        "behaviour",
        "ccp_requires_sev_feature",
        "without X86_FEATURE_SEV (SMEE off) the ccp driver sets up no SEV device: no /dev/sev, no "
        "INIT, 'SEV: memory encryption not enabled by BIOS' in dmesg",
        group="5.13",
    ),
)

#: everything a preset is built from, in release order (later kernels: :mod:`kvmsev.kvm.later`)
PATCHES: tuple[Patch, ...] = SERIES_AND_5_13 + LATER
BY_NAME: dict[str, Patch] = {p.name: p for p in PATCHES}


def lookup(name: str, option: str) -> tuple[Patch, str]:
    """The patch called ``name`` and the behaviour field it switches."""
    patch = BY_NAME.get(name)
    if patch is None:
        known = ", ".join(BY_NAME)
        raise InputError(option, f"unknown patch {name!r} (see 'kvmsev patches'; known: {known})")
    if patch.field is None:
        raise InputError(
            option, f"{name!r} is cosmetic: the model has nothing that differs with or without it"
        )
    return patch, patch.field
