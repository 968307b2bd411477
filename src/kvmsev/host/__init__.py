"""A whole modeled host: assemble it from a configuration, load and unload ``kvm_amd``, and
render what a user would see in /sys, dmesg and /dev/kvm."""
