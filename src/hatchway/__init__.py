"""hatchway: a private container registry with the gate built in."""

__version__ = "0.1.0"
