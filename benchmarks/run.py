"""``make bench``: every benchmark, one after the other (one core)."""

from __future__ import annotations

from benchmarks import boot, check, guests


def main() -> None:
    print("== boot: boot + modprobe + rmmod ==")
    boot.main()
    print("\n== guests ==")
    guests.main()
    print("\n== checker ==")
    check.main()


if __name__ == "__main__":
    main()
