"""Parsing the project's own source for tests that check it (templates, imports)."""

from __future__ import annotations

import ast
from pathlib import Path


def parse_file(path: Path) -> ast.Module:
    """ast.parse, tried a second time on CPython 3.11's spurious "AST constructor recursion depth mismatch"
    (python/cpython#106905: the AST builder's depth counter is shared, so another thread parsing at the same
    moment — an import in a background thread — can trip it); a real syntax error still raises."""
    text = path.read_text(encoding="utf-8")
    try:
        return ast.parse(text, str(path))
    except SystemError:
        return ast.parse(text, str(path))
