"""The error every lab API returns for a bad value: what was wrong, and which field."""

from __future__ import annotations

from typing import Any


class FieldError(ValueError):
    """A value that cannot be used; `field` names the setting (None: the request as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}
