"""The VMSA an SEV-ES vCPU is launched with when QEMU starts it: QEMU's reset state for the vCPU's
CPU model, as KVM copies it into the save area at LAUNCH_UPDATE_VMSA.

**CPU models.** The only part of the reset state that depends on the model is RDX, which holds
the CPUID Fn0000_0001 EAX signature (QEMU ``x86_cpu_reset_hold``: ``env->regs[R_EDX] =
env->cpuid_version``). :data:`QEMU_CPU_MODELS` lists the AMD EPYC models of QEMU's
``builtin_x86_defs`` (``target/i386/cpu.c``) by family, model and stepping; a model's versions
(``-v1`` ...) change features, never those three. The names are the ones sev-snp-measure
accepts (``sevsnpmeasure/vcpu_types.py``), and the tests compare every signature with its table.
The signature packs them as AMD's CPUID specification (pub. 25481, Fn0000_0001_EAX) does.

**Reset state.** The architectural reset (AMD APM vol. 2 §14.1.3) as QEMU sets it and KVM's SVM
code turns it into a VMCB save area (``init_vmcb``, ``svm_set_cr0``, ``svm_set_cr4``,
``svm_set_efer``), which ``sev_es_sync_vmsa`` copies with the general registers:

* CS selector 0xf000, attributes 0x9b (present, code, readable, accessed), limit 0xffff; the BSP
  at base 0xffff0000, IP 0xfff0. Every other vCPU starts at the firmware's SEV-ES reset block
  instead: QEMU splits its address into CS base (``addr & 0xffff0000``) and IP (``addr &
  0xffff``) (``sev_es_set_reset_vector``, ``target/i386/sev.c``), because the hypervisor can no
  longer emulate INIT-SIPI-SIPI for an AP whose registers are encrypted.
* Data segments attributes 0x93, limit 0xffff; LDTR 0x82 and TR 0x8b; GDTR and IDTR limit 0xffff.
* EFER 0x1000: SVME, which KVM always sets in the guest's EFER on SVM (``svm_set_efer``).
* CR0 0x10: ET only; reset's CD and NW are cleared by KVM (``svm_set_cr0``,
  ``KVM_X86_QUIRK_CD_NW_CLEARED``).
* CR4 0x40: MCE, taken from the host's CR4 (``svm_set_cr4`` ORs in ``X86_CR4_MCE``).
* DR6 0xffff0ff0, DR7 0x400, RFLAGS 0x2, PAT 0x0007040600070406, XCR0 0x1 (x87).
* x87 and SSE state: zero when the VM was made with KVM_SEV_ES_INIT, whose VMSA sync copies no
  FPU state (every kernel modeled here, and every released QEMU by default: ``legacy-vm-type``
  is on or ``auto``); MXCSR 0x1f80 and FCW 0x37f, the values QEMU's reset gives them (the
  FNINIT values), with KVM_SEV_INIT2 (Linux 6.10, "KVM: SEV: sync FPU and AVX state at
  LAUNCH_UPDATE_VMSA time"), which QEMU 9.1+ uses with ``legacy-vm-type=off``.
* SEV_FEATURES 0: QEMU passes no VMSA features. (Linux 6.6 and 6.7 set DebugSwap here on CPUs that
  have it; that is not modeled.)

sevctl's test data (``tests/data/vmsa0.bin``, ``vmsa1.bin``: an EPYC-Milan BSP and AP), whose
digest reproduces a launch measurement taken on real hardware, is byte for byte the
KVM_SEV_ES_INIT page built here (the tests check it); sev-snp-measure 0.0.10 and later build the
KVM_SEV_INIT2 page, 0.0.9 and earlier the KVM_SEV_ES_INIT one.
"""

from __future__ import annotations

from kvmsev.hw.vmsa import SaveArea, Segment

#: QEMU CPU model -> (family, model, stepping) (``builtin_x86_defs``, ``target/i386/cpu.c``)
QEMU_CPU_MODELS: dict[str, tuple[int, int, int]] = {
    **{name: (23, 1, 2) for name in ("EPYC", "EPYC-v1", "EPYC-v2", "EPYC-v3", "EPYC-v4", "EPYC-IBPB")},
    **{name: (23, 49, 0) for name in ("EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3")},
    **{name: (25, 1, 1) for name in ("EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2")},
    **{name: (25, 17, 0) for name in ("EPYC-Genoa", "EPYC-Genoa-v1")},
    "EPYC-Turin": (26, 0, 0),
}

#: where the BSP starts: the architectural reset vector, 16 bytes below 4 GiB
BSP_RESET_ADDR = 0xFFFF_FFF0
RESET_CS_SELECTOR = 0xF000
#: x87 control word and MXCSR as QEMU's reset sets them (``x86_cpu_reset_hold``: FNINIT's values)
FPU_RESET_FCW = 0x037F
SSE_RESET_MXCSR = 0x1F80


def cpuid_signature(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001 EAX: base family capped at 0xF with the rest in the extended family
    (bits 27:20), the model split into its low (7:4) and extended (19:16) nibbles."""
    base_family = min(family, 0xF)
    extended_family = family - 0xF if family > 0xF else 0
    return (
        (extended_family & 0xFF) << 20
        | (model >> 4 & 0xF) << 16
        | base_family << 8
        | (model & 0xF) << 4
        | stepping & 0xF
    )


def model_signature(name: str) -> int | None:
    """The signature of a QEMU CPU model, or None for a name QEMU's list does not have."""
    fms = QEMU_CPU_MODELS.get(name)
    return None if fms is None else cpuid_signature(*fms)


def reset_save_area(vcpu_sig: int, reset_addr: int = BSP_RESET_ADDR, fpu_synced: bool = False) -> SaveArea:
    """A vCPU's register state at launch: the BSP's with the default ``reset_addr``, an AP's
    with the firmware's SEV-ES reset address; ``fpu_synced`` for a VM made with KVM_SEV_INIT2."""
    data = Segment(attrib=0x93, limit=0xFFFF)
    return SaveArea(
        es=data,
        cs=Segment(RESET_CS_SELECTOR, 0x9B, 0xFFFF, reset_addr & 0xFFFF_0000),
        ss=data,
        ds=data,
        fs=data,
        gs=data,
        gdtr=Segment(limit=0xFFFF),
        ldtr=Segment(attrib=0x82, limit=0xFFFF),
        idtr=Segment(limit=0xFFFF),
        tr=Segment(attrib=0x8B, limit=0xFFFF),
        efer=0x1000,
        cr4=0x40,
        cr0=0x10,
        dr7=0x400,
        dr6=0xFFFF_0FF0,
        rflags=0x2,
        rip=reset_addr & 0xFFFF,
        g_pat=0x0007_0406_0007_0406,
        rdx=vcpu_sig,
        xcr0=0x1,
        mxcsr=SSE_RESET_MXCSR if fpu_synced else 0,
        x87_fcw=FPU_RESET_FCW if fpu_synced else 0,
    )


def reset_vmsa(vcpu_sig: int, reset_addr: int = BSP_RESET_ADDR, fpu_synced: bool = False) -> bytes:
    """The 4096-byte VMSA page of :func:`reset_save_area`."""
    return reset_save_area(vcpu_sig, reset_addr, fpu_synced).encode()
