"""The hardware layer: CPUID, MSRs, CPU profiles, BIOS options and per-CPU state."""
