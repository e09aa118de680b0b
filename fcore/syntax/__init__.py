"""Parsing the text forms of types and computations (Lark grammars under `grammar/`)."""
