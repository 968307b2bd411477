"""Run a scenario: boot its hosts, load ``kvm_amd``, execute the steps, check the invariants.

Each step reports ``op``, ``ret`` (0 or -errno), ``errno`` (name or null), ``fw_error``
(``{"code", "name"}`` or null: the firmware status KVM copied back), ``result`` and the
``events`` it caused in order (firmware commands, WBINVDs, TLB flushes, kernel log lines). After
every step all invariants are evaluated on the step's host; a violation is reported at the step
where it appears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kvmsev.check.invariants import ALL, new_violations
from kvmsev.errors import Errno, InputError
from kvmsev.firmware.status import Command, Status
from kvmsev.host import launch_ops, migration_ops, ops
from kvmsev.host.config import FAIL_SITES
from kvmsev.host.host import Host
from kvmsev.host.report import boot_dict, kvm_view
from kvmsev.host.stream import Stream
from kvmsev.hw.memory import WRITE_BUDGET, WriteBudget, WriteBudgetExceeded
from kvmsev.kernel.bitops import set_bits
from kvmsev.kernel.misc_cgroup import RESOURCES
from kvmsev.kvm.oops import KernelOops
from kvmsev.kvm.sev_cmd import SevCmd
from kvmsev.scenario.schema import Scenario, Step

SCHEMA = "kvmsev.run/1"

_SIMPLE_CMDS = {
    "sev_init": SevCmd.INIT,
    "sev_es_init": SevCmd.ES_INIT,
    "launch_update_vmsa": SevCmd.LAUNCH_UPDATE_VMSA,
    "launch_finish": SevCmd.LAUNCH_FINISH,
    "guest_status": SevCmd.GUEST_STATUS,
    "send_finish": SevCmd.SEND_FINISH,
    "send_cancel": SevCmd.SEND_CANCEL,
    "receive_finish": SevCmd.RECEIVE_FINISH,
    "snp_enable_req_certs": SevCmd.SNP_ENABLE_REQ_CERTS,
}
#: ops that name a second VM, the ``source``
_TWO_VM_OPS = frozenset({"copy_enc_context_from", "move_enc_context_from"})
#: ops that are not ioctls on the VM (they work on a dead VM)
_NOT_VM_IOCTLS = frozenset({"vm_destroy", "mem_write"})
#: ops that name a VM the step's host must have
_VM_OPS = frozenset(_SIMPLE_CMDS) | {
    "launch_start",
    "launch_update_data",
    "launch_secret",
    "launch_measure",
    "attestation_report",
    "dbg_decrypt",
    "dbg_encrypt",
    "reg_region",
    "unreg_region",
    "mem_write",
    "mem_enc_op",
    "vcpu_create",
    "vcpu_run",
    "vcpu_set_guest_debug",
    "vcpu_set_debugregs",
    "vm_destroy",
    "copy_enc_context_from",
    "move_enc_context_from",
    "sev_init2",
    "snp_launch_start",
    "snp_launch_update",
    "snp_launch_finish",
    "send_start",
    "send_update_data",
    "receive_start",
    "receive_update_data",
}


def _known_vms(host: Host, shown: int = 20) -> str:
    """The open VMs' names for an error line, the first ``shown`` of them."""
    names = [n for n, v in host.kvm.vms.items() if not v.closed] if host.kvm is not None else []
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "none"


def _check_refs(hosts: Mapping[str, Host], step: Step) -> None:
    """Names and numbers the scenario uses must exist; otherwise it is the scenario's error."""
    host = hosts[step.host]
    where = f"steps[{step.index}]"
    a = step.args
    open_vm = host.kvm.vms.get(a["vm"]) if host.kvm is not None and "vm" in a else None
    if open_vm is not None and open_vm.closed:
        open_vm = None
    if step.op == "vm_create":
        if host.kvm is not None and a["vm"] in host.kvm.vms:
            raise InputError(f"{where}.vm", f"VM {a['vm']!r} already exists")
        if a.get("cgroup", "/") not in host.env.misc.groups:
            raise InputError(
                f"{where}.cgroup", f"no cgroup {a.get('cgroup')!r} (create it with cgroup_create)"
            )
    elif step.op in _VM_OPS and host.kvm is not None and open_vm is None:
        raise InputError(f"{where}.vm", f"no VM {a['vm']!r} (known: {_known_vms(host)})")
    if step.op in _TWO_VM_OPS and host.kvm is not None and a["source"] not in host.kvm.vms:
        raise InputError(f"{where}.source", f"no VM {a['source']!r} on this host")
    if "cpu" in a and not 0 <= a["cpu"] < host.env.nr_cpus:
        raise InputError(f"{where}.cpu", f"CPU {a['cpu']} does not exist (host has {host.env.nr_cpus})")
    on_vcpu = step.op in ("vcpu_run", "vcpu_set_guest_debug", "vcpu_set_debugregs")
    if on_vcpu and open_vm is not None and not 0 <= a["vcpu"] < len(open_vm.vcpus):
        raise InputError(f"{where}.vcpu", f"VM {a['vm']!r} has {len(open_vm.vcpus)} vCPUs")
    if step.op == "vcpu_run" and not host.env.online >> a["cpu"] & 1:
        raise InputError(f"{where}.cpu", f"CPU {a['cpu']} is offline; nothing can run there")
    if step.op == "cgroup_create":
        path = a["cgroup"]
        if path == "/" or path in host.env.misc.groups:
            raise InputError(f"{where}.cgroup", f"{path!r} must be a new absolute path like /tenant")
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in host.env.misc.groups:
            raise InputError(f"{where}.cgroup", f"parent {parent!r} does not exist")
    if step.op == "fw_fault":
        if a["cmd"] not in Command.__members__:
            raise InputError(f"{where}.cmd", f"unknown firmware command {a['cmd']!r}")
        if a.get("status", "HWSEV_RET_UNSAFE") not in Status.__members__:
            raise InputError(f"{where}.status", f"unknown firmware status {a.get('status')!r}")
    if step.op == "module_load" and a.get("fail_alloc") not in (
        None,
        *FAIL_SITES,
        *(f"sev_vmcbs[{c}]" for c in range(host.env.nr_cpus)),
    ):
        raise InputError(f"{where}.fail_alloc", f"unknown allocation site {a['fail_alloc']!r}")
    if step.op == "cgroup_set_max":
        if a["cgroup"] not in host.env.misc.groups or a["cgroup"] == "/":
            raise InputError(f"{where}.cgroup", f"no non-root cgroup {a['cgroup']!r}")
        if a["resource"] not in RESOURCES:
            raise InputError(f"{where}.resource", f"must be one of {', '.join(RESOURCES)}")
    if step.op in ("receive_start", "receive_update_data"):
        stream = _stream_of(hosts, step)
        if step.op == "receive_update_data":
            index = a.get("packet", stream.received)
            if not 0 <= index < len(stream.packets):
                raise InputError(
                    f"{where}.packet",
                    f"stream {a['stream']!r} has {len(stream.packets)} packets, no packet {index}",
                )


def _stream_of(hosts: Mapping[str, Host], step: Step) -> Stream:
    """The stream a receive step reads: on the host it names, or the one host that has it."""
    name = step.args["stream"]
    source = step.args.get("source")
    holders = [n for n, h in hosts.items() if name in h.streams and (source is None or n == source)]
    if len(holders) != 1:
        problem = "no host has sent" if not holders else "several hosts have sent"
        raise InputError(f"steps[{step.index}].stream", f"{problem} a stream {name!r} (send_start makes one)")
    return hosts[holders[0]].streams[name]


def execute(host: Host, step: Step, hosts: Mapping[str, Host] | None = None) -> ops.Outcome:
    """Perform one step on ``host`` through the entry points (references already checked);
    ``hosts`` are every host of the scenario, for migration steps.

    A kernel oops kills the calling task: the call never returns, so the outcome carries the
    oops line instead of an errno, and the host stays as it crashed.
    """
    try:
        return _execute(host, step, hosts if hosts is not None else {step.host: host})
    except KernelOops as oops:
        host.crash(oops)
        return ops.Outcome(0, 0, {"oops": oops.line})


def _execute(host: Host, step: Step, hosts: Mapping[str, Host]) -> ops.Outcome:
    a = step.args
    op = step.op
    vm = ops.vm_of(host, a["vm"]) if op in _VM_OPS else None
    if vm is not None and vm.dead and op not in _NOT_VM_IOCTLS:
        return ops.Outcome(-int(Errno.EIO))  # kvm_vm_dead(): every VM and vCPU ioctl
    if op in _SIMPLE_CMDS:
        return ops.sev_cmd(host, a["vm"], _SIMPLE_CMDS[op], {})
    if op == "vm_create":
        return ops.vm_create(host, a["vm"], a.get("cgroup", "/"), a.get("type", 0))
    if op == "sev_init2":
        params = {k: a.get(k, 0) for k in ("vmsa_features", "flags", "ghcb_version")}
        return ops.sev_cmd(host, a["vm"], SevCmd.INIT2, params, data_fault=a.get("data_fault", False))
    if op == "snp_launch_start":
        params = {"policy": a.get("policy", 0x30000), "flags": a.get("flags", 0)}
        fd = a.get("sev_fd")
        return ops.sev_cmd(host, a["vm"], SevCmd.SNP_LAUNCH_START, params, fd, a.get("data_fault", False))
    if op == "snp_launch_update":
        data = a.get("data")
        if data is not None and vm is None:
            return ops.Outcome(-int(Errno.ENOENT))  # no such VM: nowhere to put the data
        uaddr = ops.write_user(host, a["vm"], a.get("uaddr"), data) if data is not None else a.get("uaddr", 0)
        length = a.get("len", len(data) if data is not None else 0)
        params = {
            "gfn_start": a.get("gfn_start", 0),
            "uaddr": uaddr,
            "len": length,
            "type": a.get("type", 1),
            "flags": a.get("flags", 0),
        }
        return ops.sev_cmd(host, a["vm"], SevCmd.SNP_LAUNCH_UPDATE, params, a.get("sev_fd"))
    if op == "snp_launch_finish":
        return ops.sev_cmd(host, a["vm"], SevCmd.SNP_LAUNCH_FINISH, {"flags": a.get("flags", 0)})
    if op == "move_enc_context_from":
        return migration_ops.move_enc_context_from(host, a["vm"], a["source"], a.get("flags", 0))
    if op == "launch_start":
        s = a.get("session")
        owner = (
            None
            if s is None
            else launch_ops.OwnerSession(s["tek"], s["tik"], s.get("policy"), s.get("tamper"))
        )
        return launch_ops.launch_start(
            host, a["vm"], a.get("policy", 0), a.get("handle", 0), owner, a.get("sev_fd")
        )
    if op == "launch_update_data":
        return ops.launch_update_data(host, a["vm"], a.get("data"), a.get("uaddr"), a.get("len"))
    if op == "launch_secret":
        keys = (a.get("tek", bytes(16)), a.get("tik", bytes(16))) if "tek" in a or "tik" in a else None
        return launch_ops.launch_secret(
            host,
            a["vm"],
            a["secret"],
            a.get("iv", bytes(16)),
            a.get("flags", 0),
            a.get("mac"),
            a.get("guest_uaddr"),
            keys,
        )
    if op == "launch_measure":
        return launch_ops.launch_measure(host, a["vm"], a.get("len", 48))
    if op == "attestation_report":
        return launch_ops.attestation_report(host, a["vm"], a.get("mnonce", bytes(16)), a.get("len", 0xD0))
    if op == "dbg_decrypt":
        return launch_ops.dbg_decrypt(host, a["vm"], a["src_uaddr"], a["len"], a.get("dst_uaddr"))
    if op == "dbg_encrypt":
        return launch_ops.dbg_encrypt(host, a["vm"], a["data"], a["dst_uaddr"])
    if op in ("reg_region", "unreg_region"):
        return ops.reg_region(host, a["vm"], a["uaddr"], a["size"], unregister=op == "unreg_region")
    if op == "mem_write":
        if host.kvm is None or ops.vm_of(host, a["vm"]) is None:
            return ops.Outcome(-int(Errno.ENOENT))
        uaddr = ops.write_user(host, a["vm"], a.get("uaddr"), a["data"])
        return ops.Outcome(0, 0, {"uaddr": uaddr})
    if op == "mem_enc_op":
        return ops.sev_cmd(host, a["vm"], a["id"], {}, data_fault=a.get("data_fault", False))
    if op == "vcpu_create":
        vmsa = a.get("vmsa")
        if isinstance(vmsa, dict):  # {reset: ..., firmware: ...}, validated into a VcpuReset
            return launch_ops.vcpu_create_at_reset(host, a["vm"], vmsa["vcpu_sig"], vmsa["ap_reset"])
        return ops.vcpu_create(host, a["vm"], vmsa)
    if op == "vcpu_run":
        return ops.vcpu_run(host, a["vm"], a["vcpu"], a["cpu"])
    if op == "sev_device_attr":
        return ops.sev_device_attr(host, a.get("attr", 0), a.get("has", False))
    if op == "vcpu_set_guest_debug":
        return ops.vcpu_set_guest_debug(host, a["vm"], a["vcpu"], a.get("control", 1), a.get("dr7", 0))
    if op == "vcpu_set_debugregs":
        regs = (a.get("dr6", 0xFFFF0FF0), a.get("dr7", 0x400), a.get("flags", 0))
        return ops.vcpu_set_debugregs(host, a["vm"], a["vcpu"], *regs)
    if op == "vm_destroy":
        return ops.vm_destroy(host, a["vm"])
    if op == "cpu_offline":
        return ops.cpu_offline(host, a["cpu"])
    if op == "cpu_online":
        return ops.cpu_online(host, a["cpu"])
    if op == "cgroup_create":
        return ops.cgroup_create(host, a["cgroup"])
    if op == "cgroup_set_max":
        return ops.cgroup_set_max(host, a["cgroup"], a["resource"], None if a["max"] == "max" else a["max"])
    if op == "module_unload":
        return ops.module_unload(host)
    if op == "module_load":
        return ops.module_load(host, a.get("fail_alloc"))
    if op == "fw_fault":
        return ops.fw_fault(host, a["cmd"], a.get("status", "HWSEV_RET_UNSAFE"))
    if op == "copy_enc_context_from":
        return migration_ops.copy_enc_context_from(host, a["vm"], a["source"], a.get("flags", 0))
    if op in ("send_start", "send_update_data"):
        # the VMM opens the channel when SEND_START succeeds and adds each packet that is sent
        name = a.get("stream", a["vm"])
        stream = host.streams[name].copy() if name in host.streams else Stream()
        if op == "send_start":
            target = hosts[a.get("to", step.host)]
            outcome = migration_ops.send_start(host, a["vm"], target, stream, a.get("session_len", 128))
        else:
            outcome = migration_ops.send_update_data(host, a["vm"], stream, a["uaddr"], a["len"])
        if outcome.ret == 0:
            host.streams[name] = stream
        return outcome
    if op == "receive_start":
        return migration_ops.receive_start(
            host, a["vm"], _stream_of(hosts, step), a.get("policy"), a.get("handle", 0)
        )
    if op == "receive_update_data":
        stream = _stream_of(hosts, step)
        index = a.get("packet", stream.received)
        stream.received = index + 1
        return migration_ops.receive_update_data(
            host, a["vm"], stream, index, a.get("uaddr"), a.get("tamper")
        )
    raise AssertionError(op)


def _errno_name(ret: int) -> str | None:
    if ret >= 0:
        return None
    try:
        return Errno(-ret).name
    except ValueError:
        return str(ret)


def _fw_error(code: int) -> dict[str, object] | None:
    if not code:
        return None
    try:
        name = Status(code).name
    except ValueError:
        name = f"{code:#x}"
    return {"code": code, "name": name}


def asid_list(bitmap: int | None) -> list[int] | None:
    """The ASIDs set in one of KVM's bitmaps (the model indexes them by ASID)."""
    return None if bitmap is None else set_bits(bitmap)


def final_state(host: Host) -> dict[str, Any]:
    kvm = host.kvm
    psp = host.env.psp
    state: dict[str, Any] = {"kvm_amd_loaded": kvm is not None}
    if kvm is not None:
        vmcbs = kvm.sev_vmcbs
        state["kvm"] = {
            "sev_enabled": kvm.sev_enabled,
            "sev_es_enabled": kvm.sev_es_enabled,
            "min_sev_asid": kvm.min_sev_asid,
            "max_sev_asid": kvm.max_sev_asid,
            "sev_asid_bitmap": asid_list(kvm.sev_asid_bitmap),
            "sev_reclaim_asid_bitmap": asid_list(kvm.sev_reclaim_asid_bitmap),
            "sev_vmcbs": None
            if vmcbs is None
            else {
                str(cpu): {str(i): f"{v:#x}" for i, v in entries.items()}
                for cpu, entries in sorted(vmcbs.written().items())
            },
            "vms": {
                vm.name: {
                    "active": vm.active,
                    "es": vm.es_active,
                    "asid": vm.asid,
                    "handle": vm.handle,
                    "vcpus": [
                        {"vmcb": f"{v.vmcb:#x}", "last_vmentry_cpu": v.last_vmentry_cpu} for v in vm.vcpus
                    ],
                    "pages_locked": vm.pages_locked,
                    "regions": len(vm.regions),
                }
                for vm in kvm.vms.values()
            },
        }
    asids = [
        a
        for a in set_bits(psp.asid_allocated | psp.asid_in_use | psp.asid_dirty)
        if a and psp.asid_state(a) != "clean"
    ]
    state["firmware"] = {
        "present": psp.present,
        "state": psp.state.name,
        "guests": {
            str(h): {
                "state": g.state.name,
                "asid": g.asid,
                "policy": g.policy,
                "activation": g.activation.value,
            }
            for h, g in sorted(psp.guests.items())
        },
        "asids": "all dirty" if psp.asid_all_dirty else {str(a): psp.asid_state(a) for a in asids},
        "wbinvd_done": [c for c in range(host.env.nr_cpus) if psp.wbinvd_done >> c & 1],
    }
    state["cpus_online"] = host.env.online_cpus()
    misc = host.env.misc
    if misc.enabled:
        state["misc_cgroup"] = {
            path: {
                "usage": dict(g.usage),
                "max": {r: ("max" if m >= 2**63 - 1 else m) for r, m in g.max.items()},
            }
            for path, g in misc.groups.items()
        }
    return state


BOOT_FIELDS = (
    "kernel",
    "profile",
    "cpus",
    "loaded",
    "load_error",
    "sev_enabled",
    "sev_es_enabled",
    "min_sev_asid",
    "max_sev_asid",
    "dmesg",
)


def run(scenario: Scenario, invariants: Sequence[str] = ALL) -> dict[str, Any]:
    """Execute ``scenario``, checking ``invariants`` after the boot and every step; the result is
    the ``kvmsev run --json`` document.

    With several hosts, ``boot`` and ``final`` describe the first and ``hosts`` all of them; each
    step and violation names its host. A step that would write more guest memory than the model
    holds (:data:`~kvmsev.hw.memory.WRITE_BUDGET`, over all hosts) ends the run with an
    :class:`InputError` naming it; nothing is reported.
    """
    hosts: dict[str, Host] = {}
    boots: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], set[str]] = {}
    marks: dict[str, dict[str, int]] = {}
    reported: list[dict[str, Any]] = []
    budget = WriteBudget(WRITE_BUDGET)
    for name, config in scenario.hosts.items():
        host = hosts[name] = Host.boot(config)
        host.env.psp.memory.budget = budget
        load = host.load_kvm_amd()
        boot = boot_dict(host, load, None, kvm_view(host))
        boots[name] = {k: boot[k] for k in BOOT_FIELDS}
        for inv, details in new_violations(host, invariants, marks.setdefault(name, {})).items():
            for detail in details:
                seen.setdefault((name, inv), set()).add(detail)
                reported.append({"invariant": inv, "step": None, "detail": detail, "host": name})
    several = len(hosts) > 1
    steps: list[dict[str, Any]] = []
    crashed: str | None = None
    for step in scenario.steps:
        host = hosts[step.host]
        if any(h.crashed for h in hosts.values()):
            break
        _check_refs(hosts, step)
        mark = host.env.trace.mark()
        try:
            outcome = execute(host, step, hosts)
        except WriteBudgetExceeded as exc:
            raise InputError(f"{scenario.name}: steps[{step.index}]", f"{step.op}: {exc}") from None
        entry: dict[str, Any] = {
            "step": step.index,
            "op": step.op,
            "vm": step.args.get("vm"),
            "ret": outcome.ret,
            "errno": _errno_name(outcome.ret),
            "fw_error": _fw_error(outcome.error),
            "result": outcome.result or None,
            "events": host.env.trace.since(mark),
        }
        if several:
            entry["host"] = step.host
        new: list[dict[str, Any]] = []
        for inv, details in new_violations(host, invariants, marks[step.host]).items():
            for detail in details:
                known = seen.setdefault((step.host, inv), set())
                if detail not in known:
                    known.add(detail)
                    new.append({"invariant": inv, "step": step.index, "detail": detail, "host": step.host})
        entry["violations"] = new
        reported += new
        steps.append(entry)
        crashed = crashed or host.crashed
    first = next(iter(hosts))
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "boot": boots[first],
        "steps": steps,
        "planned_steps": len(scenario.steps),
        "crashed": crashed,
        "final": final_state(hosts[first]),
        "invariants": {
            "checked": list(invariants),
            "violations": reported,
        },
    }
    if several:
        report["hosts"] = {name: {"boot": boots[name], "final": final_state(h)} for name, h in hosts.items()}
    return report
