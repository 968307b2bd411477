"""The AMD Secure Processor's SEV firmware (the PSP's SEV API), as a behavioural model."""
