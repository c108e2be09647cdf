"""Tags: short text labels on a run, checked alike wherever they are set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.errors import TagError
from registry.text import to_utf8

__all__ = ["MAX_KEY_LENGTH", "MAX_VALUE_LENGTH", "clean_tags"]

MAX_KEY_LENGTH = 250
# Tag values are indexed for "tags.KEY = VALUE" searches; PostgreSQL's index rows stop near
# 2,700 bytes, so longer text belongs in notes or an artifact.
MAX_VALUE_LENGTH = 1000


def clean_tags(tags: Mapping[str, Any] | list | tuple | set) -> tuple[dict[str, str], bool]:
    """Tags as text (a mapping, or a list of labels with value ""), and whether characters no
    store keeps (NUL, lone surrogates) were replaced by U+FFFD. TagError for an empty or long
    key, or a long value."""
    items = {t: "" for t in tags} if isinstance(tags, (list, tuple, set, frozenset)) \
        else dict(tags)
    cleaned, replaced = {}, False
    for raw_key, raw_value in items.items():
        (key, bad_key), (value, bad_value) = to_utf8(str(raw_key)), to_utf8(str(raw_value))
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise TagError(key[:80], value[:80], f"keys are 1 to {MAX_KEY_LENGTH} characters")
        if len(value) > MAX_VALUE_LENGTH:
            raise TagError(key, value[:80] + "...", f"values are at most {MAX_VALUE_LENGTH:,} "
                                                    "characters: put longer text in notes")
        cleaned[key] = value
        replaced = replaced or bad_key or bad_value
    return cleaned, replaced
