"""The misc cgroup controller's capacities (kernel/cgroup/misc.c, new in 5.13).

Resources ``sev`` and ``sev_es`` exist only with CONFIG_KVM_AMD_SEV=y (``misc_res_name[]``).
``misc_cg_set_capacity()`` fails only for an invalid resource type, so for these resources it
always succeeds; with CONFIG_CGROUP_MISC=n it is a stub returning 0. The root's
``misc.capacity`` lists ``"NAME CAPACITY"`` for resources with a non-zero capacity only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RESOURCES = ("sev", "sev_es")


@dataclass(slots=True)
class MiscCgroup:
    """Capacities per resource; ``enabled`` is False when the controller or resources are absent."""

    enabled: bool
    capacity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))

    def set_capacity(self, resource: str, value: int) -> int:
        """``misc_cg_set_capacity()``: 0 on success (always, for valid resources or the stub)."""
        if self.enabled:
            self.capacity[resource] = value
        return 0

    def capacity_file(self) -> str | None:
        """Text of /sys/fs/cgroup/misc.capacity, or None when the controller does not exist."""
        if not self.enabled:
            return None
        return "".join(f"{r} {self.capacity[r]}\n" for r in RESOURCES if self.capacity[r])
