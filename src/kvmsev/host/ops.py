"""Entry points a user of the real system has, on a booted :class:`~kvmsev.host.host.Host`.

Each returns an :class:`Outcome`: what the syscall returned (``ret``: 0 or -errno), the
firmware status KVM copied back in ``kvm_sev_cmd.error`` (0 when none), and what the call
produced. Everything a real userspace could pass is answered here the way the kernel answers
it; only requests that name things which do not exist in the scenario (a VM, a vCPU, a CPU)
are refused by the scenario runner before they get here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kvmsev.errors import Errno
from kvmsev.firmware.guest import GuestState
from kvmsev.firmware.status import Command, Status
from kvmsev.host.host import Host
from kvmsev.kernel.misc_cgroup import MAX
from kvmsev.kernel.usermem import AddressSpace
from kvmsev.kvm import debugregs, dev_attr, ioctl, regions
from kvmsev.kvm import vcpu as vcpu_mod
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.sev_cmd import DEV_SEV_FD, Cmd, SevCmd

_ENOENT = -int(Errno.ENOENT)


@dataclass(slots=True)
class Outcome:
    ret: int = 0
    error: int = 0
    result: dict[str, object] = field(default_factory=dict)


def vm_of(host: Host, name: str) -> Vm | None:
    """The VM the VMM calls ``name`` (None when it has none, or has closed its fd)."""
    vm = None if host.kvm is None else host.kvm.vms.get(name)
    return None if vm is None or vm.closed else vm


def default_sev_fd(host: Host) -> int:
    """The fd userspace would pass: its /dev/sev fd when the device exists, else -1."""
    return DEV_SEV_FD if host.env.ccp.dev_sev else -1


def vm_create(host: Host, name: str, cgroup: str = "/", vm_type: int = 0) -> Outcome:
    """KVM_CREATE_VM(``vm_type``) from a process in misc cgroup ``cgroup``; without kvm_amd there
    is no /dev/kvm (-ENOENT)."""
    if host.kvm is None:
        return Outcome(_ENOENT)
    space = AddressSpace(host.env.psp.memory)
    vm = vcpu_mod.vm_create(host.env, host.kvm, name, space, host.env.misc.groups[cgroup], vm_type)
    return Outcome() if vm is not None else Outcome(-int(Errno.EINVAL))


def sev_cmd(
    host: Host,
    vm_name: str,
    cmd_id: int,
    params: Mapping[str, object],
    sev_fd: int | None = None,
    data_fault: bool = False,
) -> Outcome:
    """KVM_MEMORY_ENCRYPT_OP with ``struct kvm_sev_cmd {id, data, error, sev_fd}``; ``data_fault``
    passes a parameters pointer the VMM has not mapped."""
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    cmd = Cmd(cmd_id, dict(params), default_sev_fd(host) if sev_fd is None else sev_fd, data_fault=data_fault)
    result = ioctl.mem_enc_op(host.env, host.kvm, vm, cmd)
    out: dict[str, object] = {}
    written = cmd.params
    if cmd_id in (SevCmd.INIT, SevCmd.ES_INIT, SevCmd.INIT2) and result.ret == 0:
        # INIT2 makes the kind the VM type says: SEV-ES for KVM_X86_SEV_ES_VM and KVM_X86_SNP_VM
        vm.initialised_as_es = cmd_id == SevCmd.ES_INIT or (cmd_id == SevCmd.INIT2 and vm.vm_type != 2)
        out["asid"] = vm.asid
    elif cmd_id in (SevCmd.LAUNCH_START, SevCmd.RECEIVE_START) and result.ret == 0:
        out["handle"] = vm.handle
    elif cmd_id == SevCmd.GUEST_STATUS and result.ret == 0:
        state = written["state"]
        assert isinstance(state, int)
        out = {
            "policy": written["policy"],
            "state": state,
            "state_name": GuestState(state).name,
            "handle": written["handle"],
        }
    elif cmd_id in _WRITTEN_BACK:
        out = {key: written[key] for key in _WRITTEN_BACK[cmd_id] if key in written}
    return Outcome(result.ret, result.error, out)


#: what each command writes back to its parameters (or out-buffers) that a VMM would look at
_WRITTEN_BACK: dict[int, tuple[str, ...]] = {
    SevCmd.LAUNCH_MEASURE: ("len", "measurement"),
    SevCmd.GET_ATTESTATION_REPORT: ("len", "report"),
    SevCmd.SEND_START: ("session_len", "policy", "session"),
    SevCmd.SEND_UPDATE_DATA: ("hdr_len", "trans_len", "header", "trans"),
}


def write_user(host: Host, vm_name: str, uaddr: int | None, data: bytes) -> int:
    """Put ``data`` into the VM process's memory (mapping it when needed); returns the address."""
    vm = vm_of(host, vm_name)
    assert vm is not None
    if uaddr is None:
        uaddr = vm.memory.map(max(len(data), 1))
    vm.memory.write(uaddr, data)
    return uaddr


def read_user(host: Host, vm_name: str, uaddr: int, length: int) -> bytes:
    vm = vm_of(host, vm_name)
    assert vm is not None
    return vm.memory.read(uaddr, length)


def launch_update_data(
    host: Host, vm_name: str, data: bytes | None, uaddr: int | None, length: int | None
) -> Outcome:
    """Write ``data`` (if given) to user memory, then LAUNCH_UPDATE_DATA over it."""
    if vm_of(host, vm_name) is None:
        return Outcome(_ENOENT)
    if data is not None:
        uaddr = write_user(host, vm_name, uaddr, data)
        length = len(data) if length is None else length
    outcome = sev_cmd(host, vm_name, SevCmd.LAUNCH_UPDATE_DATA, {"uaddr": uaddr or 0, "len": length or 0})
    outcome.result = {"uaddr": uaddr, "len": length}
    return outcome


def reg_region(host: Host, vm_name: str, uaddr: int, size: int, unregister: bool = False) -> Outcome:
    """KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION (KVM's SEV off: the ioctl is -ENOTTY as well)."""
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    if unregister:
        return Outcome(regions.unregister_region(host.env, vm, uaddr, size))
    return Outcome(regions.register_region(host.env, vm, uaddr, size))


def vcpu_create(host: Host, vm_name: str, vmsa: bytes | None = None) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    vcpu = vcpu_mod.vcpu_create(host.env, vm)
    if vcpu is None:
        return Outcome(-int(Errno.EINVAL))
    if vcpu.vmsa_pfn is not None and vmsa is not None:
        host.env.psp.memory.write(vcpu.vmsa_pfn << 12, vmsa[:4096].ljust(4096, b"\0"))
    return Outcome(0, 0, {"vcpu": vcpu.index, "vmcb": f"{vcpu.vmcb:#x}"})


def vcpu_run(host: Host, vm_name: str, index: int, cpu: int) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    if vm.need_init:  # svm_vcpu_pre_run (6.10): an SEV-typed VM before KVM_SEV_INIT2
        return Outcome(-int(Errno.EINVAL))
    run = vcpu_mod.vcpu_run(host.env, host.kvm, vm, vm.vcpus[index], cpu)
    result: dict[str, object] = {
        "entered": run.entered,
        "exit_reason": run.exit_reason,
        "tlb_flush": run.tlb_flush,
    }
    if run.flush_by:
        result["tlb_flush_by"] = list(run.flush_by)
    if run.stale_from is not None:
        result["stale_tlb_owner"] = run.stale_from
    return Outcome(0, 0, result)


def vcpu_set_guest_debug(host: Host, vm_name: str, index: int, control: int, dr7: int) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    return Outcome(debugregs.set_guest_debug(vm.vcpus[index], control, dr7))


def vcpu_set_debugregs(host: Host, vm_name: str, index: int, dr6: int, dr7: int, flags: int) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    return Outcome(debugregs.set_debugregs(vm, vm.vcpus[index], dr6, dr7, flags))


def sev_device_attr(host: Host, attr: int, has: bool) -> Outcome:
    """KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on /dev/kvm (which needs kvm_amd loaded)."""
    if host.kvm is None:
        return Outcome(_ENOENT)
    ret, value = dev_attr.sev_device_attr(host.env, host.kvm, attr)
    return Outcome(ret, 0, {"value": value} if value is not None and not has else {})


def vm_destroy(host: Host, vm_name: str) -> Outcome:
    vm = vm_of(host, vm_name)
    if host.kvm is None or vm is None:
        return Outcome(_ENOENT)
    vcpu_mod.vm_destroy(host.env, host.kvm, vm)
    return Outcome()


#: the boot CPU: no ``online`` file in sysfs on AMD hosts. ``arch_register_cpu()`` (5.x) makes
#: CPU 0 hotpluggable only on Intel ("Currently CPU0 is only hotpluggable on Intel platforms"),
#: and "x86/topology: Remove CPU0 hotplug option" (6.5) dropped it everywhere; without the file
#: the write fails to open.
BOOT_CPU = 0


def cpu_offline(host: Host, cpu: int) -> Outcome:
    """``echo 0 > /sys/devices/system/cpu/cpuN/online``; -ENOENT for the boot CPU."""
    if cpu == BOOT_CPU:
        return Outcome(_ENOENT)
    vcpu_mod.cpu_offline(host.env, host.kvm, cpu)
    return Outcome()


def cpu_online(host: Host, cpu: int) -> Outcome:
    """``echo 1 > /sys/devices/system/cpu/cpuN/online``; -ENOENT for the boot CPU."""
    if cpu == BOOT_CPU:
        return Outcome(_ENOENT)
    vcpu_mod.cpu_online(host.env, host.kvm, cpu)
    return Outcome()


def cgroup_create(host: Host, path: str) -> Outcome:
    host.env.misc.create(path)
    return Outcome()


def cgroup_set_max(host: Host, path: str, resource: str, value: int | None) -> Outcome:
    """Write ``misc.max``; None means "max". Without the controller the file does not exist."""
    if not host.env.misc.enabled:
        return Outcome(_ENOENT)
    host.env.misc.groups[path].max[resource] = MAX if value is None else value
    return Outcome()


def module_unload(host: Host) -> Outcome:
    """``rmmod kvm_amd``: -EBUSY while VMs exist; -ENOENT when not loaded."""
    if host.kvm is None:
        return Outcome(_ENOENT)
    if host.kvm.vms:
        return Outcome(-int(Errno.EBUSY))
    result = host.unload_kvm_amd()
    return Outcome(0, 0, {"flushed": result.flushed, "leaked_bytes": result.leaked_bytes})


def module_load(host: Host, fail_alloc: str | None = None) -> Outcome:
    """``modprobe kvm_amd``: nothing to do when loaded (modprobe succeeds silently).

    ``fail_alloc`` (fault injection) makes that allocation site fail during this load only.
    """
    if host.kvm is not None:
        return Outcome()
    if fail_alloc is not None:
        host.env.alloc.fail_sites.add(fail_alloc)
    load = host.load_kvm_amd()
    if fail_alloc is not None:
        host.env.alloc.fail_sites.discard(fail_alloc)
    return Outcome(
        0 if load.loaded else -int(load.error or Errno.EINVAL),
        0,
        {"sev_enabled": host.kvm.sev_enabled if host.kvm else False},
    )


def fw_fault(host: Host, command: str, status: str = "HWSEV_RET_UNSAFE") -> Outcome:
    """Fault injection: the next firmware command ``command`` fails with ``status``."""
    host.env.psp.faults[Command[command]] = Status[status]
    return Outcome()
