"""State that replicas share and may lose (Redis); never the source of truth."""
