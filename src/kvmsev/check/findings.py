"""What the pinned tlb_isolation and teardown findings claim about the real kernel, and on what.

Each finding lists the kernel lines its path goes through, every flush or check that could have
prevented it and why none does on that path, and the hardware behaviour it assumes where the
source cannot show it. Line numbers are from Linux 5.12.9 (arch/x86/kvm/, virt/kvm/; that stable
release already carries the 5.12.4 backport of 8727906fde6e, which v5.12 itself lacks); 5.13 has
the same code at other lines (``vcpu_enter_guest``, ``kvm_mmu_load``, ``svm_flush_tlb``,
``svm_vcpu_run``, ``pre_sev_run`` read the same in both). The text is part of the generated
``docs/check-results.md``.
"""

from __future__ import annotations

FINDINGS = """\
## What the findings claim, and on what

### Flushes a VM entry can carry (5.12 and 5.13)

Line numbers: Linux 5.12.9 (arch/x86/kvm/, virt/kvm/); 5.13 has the same code at other lines.

An SEV vCPU's VMRUN flushes its ASID's TLB entries on that CPU when `tlb_ctl` is
`TLB_CONTROL_FLUSH_ASID`. Three things set it, none clears it before VMRUN, and `svm_vcpu_run`
resets it to `TLB_CONTROL_DO_NOTHING` after every VMRUN, whatever the exit code (svm.c L3942):

1. `vcpu_enter_guest` -> `kvm_mmu_reload` (x86.c L9113): a vCPU without an MMU root -- every
   vCPU on its first KVM_RUN -- runs `kvm_mmu_load`, which ends with `kvm_mmu_load_pgd` and
   `kvm_x86_tlb_flush_current` (mmu.c L4834-4835), i.e. `svm_flush_tlb` (svm.c L3638-3653).
2. `pre_svm_run` -> `pre_sev_run` (sev.c L1702-1723): unless this CPU's `sev_vmcbs[asid]` is this
   vCPU's VMCB and `last_vmentry_cpu` is this CPU.
3. A plain (non-SEV) VM entry whose `new_asid` wraps the CPU's ASID range sets
   `TLB_CONTROL_FLUSH_ALL_ASID` (svm.c L1843-1854): every ASID on the CPU, SEV ones included. The
   range is "used up" right after `svm_hardware_enable` (svm.c L486-489), which runs on every
   online CPU when the first VM is created (`kvm_create_vm` -> `hardware_enable_all`, kvm_main.c
   L809) and on a CPU coming online while VMs exist (`kvm_starting_cpu`, L4183).

Every other source (KVM_SET_SREGS / KVM_SET_CPUID2 resetting the MMU context, INIT, memslot
changes, dirty logging, MMU notifiers, Hyper-V and PV flush hypercalls, the shrinker) only sets
`tlb_ctl` or unloads the root, and none is reachable through the moves the checker makes; leaving
them out can make the model report a stale entry the kernel would have flushed (a false alarm),
never hide one. The SEV commands flush no TLB: WBINVD and DF_FLUSH flush caches and the data
fabric. An entry abandoned before VMRUN (a pending signal at the exit-request check, x86.c L9153)
keeps its `tlb_ctl` for the next VMRUN, so it cannot lose a flush either.

All findings assume what `pre_sev_run`'s own rule presumes: TLB entries tagged with an SEV ASID
survive on a CPU until a flush of that ASID there -- through the firmware's DEACTIVATE, DF_FLUSH
and ACTIVATE and through toggling EFER.SVME (no public source says any of them flushes the TLB).

### T1: a vCPU run before LAUNCH_FINISH loses its first-run flush (every modeled kernel)

Path (`examples/early-run-lost-flush.yaml`, rows v5.12, v5.13, v5.13+both-fixes): guest a runs on
CPU 0 and is destroyed; guest c recycles its ASID, creates a vCPU and runs it on CPU 0 before
LAUNCH_FINISH; after LAUNCH_FINISH it runs it on CPU 0 again.

1. The early KVM_RUN carries the `kvm_mmu_load` request (and, depending on `sev_vmcbs`, the
   `pre_sev_run` one), and `pre_sev_run` records c's VMCB in `sev_vmcbs[asid]`.
2. VMRUN fails: ACTIVATE at LAUNCH_START leaves the ASID pending, not valid in hardware, until
   LAUNCH_FINISH (SEV firmware guest states; AMD in AMDESE/AMDSEV#125: a VMRUN with an ASID that
   is not activated "should fail to execute at all"). KVM returns KVM_EXIT_FAIL_ENTRY (svm.c
   L3388-3395); the root stays loaded; `last_vmentry_cpu` is written anyway (x86.c L9220); `tlb_ctl`
   is reset (svm.c L3942).
3. The next KVM_RUN on CPU 0 has a root (no `kvm_mmu_load`), and `pre_sev_run` finds its own VMCB
   and CPU: no request. VMRUN enters over a's entries.

Checked and not on the path: no plain VM entry (3 above), no MMU reset, no INIT. The 5.14 changes
(179c6c27bf48, `last_vmentry_cpu` = -1) only add `pre_sev_run`'s request to the failing entry.
**Rests on hardware behaviour no public source documents:** that a VMRUN failing on a not-yet-valid
ASID performs no TLB_CONTROL flush. QEMU never runs a vCPU before LAUNCH_FINISH.

### T2: a vCPU run as a plain VM before KVM_SEV_INIT (5.12 before 8727906fde6e)

Path (`examples/vcpu-before-init-5.12.yaml`, row "v5.12, two VMs, no early runs"): a plain VM p
has run a vCPU on CPU 0; guest a runs on CPU 0 with ASID 3 and is destroyed (`sev_asid_free`
clears `sev_vmcbs[asid - 1]`, sev.c L135-140, leaving CPU 0's `sev_vmcbs[3]` at a's VMCB); VM c
creates a vCPU, which gets a's VMCB page back from the page allocator, runs it as a plain VM on
CPU 0, then becomes an SEV guest with the recycled ASID 3 and runs it on CPU 0 again.

1. The plain entry loads the root (its `kvm_mmu_load` flush targets c's plain ASID) and
   `new_asid` does not wrap: p's entry already did, right after the enable.
2. KVM_SEV_INIT accepts a VM with vCPUs in 5.12 (8727906fde6e adds the -EINVAL; stable 5.12.4).
   Nothing in SEV init or launch resets the MMU context.
3. The SEV entry has a root (no `kvm_mmu_load`), and `pre_sev_run` finds the same VMCB address
   and `last_vmentry_cpu` 0 from the plain run: no request. VMRUN enters over a's entries.

Without p, c's plain entry would be CPU 0's first since the enable and flush every ASID (row
"v5.12, no early runs" holds). Closed by 8727906fde6e (row "8727906fde6e: v5.12+created-vcpus-check")
or by 179c6c27bf48 alone (`--apply off-by-one-fix`). It needs the freed VMCB page to be reused,
which the page allocator's hot-page lists make likely, not certain. **Rests on hardware behaviour
no public source documents:** that VMRUN accepts an SEV ASID in a VMCB that `init_vmcb` set up
for a plain VM (no `SVM_NESTED_CTL_SEV_ENABLE`: the vCPU existed before KVM_SEV_INIT).

### T3: a VM with a run vCPU becomes a mirror (5.13 to 5.15)

Path (`examples/mirrors/vcpu-before-mirror.yaml`, row "v5.13, two VMs, one CPU, no early runs"):
VM b creates a vCPU and runs it as a plain VM on CPU 0, becomes a mirror of SEV guest a
(`KVM_CAP_VM_COPY_ENC_CONTEXT_FROM`), runs on a's ASID and is destroyed; a new VM b does the same,
its vCPU getting the old one's VMCB page back.

1. `svm_vm_copy_asid_from` (v5.13 sev.c L1712-1776) checks the source and that the target is not
   yet an SEV guest, but not the target's vCPUs (79b111427637 adds that in 5.16), and touches no
   vCPU: a root loaded by the plain run stays loaded.
2. Destroying a mirror only drops its reference to the owner (`sev_vm_destroy`, v5.13 sev.c
   L1788-1791): no `sev_asid_free`, so CPU 0's `sev_vmcbs[asid]` keeps the old mirror's VMCB.
3. The new vCPU's plain run does not wrap CPU 0's non-SEV ASIDs (a plain entry happened there
   since the enable: a stays alive, so virtualization was never turned off), loads its root, and
   leaves `last_vmentry_cpu` 0. Its first mirror entry has no `kvm_mmu_load`, and `pre_sev_run`
   finds the same VMCB on the same CPU: no request. VMRUN enters over the old mirror's entries:
   translations through another VM's memory slots, to pages that VM has given back.

Checked and not on the path: the owner's ASID is never freed (no recycling, so no reclaim-time
anything); no plain-VM wrap; no INIT or MMU reset on the vCPU. Closed in 5.16 by 79b111427637
(`-EINVAL` once the target has vCPUs: every mirror vCPU is then new, and its first run flushes).
**Rests on hardware behaviour no public source documents:** that VMRUN accepts an SEV ASID in a
VMCB that `init_vmcb` set up for a plain VM (without `SVM_NESTED_CTL_SEV_ENABLE`). T2 needs the
same: its vCPU was also created before the VM became an SEV guest.

### Not findings any more

The model used to report that 5.13 as released runs a recycled ASID over stale TLB entries
(off-by-one + `last_vmentry_cpu` 0 + a reused VMCB page), and that 3b1902b87bf1's uninitialised
`sev_vmcbs` could do the same after a module reload. Both paths end in a vCPU's first KVM_RUN,
which `kvm_mmu_load` flushes; the model did not have that flush. Rows "v5.13, no early runs" and
"01: v5.13-zero-vmcb-array, no early runs" now hold.

### teardown_clean: a CPU offline while a guest is destroyed (firmware behaviour)

`teardown_clean@8` in most rows: a CPU other than CPU 0 goes offline, then a guest that ran is
destroyed. Its DEACTIVATE clears every thread's WBINVD_DONE flag, the offline CPU's too;
`wbinvd_on_all_cpus` reaches only online CPUs, so the unload's DF_FLUSH fails with WBINVD_REQUIRED
("SEV: DF_FLUSH failed, ret=-5, error=0xe"). Going offline itself runs WBINVD (`native_play_dead`:
`hlt_play_dead` or `acpi_idle_play_dead`; `mwait_play_dead` returns at once on AMD), so taking the
CPU offline after the destroy does not fail. This rests on the firmware's DEACTIVATE and DF_FLUSH
behaviour (SEV firmware 1.55 source), not on kernel code.

### T4: a PSP init that fails at kvm_amd load leaks the ASID bitmaps (6.16 to 7.1)

Path (`examples/kernels/psp-init-fails-at-load.yaml`, rows v6.16 ... v7.1): `rmmod kvm_amd`
(from 6.16 its teardown ends in `sev_platform_shutdown`: SHUTDOWN), CPU 1 goes offline,
`modprobe kvm_amd`, `rmmod kvm_amd`. Line numbers: Linux 6.18 arch/x86/kvm/svm/sev.c.

1. `sev_hardware_setup` allocates both bitmaps (L3056, L3060) and sets the misc capacities
   (L3069, and SEV-ES's), then at `out:` -- because the `sev` parameter is on -- calls
   `sev_platform_init` (L3116; 6f1d5a3513c2, 6.16). INIT clears every thread's WBINVD_DONE flag,
   `wbinvd_on_all_cpus` reaches only the online CPUs, and the DF_FLUSH that
   `__sev_platform_init_locked` issues next fails with WBINVD_REQUIRED ("ccp ...: SEV: DF_FLUSH
   failed 0xe, rc -5").
2. The failure turns SEV, SEV-ES and SNP off (L3117), and `sev_enabled = sev_supported` (L3156).
3. `sev_hardware_unsetup` returns at once when `sev_enabled` is false (L3172-3175): the bitmaps
   are never freed, the misc capacities are never reset (misc.capacity keeps listing `sev` and
   `sev_es` while KVM has SEV off), and the platform, left in INIT by the cached state, is not shut
   down. 7.1's `sev_hardware_setup` and `sev_hardware_unsetup` read the same.

Checked and not on the path: no other caller frees the bitmaps (`svm_hardware_unsetup` ->
`sev_hardware_unsetup` only); the allocation is not undone at `out:`. Any other INIT or DF_FLUSH
failure at load leaks the same way; the offline CPU is the one the model can produce. That DF_FLUSH
fails after INIT while a CPU is offline rests on the firmware's WBINVD_DONE tracking, as in the
teardown finding above; the leak itself is kernel code.

### Q1: ciphertext_hiding_asids with SEV-SNP not up still takes SEV-ES ASIDs (6.18 to 7.1)

A boot-time quirk, not a checker invariant (`examples/kernels/ciphertext-hiding-without-snp.yaml`;
`kvmsev boot --kernel v6.18 --profile epyc-9124 --bios sev_es_asid_space_limit=100 --param
kvm_amd.sev_snp=0 --param kvm_amd.ciphertext_hiding_asids=40`). Line numbers: Linux 6.18
arch/x86/kvm/svm/sev.c; 7.1 reads the same at L3167-3199.

1. The parameter is a plain `uint` (L61-62, 6c7c620585c6); nothing checks it against the ASID
   ranges before `sev_hardware_setup`.
2. At `out:` the value is replaced only when SNP is up: `if (sev_snp_supported)
   nr_ciphertext_hiding_asids = init_args.max_snp_asid` (L3121-3122). With `sev_snp=0`, no SNP
   host (BIOS SNP off, no RMP) or a failed SNP init, the user's N stays.
3. `if (nr_ciphertext_hiding_asids)` then sets `max_snp_asid = N`, `min_sev_es_asid = N + 1` and
   logs "SEV-SNP ciphertext hiding enabled" (L3132-3136), whatever SNP's state and whether the
   firmware has the feature (`sev_is_snp_ciphertext_hiding_supported`, L3112, only limits what is
   passed to the PSP).
4. `sev_asid_new` takes SEV-ES guests from `min_sev_es_asid..max_sev_es_asid` (L199-205): ASIDs
   1..N go unused, and N >= `min_sev_asid` - 1 leaves SEV-ES "unusable" (`-ENOTTY`, L218-219).
   The misc cgroup's `sev_es` capacity stays `min_sev_asid - 1` (L3103-3104).

Checked and not on the path: these are the only assignments of `min_sev_es_asid` and
`max_snp_asid` after L3100-3101; `sev_platform_init` failing turns SEV-ES off but does not undo
the partition (the log then shows it "disabled" with N + 1 as its start). With SNP up, the value is
`init_args.max_snp_asid`: `min(N, min_sev_asid - 1)` on firmware with ciphertext hiding, 0 without
it (the model's firmware: no SNP_FEATURE_INFO, so always 0). Rests on kernel code only.
"""
