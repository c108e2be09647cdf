"""Parse a query into a small tree: comparisons and free text joined by and / or / not.

    query   := [or_expr] end
    or_expr := and_expr ("or" and_expr)*
    and_expr:= not_expr (["and"] not_expr)*        juxtaposition means and
    not_expr:= "not" not_expr | "(" or_expr ")" | FIELD OP VALUE | TEXT
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import QueryError
from registry.query._lexer import Token, tokenize

__all__ = ["And", "Compare", "Node", "Not", "Or", "Text", "Value", "parse"]

MAX_DEPTH = 32
MAX_TERMS = 100
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Bare words with these prefixes name fields; standing alone they are a forgotten operator.
_FIELD_PREFIXES = ("params.", "param.", "metrics.", "metric.", "tags.", "tag.", "data.", "code.")


@dataclass(frozen=True)
class Value:
    """A literal: its text as written, and its number when written as a bare number."""

    text: str
    number: float | None
    pos: int


@dataclass(frozen=True)
class Compare:
    field: str
    field_pos: int
    op: str
    op_pos: int
    value: Value


@dataclass(frozen=True)
class Text:
    phrase: str
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | Text | Not | And | Or


def parse(query: str) -> Node | None:
    """The tree of ``query``; None for an empty query (all runs)."""
    return _Parser(query).query()


class _Parser:
    def __init__(self, query: str) -> None:
        self.source = query
        self.tokens = tokenize(query)
        self.index = 0
        self.depth = 0
        self.terms = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, token: Token, expected: str) -> QueryError:
        return QueryError(self.source, token.pos, expected)

    def query(self) -> Node | None:
        node = None if self.token.kind == "end" else self.or_expr()
        if self.token.kind == ")":
            raise self.fail(self.token, "the end of the query (this ')' closes nothing)")
        if self.token.kind != "end":
            raise self.fail(self.token, "a field or search text")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.token.kind == "or":
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.token.kind in ("and", "word", "string", "(", "not"):
            if self.token.kind == "and":
                self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        token = self.token
        if token.kind == "not":
            self.advance()
            return Not(self.nested(token, self.not_expr))
        if token.kind == "(":
            self.advance()
            node = self.nested(token, self.or_expr)
            if self.token.kind != ")":
                raise self.fail(self.token, "')'")
            self.advance()
            return node
        if token.kind in ("word", "string"):
            return self.term()
        raise self.fail(token, "a field or search text")

    def nested(self, token: Token, rule) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"at most {MAX_DEPTH} nested parentheses or 'not's")
        node = rule()
        self.depth -= 1
        return node

    def term(self) -> Node:
        name = self.advance()
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.fail(name, f"at most {MAX_TERMS} conditions in one query")
        if self.token.kind != "op":
            if name.kind == "word" and name.text.lower().startswith(_FIELD_PREFIXES):
                raise self.fail(self.token, f"an operator (=, !=, <, <=, >, >=, ~) after "
                                            f"{name.text!r}")
            return Text(name.text, name.pos)
        op = self.advance()
        value = self.token
        if value.kind not in ("word", "string"):
            hint = " (quote it to compare with a keyword)" if value.kind in (
                "and", "or", "not") else ""
            raise self.fail(value, f"a value after '{op.text}'{hint}")
        self.advance()
        number = float(value.text) if value.kind == "word" and _NUMBER.fullmatch(
            value.text) else None
        return Compare(name.text, name.pos, "=" if op.text == "==" else op.text, op.pos,
                       Value(value.text, number, value.pos))
