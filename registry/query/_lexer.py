"""Split a query into tokens, each remembering where it starts (for error carets)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import QueryError

__all__ = ["KEYWORDS", "OPERATORS", "Token", "check_characters", "tokenize"]

KEYWORDS = frozenset({"and", "or", "not"})
OPERATORS = ("==", "!=", "<=", ">=", "=", "<", ">", "~")
_SPACE = re.compile(r"\s+")
# A bare word runs until whitespace, a parenthesis, a quote or an operator character.
_WORD = re.compile(r"[^\s()'\"=<>!~]+")
_BAD = re.compile(r"[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Token:
    """``kind`` is word, string, op, and, or, not, ``(``, ``)`` or end."""

    kind: str
    text: str
    pos: int
    end: int


def tokenize(query: str) -> list[Token]:
    """The tokens of ``query``, ending with an ``end`` token at ``len(query)``."""
    check_characters(query)
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        if space := _SPACE.match(query, pos):
            pos = space.end()
            continue
        token = _next(query, pos)
        tokens.append(token)
        pos = token.end
    tokens.append(Token("end", "", len(query), len(query)))
    return tokens


def check_characters(text: str) -> None:
    """Refuse what no database accepts in a bound string: NUL and lone surrogates."""
    bad = _BAD.search(text)
    if bad:
        raise QueryError(text, bad.start(), "text without NUL characters or lone surrogates")


def _next(query: str, pos: int) -> Token:
    char = query[pos]
    if char in "()":
        return Token(char, char, pos, pos + 1)
    if char in "'\"":
        text, end = _unquote(query, pos)
        return Token("string", text, pos, end)
    for op in OPERATORS:
        if query.startswith(op, pos):
            return Token("op", op, pos, pos + len(op))
    if char == "!":
        raise QueryError(query, pos, "'!=' (a lone '!' is not an operator)")
    word = _WORD.match(query, pos)
    assert word is not None  # every other character starts a word
    text = word.group()
    kind = text.lower() if text.lower() in KEYWORDS else "word"
    return Token(kind, text, pos, word.end())


def _unquote(query: str, start: int) -> tuple[str, int]:
    """The text of the quoted string at ``start`` and where it ends; a backslash takes the
    next character as is."""
    quote, out, pos = query[start], [], start + 1
    while pos < len(query):
        char = query[pos]
        if char == "\\" and pos + 1 < len(query):
            out.append(query[pos + 1])
            pos += 2
        elif char == quote:
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise QueryError(query, start, f"a closing {quote} for the string that starts here")

