"""Secrets and their checks: passwords (bcrypt), access and refresh tokens, throttling."""
