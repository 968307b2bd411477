"""VM types (26c44aa9e076 "KVM: SEV: define VM types for SEV and SEV-ES", 6.10) and
KVM_CAP_VM_TYPES.

``KVM_CREATE_VM``'s argument: before 6.10 any type but 0 is -EINVAL (``kvm_arch_init_vm``); from
6.10 the type must be in ``kvm_caps.supported_vm_types`` -- DEFAULT always, SEV and SEV-ES when
KVM enabled them (``sev_set_cpu_caps``); SW_PROTECTED needs CONFIG_KVM_SW_PROTECTED_VM, which
distribution kernels leave off. An SEV or SEV-ES typed VM starts with ``need_init``
(``svm_vm_init``): KVM_RUN fails -EINVAL until KVM_SEV_INIT2, and the legacy KVM_SEV_INIT /
ES_INIT refuse it (-EINVAL).
"""

from __future__ import annotations

from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.state import KvmAmd

DEFAULT_VM = 0
SW_PROTECTED_VM = 1
SEV_VM = 2
SEV_ES_VM = 3
#: 1dfe571c12cf (6.11): an SEV-SNP guest
SNP_VM = 4


def supported_vm_types(env: KernelEnv, kvm: KvmAmd) -> int | None:
    """KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES): the bitmap, or None where the capability does not
    exist (the ioctl answers 0)."""
    if not env.behaviour.vm_types:
        return None
    types = 1 << DEFAULT_VM
    if kvm.sev_enabled:
        types |= 1 << SEV_VM
    if kvm.sev_es_enabled:
        types |= 1 << SEV_ES_VM
    if kvm.params.get("sev_snp", False):
        types |= 1 << SNP_VM
    return types


def type_supported(env: KernelEnv, kvm: KvmAmd, vm_type: int) -> bool:
    """``kvm_is_vm_type_supported`` (type 0 only before 6.10)."""
    types = supported_vm_types(env, kvm)
    if types is None:
        return vm_type == DEFAULT_VM
    return 0 <= vm_type < 32 and bool(types >> vm_type & 1)
