"""kvmsev: an executable model of AMD SEV / SEV-ES host support in Linux KVM.

The package is layered the way the real system is: ``hw`` (CPUs, CPUID, MSRs, CPU profiles),
``firmware`` (the PSP's SEV API), ``kernel`` (boot-time kernel pieces KVM depends on: Kconfig,
command line, module parameter parsing, the page allocator), ``kvm`` (the SEV code of
``kvm_amd``), ``host`` (a whole modeled host) and ``cli``. A lower layer never imports a higher
one.
"""

__version__ = "0.1.0"
