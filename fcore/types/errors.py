"""Errors a user can cause with types and values."""

from __future__ import annotations


class TypeMismatchError(TypeError):
    """A value or type was found where another type was expected.

    `expected` and `found` hold the two types (or, for values, a description of the value);
    `path` names the first element where they differ (`[1].x`), or is empty.
    """

    def __init__(self, message, expected=None, found=None, path=""):
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.path = path


class TypeParseError(ValueError):
    """Text that is not a well-formed type (or computation), with line and column."""

    def __init__(self, message, line=None, column=None, text=None):
        super().__init__(message)
        self.line = line
        self.column = column
        self.text = text
