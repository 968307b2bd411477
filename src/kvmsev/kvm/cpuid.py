"""KVM_GET_SUPPORTED_CPUID for leaf 0x8000001F (arch/x86/kvm/cpuid.c, svm.c, sev.c).

* Before d9db0fd6c5c9 (:attr:`CpuidMask.RAW`): ``__do_cpuid_func`` reports the host's raw leaf,
  or all zeroes when the host kernel lacks X86_FEATURE_SEV -- regardless of KVM's own settings.
* v4 04/14 as posted (:attr:`CpuidMask.V4_POSTED`): ``kvm_set_cpu_caps()`` masks the EAX word to
  SEV | SEV_ES | SME_COHERENT; the leaf is still zeroed on the host's SEV bit only.
* As merged (:attr:`CpuidMask.MASKED`): the same mask, then ``sev_set_cpu_caps()`` (called at
  the end of ``svm_set_cpu_caps()``) clears SEV unless ``sev_enabled`` and SEV_ES unless
  ``sev_es_enabled``; the leaf is zeroed unless KVM's SEV cap is set; otherwise EAX is the cap
  word and EBX, ECX, EDX stay raw.

The cap word starts from the kernel's own word 19 (``boot_cpu_data``), so bits the kernel cleared
(SMEE off) stay clear, and is ANDed with the raw CPUID (``__kvm_cpu_cap_mask``). The v4 patch's
reverse-CPUID sub-index of 1 reads CPUID(0x8000001F, 1), which returns the same values on
hardware (the leaf has no sub-leaves), so it changes nothing observable here.
The leaf is listed because KVM clamps the extended maximum to 0x8000001f (``min(eax,
0x8000001f)``) and every modeled part reports at least that.
"""

from __future__ import annotations

from kvmsev.hw import cpuid
from kvmsev.hw.cpuid import Cpuid8000001F
from kvmsev.kvm.behaviour import CpuidEbx, CpuidMask
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.state import KvmAmd

KVM_8000001F_EAX_MASK = cpuid.SEV | cpuid.SEV_ES | cpuid.SME_COHERENT
ZERO_LEAF = Cpuid8000001F(0, 0, 0, 0)


def kvm_set_cpu_caps(env: KernelEnv, kvm: KvmAmd) -> None:
    """The 0x8000001F part of ``kvm_set_cpu_caps()`` and ``sev_set_cpu_caps()``."""
    if env.behaviour.cpuid_mask is CpuidMask.RAW:
        kvm.cpu_caps_8000001f_eax = None
        return
    caps = env.features.word19 & KVM_8000001F_EAX_MASK & env.leaf.eax
    if env.behaviour.cpuid_mask is CpuidMask.MASKED:
        if not kvm.sev_enabled:
            caps &= ~cpuid.SEV
        if not kvm.sev_es_enabled:
            caps &= ~cpuid.SEV_ES
    if kvm.params.get("sev_snp", False):
        caps |= cpuid.SEV_SNP  # sev_set_cpu_caps (1dfe571c12cf, 6.11)
    kvm.cpu_caps_8000001f_eax = caps


#: EBX bits cleared by e39f00f60ebd (5.14: the physical-address reduction, 11:6) and by
#: 86c4f0d547f6 (6.1: also NumVMPL and the reserved bits, 31:12)
EBX_CLEARED = {
    CpuidEbx.RAW: 0,
    CpuidEbx.NO_PA_REDUCTION: 0x0000_0FC0,
    CpuidEbx.C_BIT_ONLY: 0xFFFF_FFC0,
}


def supported_8000001f(env: KernelEnv, kvm: KvmAmd) -> Cpuid8000001F:
    """The leaf as KVM_GET_SUPPORTED_CPUID returns it: zeroes without the SEV cap, otherwise EAX
    the cap word, EBX with the bits :data:`EBX_CLEARED` says cleared, ECX and EDX raw."""
    mode = env.behaviour.cpuid_mask
    ebx = env.leaf.ebx & ~EBX_CLEARED[env.behaviour.cpuid_ebx]
    if mode is CpuidMask.RAW:
        return env.leaf.replace(ebx=ebx) if env.features.has(cpuid.SEV) else ZERO_LEAF
    caps = kvm.cpu_caps_8000001f_eax or 0
    # v4 still zeroed the leaf on the host's bit; as merged, on KVM's own cap.
    sev_on = env.features.has(cpuid.SEV) if mode is CpuidMask.V4_POSTED else bool(caps & cpuid.SEV)
    return env.leaf.replace(eax=caps, ebx=ebx) if sev_on else ZERO_LEAF
