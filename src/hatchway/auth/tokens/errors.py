"""The one error a token check raises."""

from __future__ import annotations


class TokenError(Exception):
    """A token was rejected. ``reason`` is safe to show a client: it never holds the token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
