"""Where bytes live: one driver interface, one module per driver."""
