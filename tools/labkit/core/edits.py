"""Exact text edits of a source file: how the bug zoo and the example submissions describe a variant.

A variant is kept as (old, new) replacements of the reference (or the stubs) rather than as a copy,
so that it follows every change of the file it edits, and fails loudly, naming itself, the day an
edit no longer finds its text.
"""

from __future__ import annotations

from collections.abc import Iterable


class EditError(Exception):
    """An edit's target text is missing from the source, or found more than once."""


def apply_edits(name: str, edits: Iterable[tuple[str, str]], source: str) -> str:
    """source with edits applied in order; each old text must match exactly once (name: for the error)."""
    for old, new in edits:
        count = source.count(old)
        if count != 1:
            raise EditError(f"{name}: edit target found {count} times (needs 1):\n{old}")
        source = source.replace(old, new)
    return source
