"""The errors of lessons: one that cannot be used (file, line, field), one that cannot be run."""

from __future__ import annotations


class LessonError(ValueError):
    """A lesson that cannot be used; the message names the file and the place in it."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message

    def within(self, where: str) -> LessonError:
        """The same error, placed inside `where` (a file, a line, a field)."""
        inner = f"{where}, {self.where}" if self.where else where
        return LessonError(self.message, inner)


class LessonRunError(RuntimeError):
    """An experiment that could not be carried out."""
