"""KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION (sev.c ``svm_register_enc_region``,
``svm_unregister_enc_region``, 5.12/5.13): pin a range of the VMM's memory for the guest's
lifetime, or unpin it after writing the caches back (WBINVD on all CPUs; from 6.17 WBNOINVD on
the CPUs that ran the VM).

REG_REGION: not an SEV guest -> -ENOTTY; a mirror (5.13) -> -EINVAL; a range past ULONG_MAX ->
-EINVAL; then ``sev_pin_memory``. UNREG_REGION checks the mirror first (-EINVAL), then -ENOTTY,
then the region must match exactly (-EINVAL).
"""

from __future__ import annotations

from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import EncRegion, Vm
from kvmsev.kvm.mirror import is_mirroring_enc_context
from kvmsev.kvm.sev_cmd import EINVAL, ENOTTY, ULONG_MAX, sev_pin_count, sev_unpin_memory


def register_region(env: KernelEnv, vm: Vm, addr: int, size: int) -> int:
    if not vm.active:
        return ENOTTY
    if is_mirroring_enc_context(vm):
        return EINVAL
    if addr > ULONG_MAX or size > ULONG_MAX:
        return EINVAL
    npages = sev_pin_count(env, vm, addr, size)
    if npages < 0:
        return npages
    vm.regions.append(EncRegion(addr, size, npages))
    return 0


def _writeback_caches(env: KernelEnv, vm: Vm) -> None:
    """The flush before the pages go back to the host: WBINVD on every online CPU until 6.17;
    then ``sev_writeback_caches``: WBNOINVD (a77896eea33d), on the CPUs that ran the VM only
    (6f38f8c57464)."""
    b = env.behaviour
    if not b.writeback_wbnoinvd:
        env.wbinvd_on_all_cpus()
        return
    env.wbnoinvd_on_cpus(vm.have_run_cpus if b.writeback_have_run_cpus else env.online)


def unregister_region(env: KernelEnv, vm: Vm, addr: int, size: int) -> int:
    if is_mirroring_enc_context(vm):
        return EINVAL
    if not vm.active:
        return ENOTTY
    region = next((r for r in vm.regions if r.uaddr == addr and r.size == size), None)
    if region is None:
        return EINVAL
    _writeback_caches(env, vm)
    vm.regions.remove(region)
    sev_unpin_memory(vm, region.npages)
    return 0
