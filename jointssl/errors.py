"""The one exception type users see: what went wrong and how to fix it."""

from __future__ import annotations


class JointsslError(RuntimeError):
    """A failure the user can act on. ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")
