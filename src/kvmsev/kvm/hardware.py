"""Per-CPU SVM state outside SEV that still decides TLB flushes: hardware enable and the ASIDs of
non-SEV guests (arch/x86/kvm/svm/svm.c, virt/kvm/kvm_main.c; 5.12/5.13).

* ``hardware_enable_all()`` runs ``svm_hardware_enable()`` on every online CPU when the first VM
  is created (``kvm_usage_count`` 0 -> 1, from ``kvm_create_vm``), and ``hardware_disable_all()``
  undoes it when the last VM goes; a CPU coming online while VMs exist is enabled by
  ``kvm_starting_cpu()``, one going offline disabled by ``kvm_dying_cpu()``.
* ``svm_hardware_enable()`` resets the CPU's ASID allocator for non-SEV guests:
  ``asid_generation = 1``, ``max_asid = CPUID 0x8000000A EBX - 1``, ``next_asid = max_asid + 1``,
  ``min_asid = max_sev_asid + 1`` (plain guests never share an SEV ASID).
* A non-SEV VM entry (``pre_svm_run``) whose vCPU last ran elsewhere, or whose ASID belongs to an
  older generation, takes a new ASID (``new_asid``); when the CPU's range is used up --
  immediately after an enable, since ``next_asid`` starts past ``max_asid`` -- it starts a new
  generation and sets ``tlb_ctl = TLB_CONTROL_FLUSH_ALL_ASID``: that VMRUN flushes the TLB
  entries of *every* ASID on the CPU, SEV ones included.

SEV guests never take this path (``pre_sev_run`` instead), but a plain VM entry on a CPU can
flush what an SEV guest left there, so the model keeps it.
"""

from __future__ import annotations

from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vcpu
from kvmsev.kvm.state import KvmAmd


def svm_cpu_init_asids(kvm: KvmAmd, nr_cpus: int) -> None:
    """``svm_cpu_init()``: each CPU's ``svm_cpu_data`` starts zeroed (not yet enabled)."""
    kvm.asid_generation = [0] * nr_cpus
    kvm.next_asid = [0] * nr_cpus
    kvm.hardware_enabled = 0


def svm_hardware_enable(env: KernelEnv, kvm: KvmAmd, cpu: int) -> None:
    """Reset ``cpu``'s non-SEV ASID allocator: generation 1, the next allocation wraps."""
    kvm.asid_generation[cpu] = 1
    kvm.next_asid[cpu] = env.svm_nasid  # max_asid + 1
    kvm.hardware_enabled |= 1 << cpu


def svm_hardware_disable(kvm: KvmAmd, cpu: int) -> None:
    """``svm_hardware_disable()``: EFER.SVME off; nothing the model tracks changes but the mask."""
    kvm.hardware_enabled &= ~(1 << cpu)


def hardware_enable_all(env: KernelEnv, kvm: KvmAmd) -> None:
    """The first VM is being created: enable virtualization on every online CPU."""
    for cpu in env.online_cpus():
        svm_hardware_enable(env, kvm, cpu)


def hardware_disable_all(kvm: KvmAmd) -> None:
    """The last VM is gone."""
    kvm.hardware_enabled = 0


def min_asid(kvm: KvmAmd) -> int:
    """``sd->min_asid = max_sev_asid + 1``: the first ASID a non-SEV guest may use."""
    return kvm.max_sev_asid + 1


def new_asid(env: KernelEnv, kvm: KvmAmd, vcpu: Vcpu, cpu: int) -> bool:
    """``new_asid()``: give the vCPU the CPU's next ASID; True when the range wrapped and this
    VMRUN flushes every ASID on the CPU (``TLB_CONTROL_FLUSH_ALL_ASID``)."""
    wrapped = kvm.next_asid[cpu] > env.svm_nasid - 1
    if wrapped:
        kvm.asid_generation[cpu] += 1
        kvm.next_asid[cpu] = min_asid(kvm)
    vcpu.asid_generation = kvm.asid_generation[cpu]
    kvm.next_asid[cpu] += 1
    return wrapped
