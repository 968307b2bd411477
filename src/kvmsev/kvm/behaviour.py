"""Kernel behaviour as one frozen record of switches, and the named presets built from it.

Model code reads fields, never version numbers. Each field says in domain words what it changes
and which commit changed it; the patch catalogue (:mod:`kvmsev.kvm.patches`) maps the series'
patches onto these fields so that any of them can be applied to ``v5.12`` or reverted from
``v5.13`` on its own.

Four of the series' refactors (04, 10, 11, 12) move a check from one place to another. The model
implements both code shapes, selected by a field, so that a test can show over the whole
configuration space that the observable behaviour does not change -- the claim those commits
make ("No functional change intended"). Renames with nothing to represent (06, 14) have no field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

from kvmsev.kernel.params import BoolLetters


class CpuidMask(enum.Enum):
    """How KVM_GET_SUPPORTED_CPUID fills leaf 0x8000001F EAX."""

    #: Before d9db0fd6c5c9: the raw host EAX whenever the host kernel has SEV.
    RAW = "raw"
    #: v4 04/14 as posted: EAX masked to SEV|SEV_ES|SME_COHERENT, but zeroing still keyed on the
    #: host's SEV bit and the module parameters ignored (and a reverse-CPUID sub-index of 1).
    V4_POSTED = "v4-posted"
    #: d9db0fd6c5c9 as merged: masked, SEV/SEV_ES cleared unless KVM enabled them, leaf zeroed
    #: unless KVM's SEV cap is set.
    MASKED = "masked"


class CpuidEbx(enum.Enum):
    """Which bits of leaf 0x8000001F EBX KVM_GET_SUPPORTED_CPUID passes through."""

    #: up to 5.13: EBX as the host reports it
    RAW = "raw"
    #: e39f00f60ebd "KVM: x86: Use kernel's x86_phys_bits to handle reduced MAXPHYADDR" (5.14):
    #: the physical-address reduction, EBX[11:6], reads 0
    NO_PA_REDUCTION = "no-pa-reduction"
    #: 86c4f0d547f6 "KVM: x86: Mask off reserved bits in CPUID.8000001FH" (6.1): EBX[31:12]
    #: (NumVMPL and reserved) cleared too; only the C-bit position is left
    C_BIT_ONLY = "c-bit-only"


class SetupLog(enum.Enum):
    """How ``sev_hardware_setup()`` reports its result in the kernel log."""

    #: up to 6.4: "SEV supported: %u ASIDs" and "SEV-ES supported: %u ASIDs", printed only when
    #: enabled
    COUNTS = "counts"
    #: 6d1bc9754b04 "KVM: SVM: enhance info printk's in SEV init" (6.5): "SEV %s (ASIDs %u - %u)"
    #: and "SEV-ES %s (ASIDs %u - %u)", enabled or disabled, whenever the CPU has the feature
    RANGES = "ranges"


class DebugSwap(enum.Enum):
    """The SEV-ES DebugSwap VMSA feature and its ``debug_swap`` module parameter."""

    #: before d1f85fbe836e "KVM: SEV: Enable data breakpoints in SEV-ES" (6.6): no such feature
    ABSENT = "absent"
    #: 6.6: parameter, default on (forced off unless SEV-ES, DEBUG_SWAP and NO_NESTED_DATA_BP)
    PARAM_ON = "param-default-on"
    #: 5abf6dceb066 "SEV: disable SEV-ES DebugSwap by default" (6.8): default off
    PARAM_OFF = "param-default-off"
    #: 9587dd7a7ebd "KVM: SVM: Drop the module param to control SEV-ES DebugSwap" (7.0): offered
    #: whenever the hardware allows it, no parameter
    NO_PARAM = "no-param"


class MoveEncContext(enum.Enum):
    """KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM (intra-host migration)."""

    #: before b56639318bb2 "KVM: SEV: Add support for SEV intra host migration" (5.16)
    ABSENT = "absent"
    #: 5.16-5.17 (17d44a96f000 "KVM: SEV: Prohibit migration of a VM that has mirrors"): a source
    #: with mirrors is refused (-EBUSY)
    NO_MIRRORS = "refuses-mirrors"
    #: b2125513dfc0 "KVM: SEV: Allow SEV intra-host migration of VM with mirrors" (5.18): the
    #: mirrors follow their owner to the destination
    WITH_MIRRORS = "moves-mirrors"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Every behaviour switch of the modeled ``kvm_amd``."""

    #: 3b1902b87bf1 "KVM: SVM: Zero out the VMCB array used to track SEV ASID association":
    #: per-CPU ``sev_vmcbs`` comes from kcalloc (zeroed) instead of kmalloc_array (garbage).
    sev_vmcbs_zeroed: bool
    #: f31b88b35f90 "KVM: SVM: Free sev_asid_bitmap during init if SEV setup fails": when the
    #: reclaim bitmap cannot be allocated, the ASID bitmap is freed and set to NULL.
    free_asid_bitmap_on_setup_failure: bool
    #: fa13680f5668 "KVM: SVM: Disable SEV/SEV-ES if NPT is disabled": NPT is decided before SEV
    #: setup (so "Nested Paging" is printed first) and SEV setup is skipped without NPT.
    sev_requires_npt: bool
    #: e8126bdaf194 "KVM: SVM: Move SEV module params/variables to sev.c" (refactor):
    #: ``sev_hardware_setup()`` is always called and checks Kconfig/``sev`` itself.
    sev_setup_called_unconditionally: bool
    #: d9db0fd6c5c9 "KVM: SEV: Mask CPUID[0x8000001F].eax according to supported features",
    #: or the v4 patch as posted.
    cpuid_mask: CpuidMask
    #: 8d364a0792dd "KVM: SVM: Append "_enabled" to module-scoped SEV/SEV-ES control variables":
    #: besides the rename, ``sev``/``sev_es`` become ``bool`` parameters (sysfs Y/N, strtobool
    #: parsing) instead of ``int`` (sysfs 1/0, kstrtoint parsing). Its message says "No
    #: functional change intended"; the type change is visible all the same.
    bool_sev_params: bool
    #: a479c3348422 "KVM: SVM: Condition sev_enabled and sev_es_enabled on CONFIG_KVM_AMD_SEV=y":
    #: with CONFIG_KVM_AMD_SEV=n the parameters do not exist.
    sev_params_need_kconfig: bool
    #: 6c2c7bf5803c "KVM: SVM: Enable SEV/SEV-ES functionality by default (when supported)":
    #: defaults are true instead of IS_ENABLED(CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT).
    sev_params_default_on: bool
    #: 4cafd0c572a2 "KVM: SVM: Unconditionally invoke sev_hardware_teardown()" (refactor): the
    #: guard moves from the caller into the function.
    sev_teardown_called_unconditionally: bool
    #: 8cb756b7bdcc "KVM: SVM: Explicitly check max SEV ASID during sev_hardware_setup()"
    #: (refactor): ``if (!max_sev_asid)`` replaces ``if (!svm_sev_enabled())``.
    explicit_max_asid_check: bool
    #: b95c221cac16 "KVM: SVM: Move SEV VMCB tracking allocation to sev.c" (refactor): the
    #: per-CPU array is allocated by ``sev_cpu_init()`` and its error code propagated.
    sev_cpu_init_helper: bool
    #: a5c1c5aad6cf "KVM: SVM: Drop redundant svm_sev_enabled() helper": per-CPU array
    #: allocation, unload teardown and the ioctl gate test the final ``sev_enabled`` instead of
    #: ``max_sev_asid != 0`` (differs when CPUID had ASIDs but setup failed).
    gates_on_sev_enabled: bool
    #: 469bb32b68d5 "KVM: SVM: Skip SEV cache flush if no ASIDs have been used": WBINVD +
    #: DF_FLUSH only when the reclaim bitmap has a set bit (and the unload flush runs before the
    #: bitmaps are freed).
    flush_only_if_reclaim_pending: bool
    #: 7aef27f0b2a8 "svm/sev: Register SEV and SEV-ES ASIDs to the misc controller" (5.13, not
    #: part of the series): capacities ``sev``/``sev_es`` set at setup and reset at teardown.
    misc_cgroup: bool
    #: 179c6c27bf48 "KVM: SVM: Fix off-by-one indexing when nullifying last used SEV VMCB"
    #: (5.14, Cc stable): ``sev_asid_free`` clears ``sev_vmcbs[asid]``, not ``[asid - 1]``.
    sev_vmcbs_clear_real_asid: bool = False
    #: "KVM: x86: Alert userspace that KVM_SET_CPUID{,2} after KVM_RUN is broken" (5.14): a new
    #: vCPU's ``last_vmentry_cpu`` starts at -1 instead of 0, so its first entry always flushes.
    last_vmentry_cpu_starts_minus_one: bool = False
    #: ``KVM_MAX_VCPUS`` (arch/x86/include/asm/kvm_host.h): KVM_CREATE_VCPU fails -EINVAL once a
    #: VM has created this many (``kvm_vm_ioctl_create_vcpu``). 288 up to 5.14; 1024 from
    #: 074c82c8f7cf "kvm: x86: Increase MAX_VCPUS to 1024" (5.15). From f10a570b093e (6.7) it is
    #: CONFIG_KVM_MAX_NR_VCPUS, whose default stays 1024 (4096 only with CONFIG_MAXSMP).
    max_vcpus: int = 288
    #: 934002cd660b "KVM: SVM: Call SEV Guest Decommission if ASID binding fails" (5.13-rc;
    #: for 5.12.y a backport went to stable on 2021-06-24, "[PATCH 5.12 v2]", so 5.12.9 still
    #: lacks it): a firmware context whose ACTIVATE failed is DECOMMISSIONed instead of leaked.
    decommission_on_bind_failure: bool = False
    #: 8727906fde6e "KVM: SVM: Do not allow SEV/SEV-ES initialization after vCPUs are created"
    #: (5.13 merge window; stable backports dated 2021-05-12): KVM_SEV_{ES_,}INIT -> -EINVAL
    #: once a vCPU exists.
    created_vcpus_check: bool = False
    #: 9fa1521daafb "KVM: SVM: Do not set sev->es_active until KVM_SEV_ES_INIT completes"
    #: (same window): before it, KVM_SEV_ES_INIT sets ``es_active`` before anything is checked
    #: and never clears it, so a failed ES_INIT leaves the VM "ES" for a later plain INIT.
    es_active_set_on_success_only: bool = False
    #: The live-migration commands (5.13-rc1): 4cfdd47d6d95 SEND_START, d3d1af85e2c7
    #: SEND_UPDATE_DATA, fddecf6a237e SEND_FINISH, 5569e2e7a650 SEND_CANCEL, af43cbbf954b
    #: RECEIVE_START, 15fb7de1a7f5 RECEIVE_UPDATE_DATA, 6a443def87d2 RECEIVE_FINISH; before them the
    #: dispatcher answers -EINVAL.
    migration_commands: bool = False
    #: 54526d1fd593 "KVM: x86: Support KVM VMs sharing SEV context" (5.13-rc1):
    #: KVM_CAP_VM_COPY_ENC_CONTEXT_FROM makes a VM a mirror of another's ASID.
    mirror_vms: bool = False
    #: 1877c73b7c03 "crypto: ccp - Don't initialize SEV support without the SEV feature"
    #: (5.13-rc1): without X86_FEATURE_SEV the ccp driver sets up no SEV device (no /dev/sev, no
    #: INIT) and logs "SEV: memory encryption not enabled by BIOS".
    ccp_requires_sev_feature: bool = False
    #: c7a1b2b678c5 "KVM: SVM: Fix sev_pin_memory() error checks in SEV migration utilities" and
    #: b4a693924aab "KVM: SVM: Return -EFAULT if copy_to_user() for SEV mig packet header fails"
    #: (5.14): a guest page that cannot be pinned is an error, not an oops; a header that cannot
    #: be copied out is -EFAULT, not a positive count.
    migration_pin_error_checked: bool = False
    #: f1815e0aa770 "KVM: SVM: fix missing sev_decommission in sev_receive_start" (5.15-rc4):
    #: RECEIVE_START whose ACTIVATE fails DECOMMISSIONs the new context instead of leaking it.
    receive_start_decommission_on_bind_failure: bool = False
    #: f43c887cb7cb "KVM: SEV: Update svm_vm_copy_asid_from for SEV-ES" (5.15-rc4): a mirror also
    #: gets its owner's es_active, handle and sev_fd (not only the ASID).
    mirror_copies_es_handle_fd: bool = False
    #: 5b92b6ca92b6 "KVM: SEV: Allow some commands for mirror VM" (5.15-rc4): LAUNCH_UPDATE_VMSA,
    #: GUEST_STATUS, DBG_DECRYPT and DBG_ENCRYPT work on a mirror; everything else stays -EINVAL.
    mirror_cmd_allow_list: bool = False
    #: 79b111427637 "KVM: SEV: Disallow COPY_ENC_CONTEXT_FROM if target has created vCPUs"
    #: (5.16-rc2): a VM that has created a vCPU cannot become a mirror (-EINVAL).
    mirror_target_no_vcpus: bool = False
    #: 08f253ec3767 "x86/cpu: Clear SME feature flag when not in use" (5.18): /proc/cpuinfo shows
    #: ``sme`` only when host SME is active
    sme_flag_needs_active_sme: bool = False
    #: b03357528fd9 "misc_cgroup: remove error log to avoid log flood" (5.16): a rejected charge is
    #: counted in misc.events instead of logged
    misc_charge_rejection_logged: bool = True
    #: a77896eea33d "KVM: SEV: Prefer WBNOINVD over WBINVD for cache maintenance efficiency" (6.17):
    #: KVM_MEMORY_ENCRYPT_UNREG_REGION writes the caches back with WBNOINVD (``sev_writeback_caches``),
    #: WBINVD only on CPUs without it; ASID recycling keeps WBINVD, which the firmware needs
    writeback_wbnoinvd: bool = False
    #: 6f38f8c57464 "KVM: SVM: Flush cache only on CPUs running SEV guest" (6.17): ``pre_sev_run``
    #: records each CPU that enters the VM (``have_run_cpus``, never cleared; a migration
    #: destination and a mirror start with an empty mask) and UNREG_REGION's write-back reaches
    #: only those CPUs instead of every online one
    writeback_have_run_cpus: bool = False
    #: 2837dd00f8fc "KVM: SEV-ES: explicitly disable debug" (6.6): LAUNCH_UPDATE_VMSA refuses a
    #: vCPU with guest debugging on before syncing it, with "KVM_SET_GUEST_DEBUG for SEV-ES guest
    #: is not supported" once per boot; before, ``sev_es_sync_vmsa`` refused it silently
    vmsa_guest_debug_warning: bool = False
    #: 9b9f7962e3e8 "KVM: SEV: Reject attempts to sync VMSA of an already-launched/encrypted vCPU"
    #: (7.1; Cc stable, in 6.18.35): ``sev_es_sync_vmsa`` refuses a vCPU whose state is already
    #: protected (-EINVAL). Before it, LAUNCH_UPDATE_VMSA re-synced and re-encrypted such a vCPU,
    #: and SNP_LAUNCH_FINISH wrote into its guest-owned VMSA page: an RMP violation that panics
    #: the host (the commit's own report)
    vmsa_sync_rejects_launched: bool = False
    #: 8acffeef5ef7 "KVM: SEV: Drop WARN on large size for KVM_MEMORY_ENCRYPT_REG_REGION" (7.1;
    #: stable 5.10, 5.15, 6.1, 6.12, 6.18.24, 6.19): ``sev_pin_memory`` refuses more than INT_MAX
    #: pages (-EINVAL) before the RLIMIT_MEMLOCK check, and without the WARN_ON_ONCE splat
    pin_int_max_first: bool = False
    #: the 7.1 series with 6d71f9349d9b "KVM: SEV: Disallow pinning more pages than exist in the
    #: system": the RLIMIT_MEMLOCK refusal prints "SEV: N total pages would exceed the lock limit of
    #: L." (7.1 source). The same commit refuses more pages than ``totalram_pages()`` (-EINVAL), which
    #: needs the host's memory size: not modeled. Which commit of the series changed the message is
    #: not pinned; 6d71f9349d9b introduced the ``total_npages`` it prints
    pin_total_pages_message: bool = False
    #: 78ee2d50185a "KVM: SVM: Fix page overflow in sev_dbg_crypt() for ENCRYPT path" (7.1, in
    #: stable): each DBG_DECRYPT / DBG_ENCRYPT piece also ends at the destination page's end, so the
    #: firmware no longer writes past the pinned page or the intermediate buffer
    dbg_piece_within_dst_page: bool = False
    #: e973dfe92994 "cgroup/misc: Expose misc.current on cgroup v2 root" (6.5): the root cgroup has
    #: ``misc.current`` too (its cftype loses CFTYPE_NOT_ON_ROOT), with the same lines as any other
    #: cgroup: every resource with a capacity or a usage, the usage being everything charged below
    misc_current_on_root: bool = False
    #: bb2baeb214a7 "KVM: SVM: improve the code readability for ASID management" (5.14): the
    #: bitmaps are indexed by ASID (``max_sev_asid + 1`` bits, bit 0 unused) instead of ASID - 1.
    asid_bitmap_real_index: bool = False
    #: 466eec4a22a7 "KVM: SVM: Use unsigned integers when dealing with ASIDs" (6.9): the search
    #: bounds are ``unsigned int`` (with CPUID EDX 0 the SEV-ES range wraps to 0..UINT_MAX)
    asid_unsigned: bool = False
    #: which bits of 0x8000001F EBX KVM_GET_SUPPORTED_CPUID reports (5.14, 6.1)
    cpuid_ebx: CpuidEbx = CpuidEbx.RAW
    #: intra-host migration (5.16, 5.18)
    move_enc_context: MoveEncContext = MoveEncContext.ABSENT
    #: "KVM: SVM: add module param to control TSC scaling" and "... LBR virtualization" (5.16):
    #: svm_hardware_setup prints "TSC scaling supported" and "LBR virtualization supported"
    svm_tsc_lbrv_lines: bool = False
    #: c8341ac62bed "crypto: ccp - Add SEV_INIT rc error logging on init" (5.17): the probe's
    #: failure line is "SEV: failed to INIT error %#x, rc %d"
    ccp_init_error_logs_rc: bool = False
    #: e423b9d75e77 "crypto: ccp - Move SEV_INIT retry for corrupted data" with b64fa5fc9f44
    #: (5.17): the INIT retry and the "SEV API" line move into ``__sev_platform_init_locked``, so
    #: an INIT that KVM_SEV_INIT triggers is retried and logged too
    ccp_retry_in_init: bool = False
    #: a77aba310936 "crypto: ccp - Log when resetting PSP SEV state" (5.19): the retry after
    #: SECURE_DATA_INVALID is logged
    ccp_init_retry_logged: bool = False
    #: 8d20bd638167 "KVM: x86: Unify pr_fmt to use module name for all KVM modules" (6.3): sev.c and
    #: svm.c lines read "kvm_amd: ..." (and the "kvm: " inside the nested and NPT lines is gone)
    module_log_prefix: bool = False
    #: f94f053aa3a5 "KVM: SVM: Fix potential overflow in SEV's send|receive_update_data()" (6.3):
    #: ``guest_len > PAGE_SIZE`` is refused before the page-crossing sum, which wraps in 32 bits
    update_data_len_checked: bool = False
    #: "KVM: SVM: Add VNMI support" series (6.4): "Virtual NMI enabled" on parts with VNMI
    svm_vnmi: bool = False
    #: how sev_hardware_setup logs its result (6.5)
    setup_log: SetupLog = SetupLog.COUNTS
    #: 80d0f521d59e "KVM: SVM: Require nrips support for SEV guests (and beyond)" (6.6)
    sev_requires_nrips: bool = False
    #: SEV-ES DebugSwap and its parameter (6.6, 6.8, 6.10, 7.0)
    debug_swap: DebugSwap = DebugSwap.ABSENT
    #: 0aa6b90ef9d7 "KVM: SVM: Add support for allowing zero SEV ASIDs" (6.9): an empty SEV range
    #: ("unusable" in the log) gets no misc capacity and KVM_SEV_INIT -ENOTTY
    empty_sev_range_unusable: bool = False
    #: cc4ce37bed85 "KVM: SVM: Set sev->asid in sev_asid_new() instead of overloading the return"
    #: (6.9): KVM_SEV_INIT returns the ASID allocator's errno instead of -EBUSY for all
    asid_errno_propagated: bool = False
    #: fdd58834d132 "KVM: SVM: Return -EINVAL instead of -EBUSY on attempt to re-init SEV/SEV-ES"
    #: (6.9)
    reinit_einval: bool = False
    #: the SEV-SNP host series' ``sev_platform_init_args`` (6.9): on success KVM_SEV_INIT leaves
    #: the caller's ``error`` field as it was; on the probe the ccp driver logs "SEV API" twice
    init_args_api: bool = False
    #: d922056215617 "KVM: SEV-ES: Disallow SEV-ES guests when X86_FEATURE_LBRV is absent" (6.10):
    #: the LBRV block runs before SEV setup, so its line comes first
    lbrv_before_sev: bool = False
    #: KVM_SEV_INIT2 and VM types (6.10: 26c44aa9e076, 4f5defae7089)
    vm_types: bool = False
    #: 216d106c7ff7 "x86/sev: Add SEV-SNP host initialization support" with the ccp SNP series
    #: (1ca5614b84ee, 6.9): the host keeps SEV_SNP only with an RMP table, and the ccp driver runs
    #: SNP_INIT before the legacy INIT
    snp_host_init: bool = False
    #: 1dfe571c12cf "KVM: SEV: Add initial SEV-SNP support" and 6f627b425378 (6.11): the
    #: ``sev_snp`` parameter, SNP VMs (type 4) and the KVM_SEV_SNP_LAUNCH_* commands
    sev_snp: bool = False
    #: 6f1d5a3513c2 "KVM: SVM: Add support to initialize SEV/SNP functionality in KVM" and
    #: 3f8f0133a5fc "crypto: ccp - Move SEV/SNP Platform initialization to KVM" (6.16): the PSP is
    #: initialised when kvm_amd loads (a failure turns SEV off) and shut down when it unloads;
    #: the ccp probe no longer runs INIT
    psp_init_at_kvm_load: bool = False
    #: 7e00013bd339 "KVM: SVM: Remove wbinvd in sev_vm_destroy()" (6.17): destroying an SEV VM no
    #: longer writes back every CPU's caches
    vm_destroy_wbinvd: bool = True
    #: d7fc7d9833f6 "KVM: SEV: Introduce new min,max sev_es and sev_snp asid variables" (6.18):
    #: SEV-ES and SNP guests draw from their own bounds, set only when setup reaches SEV-ES (so
    #: the log reads "(ASIDs 0 - 0)" when it does not), and an empty SEV-ES range reads "unusable"
    split_es_snp_ranges: bool = False
    #: 00f0b959ffb0 "KVM: SEV: Enforce minimum GHCB version requirement for SEV-SNP guests"
    #: (6.18): KVM_SEV_INIT2 for an SNP VM with ``ghcb_version`` 1 fails with -EINVAL (0 still
    #: means the default, 2)
    snp_min_ghcb_v2: bool = False
    #: 5b66e335ead6 "KVM: SEV: Reject non-positive effective lengths during LAUNCH_UPDATE" (6.18):
    #: KVM_SEV_SNP_LAUNCH_UPDATE with ``len`` 0 fails with -EINVAL; before, it populated nothing
    #: and succeeded
    snp_update_len_nonzero: bool = False
    #: a311fce2b694 "KVM: SVM: Enable Secure TSC for SNP guests" (6.18): with SNP enabled and a
    #: CPU with Secure TSC (0x8000001F EAX bit 8), ``sev_supported_vmsa_features`` also offers
    #: SVM_SEV_FEAT_SECURE_TSC (bit 9), which KVM_SEV_INIT2 takes for SNP VMs only
    snp_secure_tsc: bool = False
    #: e3a7792d9676 "kvm: svm: Fix gctx page leak on invalid inputs" (6.12):
    #: KVM_SEV_SNP_LAUNCH_START checks ``flags`` and the policy before it creates the firmware
    #: context; in 6.11 a start refused for them kept the context, so every later start failed
    #: with -EINVAL
    snp_start_params_first: bool = False
    #: dcbcc2323c80 "KVM: SEV: Document/enforce page-alignment for KVM_SEV_SNP_LAUNCH_UPDATE"
    #: (7.0): a source address (``uaddr``, for every page type but ZERO) off a page boundary fails
    #: with -EINVAL
    snp_update_src_aligned: bool = False
    #: ac5c48027bac "KVM: SEV: publish supported VMSA features" (6.10): KVM_GET_DEVICE_ATTR /
    #: KVM_HAS_DEVICE_ATTR on /dev/kvm reach ``sev_dev_get_attr`` for group KVM_X86_GRP_SEV (1),
    #: attribute KVM_X86_SEV_VMSA_FEATURES (0); before, any group but 0 is -ENXIO, and before
    #: dd6e63122018 (5.17) /dev/kvm has no such ioctl (-EINVAL)
    sev_dev_attr: bool = False
    #: dd6e63122018 "KVM: x86: add system attribute to retrieve full set of supported xsave
    #: states" (5.17): KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on /dev/kvm
    system_attributes: bool = False
    #: 7a61d61396b9 "KVM: SEV: Publish supported SEV-SNP policy bits" (6.19): attribute
    #: KVM_X86_SNP_POLICY_BITS (1), ``sev_get_snp_policy_bits() & KVM_SNP_POLICY_MASK_VALID``
    #: while SNP is enabled (0 otherwise); SNP_LAUNCH_START refuses other policy bits
    snp_policy_bits_attr: bool = False
    #: 20c3c4108d58 "KVM: SEV: Add KVM_SEV_SNP_ENABLE_REQ_CERTS command" (7.0): command 103 and
    #: attribute KVM_X86_SEV_SNP_REQ_CERTS (2), 1 while SNP is enabled
    snp_req_certs: bool = False
    #: 9f4701e05fae "KVM: SVM: Allow SNP guest policy disallow running with SMT enabled" and
    #: 24be2b7956a5 "KVM: SVM: Allow SNP guest policy to specify SINGLE_SOCKET" (6.17):
    #: SNP_LAUNCH_START no longer refuses a policy with SMT (bit 16) clear or SINGLE_SOCKET (bit
    #: 20) set; the firmware decides (by the BIOS's SMT setting and the socket count)
    snp_policy_smt_optional: bool = False
    snp_policy_single_socket: bool = False
    #: the first letters ``kstrtobool()`` accepts for bool parameters (lib/kstrtox.c; 5.19, 6.16)
    bool_letters: BoolLetters = BoolLetters.YES_NO
    #: 6ee414078823 "KVM: SEV: Do not allow intra-host migration/mirroring of SNP VMs" (7.2-rc4;
    #: backported to 6.12.97, 6.18.40 and 7.1.5): an SNP source is refused with -EINVAL
    snp_move_mirror_rejected: bool = False
    #: 6c7c620585c6 "KVM: SEV: Add SEV-SNP CipherTextHiding support" (6.18): the
    #: ``ciphertext_hiding_asids`` parameter (uint, 0444) that moves the SEV-ES range's low end
    ciphertext_hiding_param: bool = False

    def with_fields(self, **changes: object) -> Behaviour:
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out


V5_12 = Behaviour(
    sev_vmcbs_zeroed=False,
    free_asid_bitmap_on_setup_failure=False,
    sev_requires_npt=False,
    sev_setup_called_unconditionally=False,
    cpuid_mask=CpuidMask.RAW,
    bool_sev_params=False,
    sev_params_need_kconfig=False,
    sev_params_default_on=False,
    sev_teardown_called_unconditionally=False,
    explicit_max_asid_check=False,
    sev_cpu_init_helper=False,
    gates_on_sev_enabled=False,
    flush_only_if_reclaim_pending=False,
    misc_cgroup=False,
)

V5_13 = V5_12.with_fields(
    sev_vmcbs_zeroed=True,
    free_asid_bitmap_on_setup_failure=True,
    sev_requires_npt=True,
    sev_setup_called_unconditionally=True,
    cpuid_mask=CpuidMask.MASKED,
    bool_sev_params=True,
    sev_params_need_kconfig=True,
    sev_params_default_on=True,
    sev_teardown_called_unconditionally=True,
    explicit_max_asid_check=True,
    sev_cpu_init_helper=True,
    gates_on_sev_enabled=True,
    flush_only_if_reclaim_pending=True,
    misc_cgroup=True,
    decommission_on_bind_failure=True,
    created_vcpus_check=True,
    es_active_set_on_success_only=True,
    migration_commands=True,
    mirror_vms=True,
    ccp_requires_sev_feature=True,
)
