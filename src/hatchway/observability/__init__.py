"""Metrics and health: what operators watch (no web framework here)."""
