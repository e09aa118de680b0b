"""Locating the `.lark` files and building their parsers, once, on first use."""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.resources
from pathlib import Path

_REPO_GRAMMAR = Path(__file__).resolve().parents[2] / "grammar"


def grammar_text(name: str) -> str:
    """The text of `grammar/<name>`, from a source checkout or from the installed wheel."""
    local = _REPO_GRAMMAR / name
    if local.is_file():
        return local.read_text(encoding="utf-8")
    return importlib.resources.files("fcore._grammar").joinpath(name).read_text(
        encoding="utf-8")


@functools.lru_cache(maxsize=None)
def lalr_parser(name: str, transformer_factory=None):
    """A Lark LALR parser for `grammar/<name>`, transforming as it parses when given a
    transformer (so building the result never recurses, however deep the input)."""
    import lark
    kwargs = {}
    if transformer_factory is not None:
        kwargs["transformer"] = transformer_factory()
    return lark.Lark(grammar_text(name), parser="lalr", lexer="contextual",
                     propagate_positions=True, maybe_placeholders=True,
                     import_paths=[grammar_dir()], **kwargs)


def grammar_dir() -> str:
    """The folder holding the `.lark` files (for the grammars' `%import`s)."""
    if _REPO_GRAMMAR.is_dir():
        return str(_REPO_GRAMMAR)
    return str(importlib.resources.files("fcore._grammar"))


@contextlib.contextmanager
def gc_paused():
    """Pauses the cyclic garbage collector while a parse allocates its many small objects
    (tokens, trees, nodes; no cycles to speak of): otherwise its full collections, each
    walking everything alive, make long inputs parse in quadratic time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
