"""The explorer's moves: the entry points a user of the real system has, plus injected faults.

Enumeration is bounded (VMs, vCPUs per VM) and skips only calls that cannot change anything in
the state at hand (e.g. LAUNCH_MEASURE when the firmware guest is not in LUPDATE, INIT on an
active VM where the kernel checks before it writes); everything else -- including calls that fail
with an errno -- is a move. Memory contents never steer a decision, so data-carrying calls are
explored without data.

Uninitialised ``sev_vmcbs`` entries are adversarial: the first VM entry that reads one branches
into "it happens to equal this vCPU's VMCB" and "it does not".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvmsev.firmware.guest import GuestState
from kvmsev.firmware.status import Command, Status
from kvmsev.host import ops
from kvmsev.host.host import Host
from kvmsev.scenario.runner import execute
from kvmsev.scenario.schema import Step

VM_NAMES = ("a", "b", "c", "d", "e", "f")
ALLOC_FAULTS = ("sev_asid_bitmap", "sev_reclaim_asid_bitmap", "sev_vmcbs[0]")
FW_FAULTS = (Command.DF_FLUSH, Command.ACTIVATE, Command.DEACTIVATE, Command.DECOMMISSION)
FAULT_STATUS = Status.HWSEV_RET_UNSAFE


@dataclass(frozen=True, slots=True)
class Bounds:
    depth: int = 12
    vms: int = 1
    vcpus: int = 1
    faults: bool = False
    #: also run vCPUs before LAUNCH_FINISH (their VMRUN fails: the ASID is not yet valid)
    early_runs: bool = True
    #: stop once this many distinct states are known (None: no budget)
    max_states: int | None = None


@dataclass(frozen=True, slots=True)
class Action:
    op: str
    args: tuple[tuple[str, Any], ...] = ()
    #: value chosen for an uninitialised sev_vmcbs entry this move reads: (cpu, index, value)
    garbage: tuple[int, int, int] | None = None

    def step(self) -> dict[str, Any]:
        """The scenario step that replays this move."""
        out: dict[str, Any] = {"op": self.op}
        out.update(self.args)
        return out

    def label(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args)
        extra = (
            f" [sev_vmcbs[{self.garbage[1]}] on CPU {self.garbage[0]} = {self.garbage[2]:#x}]"
            if self.garbage
            else ""
        )
        return f"{self.op} {args}".strip() + extra


def _unknown_entry(host: Host, cpu: int, index: int) -> bool:
    kvm = host.kvm
    assert kvm is not None
    vmcbs = kvm.sev_vmcbs
    if vmcbs is None or vmcbs.zeroed or index in vmcbs.nulled:
        return False
    column = vmcbs.columns.get(index)
    if column is not None and cpu in column:
        return False
    garbage = host.env.garbage
    return (cpu, index) not in garbage.resolved and (cpu, index) not in garbage.fixed


def _launch_moves(host: Host, name: str, prune: bool, pairs: bool) -> list[Action]:
    """KVM_SEV_INIT / ES_INIT and the LAUNCH_* commands on VM ``name``.

    With ``prune``, calls that fail without changing anything are left out: INIT on an active VM
    (-EBUSY) -- except 5.12's ES_INIT, which marks the VM ES before it fails; a second
    LAUNCH_START where 934002cd660b decommissions the context whose ACTIVATE fails (without
    that fix the context leaks); LAUNCH_* in a firmware state that refuses them. An armed
    firmware fault turns pruning off: the command it is armed for would consume it.

    ``pairs`` (two VMs or more) adds the migration commands, sent and received on this host.
    """
    env = host.env
    assert host.kvm is not None
    vm = host.kvm.vms[name]
    behaviour = env.behaviour
    target = (("vm", name),)
    moves: list[Action] = []
    if not prune or not vm.active:
        moves.append(Action("sev_init", target))
    if host.kvm.sev_es_enabled and (
        not prune or not vm.active or not behaviour.es_active_set_on_success_only
    ):
        moves.append(Action("sev_es_init", target))
    mirror = vm.enc_context_owner is not None
    if (
        vm.active
        and not mirror
        and (not prune or not vm.handle or not behaviour.decommission_on_bind_failure)
    ):
        moves.append(Action("launch_start", (("vm", name), ("policy", 0x4 if vm.es_active else 0))))
    if pairs and vm.active and not mirror and behaviour.migration_commands:
        # a second RECEIVE_START leaks its context in 5.13 like a second LAUNCH_START did before
        # 934002cd660b; with the fix it changes nothing
        late = vm.handle and behaviour.receive_start_decommission_on_bind_failure
        for stream, sent in sorted(host.streams.items()):
            if sent.session and (not prune or not late):
                moves.append(Action("receive_start", (("vm", name), ("stream", stream))))
    if not vm.handle:
        return moves
    guest = env.psp.guests.get(vm.handle)
    if mirror:  # of the launch commands only LAUNCH_UPDATE_VMSA reaches a mirror (5b92b6ca92b6)
        if behaviour.mirror_cmd_allow_list and (not prune or guest is not None):
            moves.append(Action("launch_update_vmsa", target))
        return moves
    state = None if guest is None else guest.state
    if pairs and behaviour.migration_commands:
        if not prune or state is GuestState.RUNNING:
            moves.append(Action("send_start", target))
        if not prune or state is GuestState.SUPDATE:
            moves += [Action("send_finish", target), Action("send_cancel", target)]
        if not prune or state is GuestState.RUPDATE:
            moves.append(Action("receive_finish", target))
    # 5.12 syncs every vCPU's VMSA before the firmware sees the command: a vCPU without a VMSA
    # page oopses the host in any firmware state
    missing_vmsa = vm.es_active and any(v.vmsa_pfn is None for v in vm.vcpus)
    if not prune or state is GuestState.LUPDATE or missing_vmsa:
        if not prune or (vm.es_active and any(not v.guest_state_protected for v in vm.vcpus)):
            moves.append(Action("launch_update_vmsa", target))
        moves.append(Action("launch_measure", target))
    if not prune or state is GuestState.LSECRET:
        moves.append(Action("launch_finish", target))
    return moves


def _mirror_moves(host: Host, prune: bool) -> list[Action]:
    """KVM_CAP_VM_COPY_ENC_CONTEXT_FROM between two VMs; pruned: a source that is not an SEV
    owner, or a target that is already an SEV guest (-EINVAL, nothing changes)."""
    kvm = host.kvm
    assert kvm is not None
    if not host.env.behaviour.mirror_vms:
        return []
    moves = []
    for target, t in kvm.vms.items():
        for source, src in kvm.vms.items():
            if t.closed or src.closed or target == source:
                continue
            useful = src.active and src.enc_context_owner is None and not t.active
            if useful or not prune:
                moves.append(Action("copy_enc_context_from", (("vm", target), ("source", source))))
    return moves


def enumerate_actions(host: Host, bounds: Bounds, prune: bool = True) -> list[Action]:
    """Every move from ``host`` within ``bounds``; ``prune`` leaves out calls that cannot change
    anything (``tests/test_check.py`` applies every left-out call and checks that)."""
    if host.crashed is not None:
        return []
    env = host.env
    kvm = host.kvm
    online = env.online_cpus()
    moves: list[Action] = []
    if kvm is None:
        moves.append(Action("module_load"))
        if bounds.faults:
            moves += [Action("module_load", (("fail_alloc", site),)) for site in ALLOC_FAULTS]
    else:
        vms = kvm.vms
        if len(vms) < bounds.vms:
            name = next(n for n in VM_NAMES if n not in vms)
            moves.append(Action("vm_create", (("vm", name),)))
        for name, vm in vms.items():
            if vm.closed:
                continue  # a VM a mirror keeps alive: its VMM closed the fd
            target = (("vm", name),)
            moves += _launch_moves(host, name, prune and not env.psp.faults, bounds.vms > 1)
            if len(vm.vcpus) < bounds.vcpus:
                moves.append(Action("vcpu_create", target))
            runnable = bounds.early_runs or not vm.active or env.psp.asid_valid(vm.asid)
            for vcpu in vm.vcpus if runnable else ():
                for cpu in online:
                    args = (("vm", name), ("vcpu", vcpu.index), ("cpu", cpu))
                    if vm.active and _unknown_entry(host, cpu, vm.asid):
                        moves.append(Action("vcpu_run", args, (cpu, vm.asid, vcpu.vmcb)))
                        moves.append(Action("vcpu_run", args, (cpu, vm.asid, 0)))
                    else:
                        moves.append(Action("vcpu_run", args))
            moves.append(Action("vm_destroy", target))
        if bounds.vms > 1:
            moves += _mirror_moves(host, prune)
        if not vms:
            moves.append(Action("module_unload"))
    moves += [Action("cpu_offline", (("cpu", c),)) for c in online if c != ops.BOOT_CPU]
    moves += [Action("cpu_online", (("cpu", c),)) for c in range(env.nr_cpus) if not env.online >> c & 1]
    if bounds.faults and env.psp.present and not env.psp.faults:
        moves += [Action("fw_fault", (("cmd", c.name),)) for c in FW_FAULTS]
    return moves


_STEPS: dict[Action, Step] = {}


def apply(host: Host, action: Action) -> ops.Outcome:
    """Perform ``action`` on ``host`` exactly as the scenario runner performs the same step."""
    if action.garbage is not None:
        cpu, index, value = action.garbage
        host.env.garbage.resolved[(cpu, index)] = value
    step = _STEPS.get(action)
    if step is None:  # a handful of distinct moves; execute() never changes a step
        step = _STEPS[action] = Step(-1, action.op, dict(action.args), "host")
    return execute(host, step)
