"""The ``hatchway`` command line: one module per command under ``commands/``."""
