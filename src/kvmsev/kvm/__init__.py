"""The SEV code of ``kvm_amd`` (arch/x86/kvm/svm/sev.c and its callers in svm.c, cpuid.c)."""
