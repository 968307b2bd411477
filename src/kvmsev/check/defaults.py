"""The host and bounds ``kvmsev check`` explores when the user names none.

The explorer is exhaustive, so its default host is the smallest one on which every finding of
the pinned results shows: the synthetic ``lab`` part with its BIOS set to one SEV-ES ASID and one
SEV ASID, two CPUs, one VM with one vCPU at a time. Each ASID carries its own history (TLB
owners, ``sev_vmcbs`` entries, firmware dirty bit), so every further ASID multiplies the state
count: this host is explored completely in seconds (its state counts are pinned in
``docs/check-results.md``); the lab part's own four ASIDs give several million.
"""

from __future__ import annotations

import dataclasses

from kvmsev.host.config import HostConfig

PROFILE = "lab"
#: lab BIOS: CPUID Fn8000_001F ECX = 2 (highest ASID), EDX = 2 (MIN_SEV_ASID): ASID 1 is SEV-ES, 2 is SEV
BIOS = ("sev_asid_count=2", "sev_es_asid_space_limit=2")
#: CPUs when the profile is not ``lab`` and the user did not choose
CPUS = 2
#: moves per path: far beyond what the default host needs to be explored completely (43 levels)
DEPTH = 100
MAX_DEPTH = 1000
#: a budget bigger hosts reach in about half a minute, holding about half a GiB (2.3 kB a state
#: with its share of the frontier: 455 MB resident at 200,000 states of ``--profile lab``); more
#: is a ``--max-states`` away, and ``kvmsev check`` says what it will cost before it starts
MAX_STATES = 250_000


def host(config: HostConfig, profile_given: bool) -> HostConfig:
    """``config`` with the explorer's small defaults where the user chose nothing.

    Without ``--profile``, the lab part gets :data:`BIOS` for each option the user did not set
    (``--cpuid`` fixes the ASID counts itself); another profile gets :data:`CPUS` CPUs unless
    ``--cpus`` says otherwise.
    """
    if not profile_given:
        chosen = {item.partition("=")[0].strip() for item in config.bios}
        extra = (
            () if config.cpuid is not None else tuple(b for b in BIOS if b.partition("=")[0] not in chosen)
        )
        return dataclasses.replace(config, profile=PROFILE, bios=(*extra, *config.bios))
    if config.cpus is None and config.profile != PROFILE:
        return dataclasses.replace(config, cpus=CPUS)
    return config
