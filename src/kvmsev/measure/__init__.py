"""What a guest owner computes before trusting an SEV or SEV-ES guest: the launch digest and the
LAUNCH_MEASURE HMAC a launch of a given firmware, kernel and vCPU set must produce."""
