"""The misc cgroup controller (kernel/cgroup/misc.c, new in 5.13) for the ``sev`` and ``sev_es``
resources.

* Resources exist only with CONFIG_KVM_AMD_SEV=y (``misc_res_name[]``). With
  CONFIG_CGROUP_MISC=n every helper is a stub that succeeds (include/linux/misc_cgroup.h).
* ``misc_cg_set_capacity()`` fails only for an invalid type, so here it always succeeds.
* ``misc_cg_try_charge()``: -EINVAL when the resource's capacity is 0; otherwise the charge is
  added to the cgroup and every ancestor, and -EBUSY (undoing it) as soon as one level would
  exceed its ``misc.max`` or the capacity. The first rejection per cgroup and resource prints
  "cgroup: charge rejected by the misc controller for %s resource in <path>".
* The root's ``misc.capacity`` lists ``"NAME CAPACITY"`` for non-zero capacities only; the root
  has ``misc.current`` from 6.5 on (e973dfe92994).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmsev.errors import Errno

RESOURCES = ("sev", "sev_es")
MAX = 2**63 - 1  # MAX_NUM: "max" in misc.max


@dataclass(slots=True)
class MiscCg:
    path: str
    parent: MiscCg | None
    max: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, MAX))
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    failed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class MiscCgroup:
    """Capacities, the cgroup tree and usage; ``enabled`` False when the resources are absent."""

    enabled: bool
    #: misc_cg_try_charge logs the first rejection per cgroup and resource (until b03357528fd9
    #: "misc_cgroup: remove error log to avoid log flood", 5.16)
    log_rejections: bool = True
    #: the root has misc.current (from e973dfe92994 "cgroup/misc: Expose misc.current on cgroup v2
    #: root", 6.5; before it the file is CFTYPE_NOT_ON_ROOT)
    current_on_root: bool = False
    capacity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    root: MiscCg = field(default_factory=lambda: MiscCg("/", None))
    groups: dict[str, MiscCg] = field(default_factory=dict)
    #: the WARN_ONCE for a negative usage has fired
    warned_negative: bool = False
    #: the model's own index, not a kernel structure: the paths of the cgroups with a usage that
    #: is not zero, kept by :meth:`adjust` (every change of a usage goes through it), so that the
    #: ``misc_usage`` invariant looks at those and at the charged VMs' cgroups, not at every cgroup
    in_use: set[str] = field(default_factory=set, compare=False, repr=False)
    #: the checker's number for this object's share of a state fingerprint (never compared)
    fingerprint_cache: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.groups.setdefault("/", self.root)

    def set_capacity(self, resource: str, value: int) -> int:
        """``misc_cg_set_capacity()``: 0 on success (always, for valid resources or the stub)."""
        if self.enabled:
            self.capacity[resource] = value
        return 0

    def create(self, path: str) -> MiscCg:
        """``mkdir`` a cgroup; ``path`` like ``/a/b`` (its parent must exist)."""
        parent_path = path.rsplit("/", 1)[0] or "/"
        group = MiscCg(path, self.groups[parent_path])
        self.groups[path] = group
        return group

    def try_charge(self, resource: str, group: MiscCg, amount: int = 1) -> tuple[int, list[str]]:
        """``misc_cg_try_charge()``: (0 or -errno, kernel log lines)."""
        if not self.enabled:
            return 0, []
        if not self.capacity[resource]:
            return -int(Errno.EINVAL), []
        charged: list[MiscCg] = []
        node: MiscCg | None = group
        while node is not None:
            self.adjust(node, resource, amount)
            charged.append(node)
            if node.usage[resource] > node.max[resource] or node.usage[resource] > self.capacity[resource]:
                lines: list[str] = []
                if self.log_rejections and resource not in node.failed:
                    node.failed.add(resource)
                    lines.append(
                        "cgroup: charge rejected by the misc controller for "
                        f"{resource} resource in {node.path}"
                    )
                for c in charged:
                    self.adjust(c, resource, -amount)
                return -int(Errno.EBUSY), lines
            node = node.parent
        return 0, []

    def uncharge(self, resource: str, group: MiscCg, amount: int = 1) -> list[str]:
        """``misc_cg_uncharge()``; a usage that goes negative is a kernel WARNING
        (``misc_cg_cancel_charge``'s WARN_ONCE: "misc cgroup resource %s became less than 0", the
        first time any resource goes negative in this boot)."""
        if not self.enabled:
            return []
        lines: list[str] = []
        node: MiscCg | None = group
        while node is not None:
            self.adjust(node, resource, -amount)
            if node.usage[resource] < 0 and not self.warned_negative:
                self.warned_negative = True
                lines.append(f"misc cgroup resource {resource} became less than 0")
            node = node.parent
        return lines

    def adjust(self, group: MiscCg, resource: str, amount: int) -> None:
        """Change one usage by ``amount``, keeping :attr:`in_use` true for ``group``."""
        group.usage[resource] += amount
        if any(group.usage.values()):
            self.in_use.add(group.path)
        else:
            self.in_use.discard(group.path)

    def capacity_file(self) -> str | None:
        """Text of /sys/fs/cgroup/misc.capacity, or None when the controller does not exist."""
        if not self.enabled:
            return None
        return "".join(f"{r} {self.capacity[r]}\n" for r in RESOURCES if self.capacity[r])

    def current_file(self, path: str) -> str | None:
        """``misc.current`` (``misc_cg_current_show``): a line for every resource with a capacity
        or a usage; None where the file does not exist (no controller, or the root before 6.5)."""
        if not self.enabled or (path == "/" and not self.current_on_root):
            return None
        g = self.groups[path]
        return "".join(f"{r} {g.usage[r]}\n" for r in RESOURCES if self.capacity[r] or g.usage[r])
