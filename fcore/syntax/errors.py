"""Turning parser failures into messages with line, column, a caret, and what was expected."""

from __future__ import annotations

import re

from fcore.types.errors import TypeParseError

MAX_DEPTH = 256  # brackets in the text (types, computations), and the depth of any type
# Expressions in a computation: the IR's own recursive walks (structural equality, in
# particular, at up to five Python frames a level) must handle whatever parses, under
# Python's default recursion limit of 1000, with room for the caller's frames.
MAX_EXPRESSION_DEPTH = 128

# Friendly names for the grammars' terminals; string terminals are shown quoted.
_TERMINAL_NAMES = {
    "IDENT": "a name or dtype", "INT": "a number", "NAME": "a name", "STRING": "a string",
    "NUMBER": "a number", "$END": "the end of the text", "FLOAT": "a number",
}


def excerpt(text: str, line: int, column: int) -> str:
    """The offending line of `text` (clipped around `column`) with a caret under it."""
    lines = text.splitlines() or [""]
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    start = max(0, column - 1 - 50)
    shown = source[start:start + 100]
    prefix = "..." if start else ""
    suffix = "..." if start + 100 < len(source) else ""
    caret = " " * (len(prefix) + column - 1 - start) + "^"
    return f"  {prefix}{shown}{suffix}\n  {caret}"


def error(text, line, column, message, what="type") -> TypeParseError:
    full = f"Invalid {what} text at line {line}, column {column}: {message}\n" \
           f"{excerpt(text, line, column)}"
    return TypeParseError(full, line=line, column=column, text=text)


def position(text: str, offset: int):
    """(line, column), both 1-based, of the character at `offset`."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


# What the depth check reads: string literals and quoted names (skipped whole, so brackets
# inside them do not count; an unterminated one runs to the end of the text, which the lexer
# then reports), `->` (whose `>` closes nothing), and brackets.
_DEPTH_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)|`(?:[^`\\]|\\.)*(?:`|\Z)|->|[<{(\[>})\]]',
                           re.DOTALL)


def check_depth(text: str, what="type", opening="<{([", closing=">})]") -> None:
    """Rejects bracket nesting deeper than MAX_DEPTH before parsing, so nothing downstream
    recurses without bound. Brackets inside string literals and quoted names do not count."""
    depth = 0
    for match in _DEPTH_TOKENS.finditer(text):
        char = match.group()
        if char in opening:
            depth += 1
            if depth > MAX_DEPTH:
                line, column = position(text, match.start())
                raise error(text, line, column,
                            f"nesting is deeper than {MAX_DEPTH} levels.", what)
        elif char in closing:
            depth = max(0, depth - 1)


def from_lark(exc, text: str, terminals, what="type") -> TypeParseError:
    """Converts a Lark `UnexpectedInput` into a `TypeParseError`."""
    import lark
    line = getattr(exc, "line", None) or 1
    column = getattr(exc, "column", None) or 1
    if isinstance(exc, lark.exceptions.UnexpectedEOF) or line == -1:
        line, column = position(text, len(text))
        found = "the end of the text"
        expected = exc.expected
    elif isinstance(exc, lark.exceptions.UnexpectedToken):
        token = exc.token
        found = "the end of the text" if token.type == "$END" else f"{str(token)!r}"
        if token.type == "$END":
            line, column = position(text, len(text))
        expected = exc.expected
    else:  # UnexpectedCharacters
        found = f"{text[exc.pos_in_stream]!r}" if exc.pos_in_stream < len(text) else "the end"
        expected = exc.allowed
    names = sorted({_describe(name, terminals) for name in expected or ()})
    wanted = names[0] if len(names) == 1 else "one of " + ", ".join(names)
    return error(text, line, column, f"expected {wanted}, found {found}.", what)


def _describe(name, terminals):
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    pattern = terminals.get(name)
    if pattern is not None and pattern.type == "str":
        return repr(pattern.value)
    return name.lower()
