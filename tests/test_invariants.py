"""The invariants compute what their statements say, however they are computed: each fast form is
checked here against the statement written out directly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmsev.check.invariants import misc_usage
from kvmsev.host.config import HostConfig
from kvmsev.host.host import Host
from kvmsev.scenario import runner
from kvmsev.scenario.schema import Step

CGROUPS = ["/a", "/b", "/a/x", "/a/x/y", "/ab", "/b/a"]
VMS = ["p", "q", "r", "s"]


def _misc_usage_by_definition(host: Host) -> list[str]:
    """Usage in every cgroup equals the VMs charged in it or in any cgroup below it."""
    assert host.kvm is not None
    out = []
    for path, group in sorted(host.env.misc.groups.items()):
        for resource in ("sev", "sev_es"):
            count = sum(
                1
                for vm in host.kvm.vms.values()
                if vm.misc_cg is not None
                and vm.es_active == (resource == "sev_es")
                and (path == "/" or vm.misc_cg.path == path or vm.misc_cg.path.startswith(path + "/"))
            )
            if group.usage[resource] != count:
                out.append(
                    f"misc {resource} usage in {path} is {group.usage[resource]} but {count} VMs charged"
                )
    return out


moves = st.lists(
    st.one_of(
        st.builds(
            lambda vm, cg: ("vm_create", vm, cg), st.sampled_from(VMS), st.sampled_from(["/", *CGROUPS])
        ),
        st.builds(
            lambda op, vm: (op, vm, None),
            st.sampled_from(["sev_init", "sev_es_init", "vm_destroy"]),
            st.sampled_from(VMS),
        ),
        st.builds(lambda cg, d: ("skew", cg, d), st.sampled_from(["/", *CGROUPS]), st.integers(-1, 1)),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(moves=moves)
def test_misc_usage_reports_exactly_the_cgroups_whose_usage_is_not_their_charged_vms(
    moves: list[tuple[str, str, object]],
) -> None:
    host = Host.boot(HostConfig(profile="lab", kernel="v6.12"))
    host.load_kvm_amd()
    assert host.kvm is not None
    for path in CGROUPS:
        host.env.misc.create(path)
    for index, (op, name, arg) in enumerate(moves):
        if op == "skew":  # the model's own count disturbed, as a bug in charging would
            host.env.misc.groups[name].usage["sev"] += int(str(arg))
        elif op == "vm_create" and name not in host.kvm.vms:
            runner.execute(host, Step(index, op, {"vm": name, "cgroup": arg}, "host"))
        elif op != "vm_create" and name in host.kvm.vms and not host.kvm.vms[name].closed:
            runner.execute(host, Step(index, op, {"vm": name}, "host"))
        assert misc_usage(host) == _misc_usage_by_definition(host)
