"""Pure OCI distribution-spec and image-spec knowledge: no I/O, no HTTP."""
