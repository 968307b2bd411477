"""What changed in ``kvm_amd`` and the ccp driver's SEV support after 5.13, release by release.

Each entry is one upstream commit (or the commit that carries a small series' visible effect),
with the release it first appeared in; :mod:`kvmsev.kvm.kernels` builds each preset from the
previous one plus its release's entries, and each entry is also a ``--apply``/``--revert``
switch. Releases and hashes were read from the kernel trees of each release where one was
available (5.14, 5.15, 6.1-6.4, 6.6-6.14, 6.18, 6.19, 7.0, 7.1) and otherwise from the commits'
push notices and stable mails.
"""

from __future__ import annotations

from kvmsev.kernel.params import BoolLetters
from kvmsev.kvm.behaviour import CpuidEbx, DebugSwap, MoveEncContext, SetupLog
from kvmsev.kvm.patch import Patch


def _change(
    name: str,
    release: str,
    commit: str,
    subject: str,
    field: str,
    change: str,
    applied: object = True,
    reverted: object = False,
) -> Patch:
    return Patch(name, release, commit, subject, "behaviour", field, change, applied, reverted, group=release)


_ENTRIES: tuple[Patch, ...] = (
    Patch(
        "off-by-one-fix",
        "5.14",
        "179c6c27bf48",
        "KVM: SVM: Fix off-by-one indexing when nullifying last used SEV VMCB",
        "behaviour",
        "sev_vmcbs_clear_real_asid",
        "sev_asid_free clears sev_vmcbs[asid] on every CPU instead of sev_vmcbs[asid - 1]: a recycled "
        "ASID's first entry on each CPU gets pre_sev_run's flush request too",
        group="5.14",
    ),
    Patch(
        "last-vmentry-cpu-minus-one",
        "5.14",
        "63f5a1909f9e",
        "KVM: x86: Alert userspace that KVM_SET_CPUID{,2} after KVM_RUN is broken",
        "behaviour",
        "last_vmentry_cpu_starts_minus_one",
        "a new vCPU's last_vmentry_cpu starts at -1, so pre_sev_run also asks for a flush on its "
        "first VM entry (which kvm_mmu_load already flushes)",
        group="5.14",
    ),
    Patch(
        "migration-pin-errors",
        "5.14",
        "c7a1b2b678c5",
        "KVM: SVM: Fix sev_pin_memory() error checks in SEV migration utilities",
        "behaviour",
        "migration_pin_error_checked",
        "SEND/RECEIVE_UPDATE_DATA return the pin error instead of dereferencing it (a host oops), and "
        "a header that cannot be copied out is -EFAULT (with b4a693924aab)",
        group="5.14",
    ),
    Patch(
        "receive-start-decommission",
        "5.15",
        "f1815e0aa770",
        "KVM: SVM: fix missing sev_decommission in sev_receive_start",
        "behaviour",
        "receive_start_decommission_on_bind_failure",
        "RECEIVE_START whose ACTIVATE fails DECOMMISSIONs the new context instead of leaking it",
        group="5.15",
    ),
    Patch(
        "mirror-copies-es",
        "5.15",
        "f43c887cb7cb",
        "KVM: SEV: Update svm_vm_copy_asid_from for SEV-ES",
        "behaviour",
        "mirror_copies_es_handle_fd",
        "a mirror also gets its owner's es_active, handle and sev_fd, so a mirror of an SEV-ES guest is "
        "an SEV-ES guest",
        group="5.15",
    ),
    Patch(
        "mirror-allow-list",
        "5.15",
        "5b92b6ca92b6",
        "KVM: SEV: Allow some commands for mirror VM",
        "behaviour",
        "mirror_cmd_allow_list",
        "LAUNCH_UPDATE_VMSA, GUEST_STATUS, DBG_DECRYPT and DBG_ENCRYPT work on a mirror",
        group="5.15",
    ),
    Patch(
        "mirror-no-vcpus",
        "5.16",
        "79b111427637",
        "KVM: SEV: Disallow COPY_ENC_CONTEXT_FROM if target has created vCPUs",
        "behaviour",
        "mirror_target_no_vcpus",
        "a VM that has created a vCPU cannot become a mirror (-EINVAL): every mirror vCPU is new and "
        "flushes on its first run",
        group="5.16",
    ),
    _change(
        "asid-bitmap-real-index",
        "5.14",
        "bb2baeb214a7",
        "KVM: SVM: improve the code readability for ASID management",
        "asid_bitmap_real_index",
        "the ASID bitmaps are indexed by ASID (max_sev_asid + 1 bits); with CPUID EDX 0 the SEV range "
        "starts at 0 and the first SEV guest gets ASID 0, the host's (ACTIVATE then fails INVALID_ASID)",
    ),
    _change(
        "cpuid-ebx-pa-reduction",
        "5.14",
        "e39f00f60ebd",
        "KVM: x86: Use kernel's x86_phys_bits to handle reduced MAXPHYADDR",
        "cpuid_ebx",
        "KVM_GET_SUPPORTED_CPUID 0x8000001F EBX[11:6] (physical address reduction) reads 0",
        CpuidEbx.NO_PA_REDUCTION,
        CpuidEbx.RAW,
    ),
    _change(
        "max-vcpus-1024",
        "5.15",
        "074c82c8f7cf",
        "kvm: x86: Increase MAX_VCPUS to 1024",
        "max_vcpus",
        "a VM can create 1024 vCPUs (KVM_MAX_VCPUS; the 289th KVM_CREATE_VCPU no longer fails -EINVAL)",
        1024,
        288,
    ),
    _change(
        "move-enc-context",
        "5.16",
        "b56639318bb2",
        "KVM: SEV: Add support for SEV intra host migration",
        "move_enc_context",
        "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM moves an SEV or SEV-ES guest's ASID, handle and pinned "
        "regions to another VM of the same process and kills the source (-EIO afterwards); a source "
        "with mirrors is refused (-EBUSY, 17d44a96f000) (with 0b020f5af092 and the 5.16-rc fixes)",
        MoveEncContext.NO_MIRRORS,
        MoveEncContext.ABSENT,
    ),
    _change(
        "misc-no-rejection-log",
        "5.16",
        "b03357528fd9",
        "misc_cgroup: remove error log to avoid log flood",
        "misc_charge_rejection_logged",
        "a charge over misc.max or the capacity is no longer logged ('cgroup: charge rejected by the "
        "misc controller ...'); misc.events counts it",
        False,
        True,
    ),
    _change(
        "svm-tsc-lbrv-lines",
        "5.16",
        "f800650a4ed2",
        "KVM: x86: SVM: add module param to control TSC scaling",
        "svm_tsc_lbrv_lines",
        "parameters tsc_scaling and lbrv (4c84926e229e); 'TSC scaling supported' is printed first and "
        "'LBR virtualization supported' after vGIF",
    ),
    _change(
        "ccp-init-retry-in-init",
        "5.17",
        "e423b9d75e77",
        "crypto: ccp - Move SEV_INIT retry for corrupted data",
        "ccp_retry_in_init",
        "the INIT retry on SECURE_DATA_INVALID and the 'SEV API' line (b64fa5fc9f44) move into "
        "__sev_platform_init_locked, so an INIT that KVM_SEV_INIT triggers is retried and logged too",
    ),
    _change(
        "ccp-init-error-rc",
        "5.17",
        "c8341ac62bed",
        "crypto: ccp - Add SEV_INIT rc error logging on init",
        "ccp_init_error_logs_rc",
        "the probe's failure line reads 'SEV: failed to INIT error %#x, rc %d'",
    ),
    _change(
        "system-attributes",
        "5.17",
        "dd6e63122018",
        "KVM: x86: add system attribute to retrieve full set of supported xsave states",
        "system_attributes",
        "KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on /dev/kvm (group 0 only: any other group is "
        "-ENXIO; before, the ioctl is -EINVAL)",
    ),
    _change(
        "move-with-mirrors",
        "5.18",
        "b2125513dfc0",
        "KVM: SEV: Allow SEV intra-host migration of VM with mirrors",
        "move_enc_context",
        "a guest with mirrors can be moved; its mirrors follow it to the destination",
        MoveEncContext.WITH_MIRRORS,
        MoveEncContext.NO_MIRRORS,
    ),
    _change(
        "sme-flag-when-active",
        "5.18",
        "08f253ec3767",
        "x86/cpu: Clear SME feature flag when not in use",
        "sme_flag_needs_active_sme",
        "/proc/cpuinfo lists sme only when host SME is active (mem_encrypt=on)",
    ),
    _change(
        "ccp-init-retry-logged",
        "5.19",
        "a77aba310936",
        "crypto: ccp - Log when resetting PSP SEV state",
        "ccp_init_retry_logged",
        "the INIT retry after SECURE_DATA_INVALID is logged ('SEV: retrying INIT command because of "
        "SECURE_DATA_INVALID error. ...')",
    ),
    _change(
        "cpuid-ebx-c-bit-only",
        "6.1",
        "86c4f0d547f6",
        "KVM: x86: Mask off reserved bits in CPUID.8000001FH",
        "cpuid_ebx",
        "KVM_GET_SUPPORTED_CPUID 0x8000001F EBX keeps only the C-bit position (NumVMPL and reserved "
        "bits 31:12 read 0)",
        CpuidEbx.C_BIT_ONLY,
        CpuidEbx.NO_PA_REDUCTION,
    ),
    _change(
        "module-log-prefix",
        "6.3",
        "8d20bd638167",
        "KVM: x86: Unify pr_fmt to use module name for all KVM modules",
        "module_log_prefix",
        "sev.c and svm.c lines read 'kvm_amd: ...' ('kvm_amd: SEV supported: 509 ASIDs', 'kvm_amd: "
        "Nested Paging enabled')",
    ),
    _change(
        "update-data-len-checked",
        "6.3",
        "f94f053aa3a5",
        "KVM: SVM: Fix potential overflow in SEV's send|receive_update_data()",
        "update_data_len_checked",
        "SEND_UPDATE_DATA and RECEIVE_UPDATE_DATA refuse guest_len > PAGE_SIZE with -EINVAL; before, "
        "guest_len + offset was summed in 32 bits, so a length near 4 GiB wrapped and passed",
    ),
    _change(
        "svm-vnmi",
        "6.4",
        "fa4c027a7956",
        "KVM: x86: Add support for SVM's Virtual NMI",
        "svm_vnmi",
        "parameter vnmi; 'Virtual NMI enabled' after vGIF on parts with VNMI (Zen 4 on)",
    ),
    _change(
        "misc-current-on-root",
        "6.5",
        "e973dfe92994",
        "cgroup/misc: Expose misc.current on cgroup v2 root",
        "misc_current_on_root",
        "/sys/fs/cgroup/misc.current exists in the root cgroup too: 'sev N' and 'sev_es N' with "
        "everything charged on the host",
    ),
    _change(
        "sev-setup-ranges",
        "6.5",
        "6d1bc9754b04",
        "KVM: SVM: enhance info printk's in SEV init",
        "setup_log",
        "'SEV enabled|disabled (ASIDs %u - %u)' and 'SEV-ES enabled|disabled (ASIDs %u - %u)' "
        "replace the 'supported' lines, printed whenever the CPU has the feature",
        SetupLog.RANGES,
        SetupLog.COUNTS,
    ),
    _change(
        "sev-requires-nrips",
        "6.6",
        "80d0f521d59e",
        "KVM: SVM: Require nrips support for SEV guests (and beyond)",
        "sev_requires_nrips",
        "nrips is decided before SEV setup and SEV stays off without it (kvm_amd.nrips=0)",
    ),
    _change(
        "vmsa-guest-debug-warning",
        "6.6",
        "2837dd00f8fc",
        "KVM: SEV-ES: explicitly disable debug",
        "vmsa_guest_debug_warning",
        "LAUNCH_UPDATE_VMSA of a vCPU with KVM_SET_GUEST_DEBUG on logs 'KVM_SET_GUEST_DEBUG for "
        "SEV-ES guest is not supported' once per boot (still -EINVAL, as before)",
    ),
    _change(
        "debug-swap",
        "6.6",
        "d1f85fbe836e",
        "KVM: SEV: Enable data breakpoints in SEV-ES",
        "debug_swap",
        "parameter debug_swap (default Y), forced N unless SEV-ES is on and the CPU has DEBUG_SWAP and "
        "NO_NESTED_DATA_BP",
        DebugSwap.PARAM_ON,
        DebugSwap.ABSENT,
    ),
    _change(
        "debug-swap-default-off",
        "6.8",
        "5abf6dceb066",
        "SEV: disable SEV-ES DebugSwap by default",
        "debug_swap",
        "debug_swap defaults to N",
        DebugSwap.PARAM_OFF,
        DebugSwap.PARAM_ON,
    ),
    _change(
        "asid-unsigned",
        "6.9",
        "466eec4a22a7",
        "KVM: SVM: Use unsigned integers when dealing with ASIDs",
        "asid_unsigned",
        "the allocator's bounds are unsigned: with CPUID EDX 0 the SEV-ES range wraps and every SEV-ES "
        "guest is handed ASID 0",
    ),
    _change(
        "zero-sev-asids",
        "6.9",
        "0aa6b90ef9d7",
        "KVM: SVM: Add support for allowing zero SEV ASIDs",
        "empty_sev_range_unusable",
        "an empty SEV range (min > max) is 'unusable' in the log, gets no misc capacity, and "
        "KVM_SEV_INIT fails -ENOTTY",
    ),
    _change(
        "asid-errno",
        "6.9",
        "cc4ce37bed85",
        "KVM: SVM: Set sev->asid in sev_asid_new() instead of overloading the return",
        "asid_errno_propagated",
        "KVM_SEV_INIT returns the allocator's errno (-ENOTTY, the misc cgroup's -EINVAL/-EBUSY, -EBUSY) "
        "instead of -EBUSY for all",
    ),
    _change(
        "reinit-einval",
        "6.9",
        "fdd58834d132",
        "KVM: SVM: Return -EINVAL instead of -EBUSY on attempt to re-init SEV/SEV-ES",
        "reinit_einval",
        "KVM_SEV_INIT / ES_INIT on a VM that is already an SEV guest fails -EINVAL (was -EBUSY)",
    ),
    _change(
        "snp-host-init",
        "6.9",
        "216d106c7ff7",
        "x86/sev: Add SEV-SNP host initialization support",
        "snp_host_init",
        "the host keeps SEV_SNP only with the BIOS's RMP table (family 0x19 on), and the ccp driver "
        "runs SNP_INIT(_EX) + SNP_DF_FLUSH before the legacy INIT (1ca5614b84ee)",
    ),
    _change(
        "ccp-init-args",
        "6.9",
        "1ca5614b84ee",
        "crypto: ccp: Add support to initialize the AMD-SP for SEV-SNP",
        "init_args_api",
        "sev_platform_init takes struct sev_platform_init_args; the probe logs 'SEV API' a second time "
        "after its INIT attempt",
    ),
    _change(
        "lbrv-before-sev",
        "6.10",
        "d922056215617",
        "KVM: SEV-ES: Disallow SEV-ES guests when X86_FEATURE_LBRV is absent",
        "lbrv_before_sev",
        "the LBRV block runs before SEV setup ('LBR virtualization supported' before the SEV lines) "
        "and SEV-ES stays off without it (kvm_amd.lbrv=0)",
    ),
    _change(
        "vm-types-init2",
        "6.10",
        "4f5defae7089",
        "KVM: SEV: introduce KVM_SEV_INIT2 operation",
        "vm_types",
        "VM types (26c44aa9e076): KVM_CREATE_VM takes KVM_X86_SEV_VM (2) or KVM_X86_SEV_ES_VM (3) when "
        "KVM enabled them, KVM_CAP_VM_TYPES lists them; such a VM needs KVM_SEV_INIT2 (vmsa_features, "
        "flags, ghcb_version) before KVM_RUN, and the legacy INIT/ES_INIT refuse it (-EINVAL)",
    ),
    _change(
        "sev-dev-attr",
        "6.10",
        "ac5c48027bac",
        "KVM: SEV: publish supported VMSA features",
        "sev_dev_attr",
        "KVM_GET_DEVICE_ATTR on /dev/kvm, group KVM_X86_GRP_SEV (1), attribute "
        "KVM_X86_SEV_VMSA_FEATURES (0): the VMSA features KVM_SEV_INIT2 accepts",
    ),
    _change(
        "debug-swap-default-on",
        "6.10",
        "4dd5ecacb9a4",
        "KVM: SEV: allow SEV-ES DebugSwap again",
        "debug_swap",
        "debug_swap defaults to Y again (used only by KVM_SEV_INIT2 VMs)",
        DebugSwap.PARAM_ON,
        DebugSwap.PARAM_OFF,
    ),
    _change(
        "sev-snp",
        "6.11",
        "1dfe571c12cf",
        "KVM: SEV: Add initial SEV-SNP support",
        "sev_snp",
        "parameter sev_snp (6f627b425378); SNP on when SEV-ES is and the host has SNP; 'SEV-SNP "
        "enabled|disabled (ASIDs ...)'; KVM_X86_SNP_VM (4) and KVM_SEV_SNP_LAUNCH_START / UPDATE / "
        "FINISH (136d8bc931c8, dee5a47cc7a4, ad27ce155566); legacy commands on an SNP VM -EPERM; "
        "SNP_DF_FLUSH for recycling, SNP_DECOMMISSION at destroy",
    ),
    _change(
        "snp-start-params-first",
        "6.12",
        "e3a7792d9676",
        "kvm: svm: Fix gctx page leak on invalid inputs",
        "snp_start_params_first",
        "KVM_SEV_SNP_LAUNCH_START checks flags and policy before creating the firmware context; "
        "before, a start refused for them kept the context and every later start failed with "
        "-EINVAL",
    ),
    _change(
        "psp-init-at-kvm-load",
        "6.16",
        "6f1d5a3513c2",
        "KVM: SVM: Add support to initialize SEV/SNP functionality in KVM",
        "psp_init_at_kvm_load",
        "the ccp probe no longer runs INIT (3f8f0133a5fc); kvm_amd's setup does (with the sev "
        "parameter on), a failure turning SEV, SEV-ES and SNP off, and its unload shuts the firmware "
        "down (SHUTDOWN); init errors are logged by the driver (9770b428b1a2)",
    ),
    _change(
        "no-wbinvd-at-vm-destroy",
        "6.17",
        "7e00013bd339",
        "KVM: SVM: Remove wbinvd in sev_vm_destroy()",
        "vm_destroy_wbinvd",
        "destroying an SEV VM no longer runs WBINVD on every CPU (recycling still does)",
        False,
        True,
    ),
    _change(
        "writeback-wbnoinvd",
        "6.17",
        "a77896eea33d",
        "KVM: SEV: Prefer WBNOINVD over WBINVD for cache maintenance efficiency",
        "writeback_wbnoinvd",
        "KVM_MEMORY_ENCRYPT_UNREG_REGION writes caches back with WBNOINVD (WBINVD on CPUs without "
        "it, Zen 1), leaving them valid; ASID recycling keeps WBINVD",
    ),
    _change(
        "writeback-have-run-cpus",
        "6.17",
        "6f38f8c57464",
        "KVM: SVM: Flush cache only on CPUs running SEV guest",
        "writeback_have_run_cpus",
        "UNREG_REGION's write-back reaches only the CPUs that have entered the VM (have_run_cpus), "
        "not every online CPU",
    ),
    _change(
        "snp-policy-smt-optional",
        "6.17",
        "9f4701e05fae",
        "KVM: SVM: Allow SNP guest policy disallow running with SMT enabled",
        "snp_policy_smt_optional",
        "KVM_SEV_SNP_LAUNCH_START takes a policy with SMT (bit 16) clear; the firmware's "
        "SNP_LAUNCH_START fails it (POLICY_FAILURE) while SMT is enabled in the BIOS",
    ),
    _change(
        "snp-policy-single-socket",
        "6.17",
        "24be2b7956a5",
        "KVM: SVM: Allow SNP guest policy to specify SINGLE_SOCKET",
        "snp_policy_single_socket",
        "KVM_SEV_SNP_LAUNCH_START takes a policy with SINGLE_SOCKET (bit 20); the firmware's "
        "SNP_ACTIVATE fails it (POLICY_FAILURE) on hosts with more than one socket (--sockets 2)",
    ),
    _change(
        "kstrtobool-true-false",
        "5.19",
        "0d6ea3ac94ca",
        'lib/kstrtox.c: add "false"/"true" support to kstrtobool()',
        "bool_letters",
        "bool module parameters also take t/T and f/F as first letters (kvm_amd.sev=true works)",
        BoolLetters.TRUE_FALSE,
        BoolLetters.YES_NO,
    ),
    _change(
        "kstrtobool-enabled-disabled",
        "6.16",
        "ae5b3500856f",
        "kstrtox: add support for enabled and disabled in kstrtobool()",
        "bool_letters",
        "bool module parameters also take e/E and d/D as first letters (kvm_amd.sev=disabled works)",
        BoolLetters.ENABLED_DISABLED,
        BoolLetters.TRUE_FALSE,
    ),
    _change(
        "split-es-snp-ranges",
        "6.18",
        "d7fc7d9833f6",
        "KVM: SEV: Introduce new min,max sev_es and sev_snp asid variables",
        "split_es_snp_ranges",
        "SEV-ES and SNP ASID bounds of their own, set only when setup gets as far as SEV-ES (the log "
        "then shows '(ASIDs 0 - 0)' for a disabled SEV-ES or SNP); an empty SEV-ES range reads "
        "'unusable' and its allocations fail with -ENOTTY",
    ),
    _change(
        "snp-min-ghcb-v2",
        "6.18",
        "00f0b959ffb0",
        "KVM: SEV: Enforce minimum GHCB version requirement for SEV-SNP guests",
        "snp_min_ghcb_v2",
        "KVM_SEV_INIT2 on an SNP VM asking for GHCB version 1 fails with -EINVAL (0 still gets the "
        "default, 2)",
    ),
    _change(
        "snp-update-len-nonzero",
        "6.18",
        "5b66e335ead6",
        "KVM: SEV: Reject non-positive effective lengths during LAUNCH_UPDATE",
        "snp_update_len_nonzero",
        "KVM_SEV_SNP_LAUNCH_UPDATE with len 0 fails with -EINVAL (it did nothing and returned 0)",
    ),
    _change(
        "ciphertext-hiding-param",
        "6.18",
        "6c7c620585c6",
        "KVM: SEV: Add SEV-SNP CipherTextHiding support",
        "ciphertext_hiding_param",
        "parameter ciphertext_hiding_asids (uint, 0444): with SNP up and firmware support it is "
        "capped and sent in SNP_INIT_EX; any value left non-zero gives SNP ASIDs 1..N, SEV-ES "
        "N+1..min_sev_asid-1 and 'SEV-SNP ciphertext hiding enabled'",
    ),
    _change(
        "snp-secure-tsc",
        "6.18",
        "a311fce2b694",
        "KVM: SVM: Enable Secure TSC for SNP guests",
        "snp_secure_tsc",
        "with SNP enabled on a CPU with Secure TSC, KVM offers VMSA feature SECURE_TSC (bit 9), "
        "which KVM_SEV_INIT2 accepts for SNP VMs only",
    ),
    _change(
        "snp-policy-bits-attr",
        "6.19",
        "7a61d61396b9",
        "KVM: SEV: Publish supported SEV-SNP policy bits",
        "snp_policy_bits_attr",
        "device attribute KVM_X86_SNP_POLICY_BITS (1): the SNP policy bits the firmware and KVM "
        "support (0x1BFFFF with the modeled firmware, which has no SNP_FEATURE_INFO; 0 without "
        "SNP), which SNP_LAUNCH_START checks the policy against",
    ),
    Patch(
        "snp-move-mirror-rejected",
        "7.2",
        "6ee414078823",
        "KVM: SEV: Do not allow intra-host migration/mirroring of SNP VMs",
        "behaviour",
        "snp_move_mirror_rejected",
        "moving or mirroring an SNP VM's context fails with -EINVAL; mainline 7.2-rc4, in stable "
        "6.12.97, 6.18.40 and 7.1.5 -- in no preset (the presets are X.Y.0), apply it to model those",
        group="stable",
    ),
    _change(
        "debug-swap-param-removed",
        "7.0",
        "9587dd7a7ebd",
        "KVM: SVM: Drop the module param to control SEV-ES DebugSwap",
        "debug_swap",
        "no debug_swap parameter: DebugSwap is offered whenever SEV-ES and the CPU allow it",
        DebugSwap.NO_PARAM,
        DebugSwap.PARAM_ON,
    ),
    _change(
        "snp-update-src-aligned",
        "7.0",
        "dcbcc2323c80",
        "KVM: SEV: Document/enforce page-alignment for KVM_SEV_SNP_LAUNCH_UPDATE",
        "snp_update_src_aligned",
        "KVM_SEV_SNP_LAUNCH_UPDATE with a source address off a page boundary fails with -EINVAL "
        "(ZERO pages have no source)",
    ),
    _change(
        "snp-req-certs",
        "7.0",
        "20c3c4108d58",
        "KVM: SEV: Add KVM_SEV_SNP_ENABLE_REQ_CERTS command",
        "snp_req_certs",
        "KVM_SEV_SNP_ENABLE_REQ_CERTS (103): -EINVAL once vCPUs exist or on a non-SNP VM; device "
        "attribute KVM_X86_SEV_SNP_REQ_CERTS (2) reads 1 while SNP is enabled",
    ),
    _change(
        "vmsa-sync-rejects-launched",
        "7.1",
        "9b9f7962e3e8",
        "KVM: SEV: Reject attempts to sync VMSA of an already-launched/encrypted vCPU",
        "vmsa_sync_rejects_launched",
        "LAUNCH_UPDATE_VMSA or SNP_LAUNCH_FINISH meeting a vCPU whose VMSA is already encrypted fails "
        "with -EINVAL; before, SNP_LAUNCH_FINISH panicked the host on an RMP violation (also in "
        "stable: 6.18.35, 6.19.y and 7.0.y review queues)",
    ),
    _change(
        "pin-int-max-first",
        "7.1",
        "8acffeef5ef7",
        "KVM: SEV: Drop WARN on large size for KVM_MEMORY_ENCRYPT_REG_REGION",
        "pin_int_max_first",
        "a region of more than INT_MAX pages is -EINVAL before the RLIMIT_MEMLOCK check and without "
        "a WARNING (also in stable 5.10, 5.15, 6.1, 6.12, 6.18.24 and 6.19: apply it to model those)",
    ),
    _change(
        "dbg-piece-within-dst-page",
        "7.1",
        "78ee2d50185a",
        "KVM: SVM: Fix page overflow in sev_dbg_crypt() for ENCRYPT path",
        "dbg_piece_within_dst_page",
        "DBG_DECRYPT / DBG_ENCRYPT split at the destination's page ends too: no firmware write past "
        "the pinned destination page, no decrypt past the intermediate page of an unaligned "
        "DBG_ENCRYPT (Cc stable: in the stable series from July 2026; apply it to model those)",
    ),
    _change(
        "pin-total-pages-message",
        "7.1",
        "6d71f9349d9b",
        "KVM: SEV: Disallow pinning more pages than exist in the system",
        "pin_total_pages_message",
        "over RLIMIT_MEMLOCK the log reads 'SEV: N total pages would exceed the lock limit of L.' "
        "(the commit's own check against the host's total RAM is not modeled)",
    ),
)


def release_key(release: str) -> tuple[int, ...]:
    """``"6.10"`` -> ``(6, 10)``, so releases sort as numbers."""
    return tuple(int(part) for part in release.split("."))


def _order(patch: Patch) -> tuple[int, ...]:
    """Release order; the "stable" group (newer than every preset) last."""
    return (1_000,) if patch.group == "stable" else release_key(patch.group)


#: every later change, in release order (stable within a release)
LATER: tuple[Patch, ...] = tuple(sorted(_ENTRIES, key=_order))
