"""Handlers for the OCI distribution API under /v2/."""
