"""KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on /dev/kvm for group KVM_X86_GRP_SEV (1): what
KVM tells userspace about its SEV support (``kvm_arch_dev_ioctl`` -> ``__kvm_x86_dev_get_attr``
-> ``sev_dev_get_attr``).

* Before dd6e63122018 (5.17) /dev/kvm has no such ioctl: -EINVAL.
* From 5.17 to 6.9 only group 0 (KVM_X86_XCOMP_GUEST_SUPP) exists: any other group is -ENXIO.
* From ac5c48027bac (6.10) group 1 reaches kvm_amd's ``sev_dev_get_attr``:
  KVM_X86_SEV_VMSA_FEATURES (0) is ``sev_supported_vmsa_features``; from 7a61d61396b9 (6.19)
  KVM_X86_SNP_POLICY_BITS (1) is ``snp_supported_policy_bits``; from 20c3c4108d58 (7.0)
  KVM_X86_SEV_SNP_REQ_CERTS (2) is 1 while SNP is enabled. Another attribute is -ENXIO, as is
  every one when CONFIG_KVM_AMD_SEV is off (svm.h's stub). SEV being disabled is no error:
  the attributes read 0.

KVM_HAS_DEVICE_ATTR answers with the same code and no value. The value is copied to the
caller's ``addr`` (-EFAULT where it cannot be); the model always has somewhere to put it.
"""

from __future__ import annotations

from kvmsev.errors import Errno
from kvmsev.kernel.kconfig import KVM_AMD_SEV
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.launch import supported_vmsa_features
from kvmsev.kvm.sev_cmd import EINVAL
from kvmsev.kvm.snp import POLICY_VALID
from kvmsev.kvm.state import KvmAmd

ENXIO = -int(Errno.ENXIO)

KVM_X86_SEV_VMSA_FEATURES = 0
KVM_X86_SNP_POLICY_BITS = 1
KVM_X86_SEV_SNP_REQ_CERTS = 2


def snp_supported_policy_bits(kvm: KvmAmd) -> int:
    """``sev_get_snp_policy_bits() & KVM_SNP_POLICY_MASK_VALID`` once SNP is up, else 0. The
    modeled firmware reports no SNP_FEATURE_INFO, so the driver offers only its base bits
    (0-20), and KVM's mask leaves out MIGRATE_MA (18): 0x1BFFFF."""
    return POLICY_VALID if kvm.params.get("sev_snp", False) else 0


def sev_device_attr(env: KernelEnv, kvm: KvmAmd, attr: int) -> tuple[int, int | None]:
    """``(ret, value)`` of KVM_GET_DEVICE_ATTR for ``(KVM_X86_GRP_SEV, attr)``."""
    b = env.behaviour
    if not b.system_attributes:
        return EINVAL, None
    if not b.sev_dev_attr or not env.kconfig[KVM_AMD_SEV]:
        return ENXIO, None
    if attr == KVM_X86_SEV_VMSA_FEATURES:
        return 0, supported_vmsa_features(env, kvm)
    if attr == KVM_X86_SNP_POLICY_BITS and b.snp_policy_bits_attr:
        return 0, snp_supported_policy_bits(kvm)
    if attr == KVM_X86_SEV_SNP_REQ_CERTS and b.snp_req_certs:
        return 0, int(bool(kvm.params.get("sev_snp", False)))
    return ENXIO, None
