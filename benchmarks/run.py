"""``make bench``: every benchmark, one after the other (one core)."""

from __future__ import annotations

from benchmarks import boot, check, guests, scenario_scale


def main() -> None:
    print("== boot: boot + modprobe + rmmod ==")
    boot.main()
    print("\n== guests ==")
    guests.main()
    print("\n== checker ==")
    check.main()
    print("\n== scenario runs: time against live VMs ==")
    scenario_scale.main()


if __name__ == "__main__":
    main()
