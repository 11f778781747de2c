"""Typed configuration in the shape of distribution's config.yml, and its loader."""
