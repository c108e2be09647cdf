"""Text that must survive a round trip through any database: valid UTF-8 only."""

from __future__ import annotations

import re

__all__ = ["is_utf8", "to_utf8"]

# Lone surrogates are the only str characters UTF-8 cannot encode (they come from bytes
# decoded with "surrogateescape", as file names and command lines are); NUL is valid UTF-8
# that PostgreSQL refuses in text.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (lone surrogates from bad bytes do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_utf8(text: str) -> tuple[str, bool]:
    """Replace what no store keeps as text (lone surrogates, NUL) with U+FFFD; says whether
    it had to."""
    if "\x00" not in text and is_utf8(text):
        return text, False
    return _UNSTORABLE.sub("\ufffd", text), True
