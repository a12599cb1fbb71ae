"""Errors a user sees: each names the field and the value that was wrong."""

from __future__ import annotations


class CosoError(Exception):
    """Base of every error coso reports to a user."""


class InputError(CosoError):
    """Bad input: names where it came from, the field and the value; nothing was changed."""

    def __init__(
        self,
        field: str,
        value: object,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f":{self.line}" if self.line else "") + ": "
        return f"{where}{self.field} = {self.value!r}: {self.reason}"


class InputErrors(CosoError):
    """Several input errors found in one pass (a whole plan file is checked before anything)."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
