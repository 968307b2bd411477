"""Boot-time kernel pieces KVM depends on: Kconfig, the command line, module parameter parsing,
CPU feature detection and the allocator."""
