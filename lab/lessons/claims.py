"""Claims: the small arithmetic-and-comparison language of `expect` blocks.

    routed.b1 == 2
    served.max == 6
    routed.b1 < 0.5 * routed.b2
    0.1 <= moved <= 0.4

A claim is numbers and metric names joined by + - * / and parentheses, with one
or more comparisons (== != < <= > >=; a chain means each pair holds). It is
parsed here, never given to eval, and a metric name is looked up by the caller
(lab.lessons.measure says which names exist). A claim that divides by zero or
names an unknown metric is false, with a message that says why.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lab.lessons.errors import LessonError

TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)"
    r"|(?P<op>==|!=|<=|>=|<|>|[-+*/()]))"
)
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class ClaimError(ValueError):
    """A claim that cannot be worked out with the numbers at hand."""


# A parsed expression is a small tree: ("num", 2.0), ("name", "routed.b1"),
# ("neg", tree) or (op, left, right).
Tree = tuple


@dataclass(frozen=True)
class Claim:
    """One checked sentence of an `expect` block."""

    text: str
    terms: tuple[Tree, ...]  # the expressions between the comparisons
    comparisons: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """Every metric name the claim reads, in order."""
        found: list[str] = []
        for tree in self.terms:
            _names(tree, found)
        return list(dict.fromkeys(found))

    def holds(self, metrics: Mapping[str, float]) -> bool:
        """True if every comparison holds for these metric values; ClaimError if one is missing."""
        values = [_evaluate(tree, metrics) for tree in self.terms]
        return all(
            COMPARISONS[op](values[i], values[i + 1]) for i, op in enumerate(self.comparisons)
        )


def parse_claim(text: str) -> Claim:
    """Parse one claim; raise LessonError saying where it goes wrong."""
    if not isinstance(text, str) or not text.strip():
        raise LessonError(f"a check is a line of text like 'routed.b1 == 2', got {text!r}")
    parser = _Parser(text)
    terms = [parser.expression()]
    comparisons = []
    while parser.peek() in COMPARISONS:
        comparisons.append(parser.take())
        terms.append(parser.expression())
    if parser.peek() is not None:
        raise LessonError(f"unexpected {parser.peek()!r} in check {text!r}")
    if not comparisons:
        raise LessonError(f"check {text!r} compares nothing; use ==, <, >= ...")
    return Claim(text.strip(), tuple(terms), tuple(comparisons))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = TOKEN.match(text, position)
            if match is None:
                raise LessonError(f"cannot read {text[position:].strip()!r} in check {text!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self) -> str:
        value = self.peek()
        if value is None:
            raise LessonError(f"check {self.text!r} ends too soon")
        self.at += 1
        return value

    def expression(self) -> Tree:
        tree = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            tree = (op, tree, self.term())
        return tree

    def term(self) -> Tree:
        tree = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            tree = (op, tree, self.factor())
        return tree

    def factor(self) -> Tree:
        if self.at >= len(self.tokens):
            raise LessonError(f"check {self.text!r} ends too soon")
        kind, value = self.tokens[self.at]
        self.at += 1
        if kind == "number":
            return ("num", float(value))
        if kind == "name":
            return ("name", value)
        if value == "-":
            return ("neg", self.factor())
        if value == "(":
            tree = self.expression()
            if self.take() != ")":
                raise LessonError(f"missing ')' in check {self.text!r}")
            return tree
        raise LessonError(f"unexpected {value!r} in check {self.text!r}")


def _names(tree: Tree, found: list[str]) -> None:
    if tree[0] == "name":
        found.append(tree[1])
    elif tree[0] != "num":
        for part in tree[1:]:
            _names(part, found)


def _evaluate(tree: Tree, metrics: Mapping[str, float]) -> float:
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "name":
        if tree[1] not in metrics:
            raise ClaimError(f"no measurement called {tree[1]!r}")
        return float(metrics[tree[1]])
    if kind == "neg":
        return -_evaluate(tree[1], metrics)
    left, right = _evaluate(tree[1], metrics), _evaluate(tree[2], metrics)
    if kind == "/" and right == 0:
        raise ClaimError("it divides by zero")
    return ARITHMETIC[kind](left, right)
