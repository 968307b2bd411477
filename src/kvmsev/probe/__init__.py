"""The probe: the only code that touches the real machine. It reads a host (live, or recorded in
the format of :mod:`kvmsev.host.rootfs`), diagnoses its SEV state, and compares it with what the
model predicts for a host configured the same way."""
