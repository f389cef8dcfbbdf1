"""The XPath subset of XLSForm expressions the definition can hold.

Tokens come from pyxform's own lexer (``pyxform.parsing.expression.parse_expression``); a
small recursive-descent parser over them builds a tree, which is then turned into a
:class:`Condition` (``relevant``), limits (``constraint``) or a :class:`Formula`
(``calculation``). Anything outside the subset raises :class:`Unsupported` with what to
write instead, which the importer reports against the row and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from lark import Token
from pyxform.parsing.expression import parse_expression

from api.answers import NESTED_REPEAT
from api.i18n import N_
from schemas.surveys import Condition, Formula


class Unsupported(Exception):
    """``what`` and ``instead`` are message ids (formatted with ``params``)."""

    def __init__(self, what: str, instead: str, **params: object) -> None:
        super().__init__(what)
        self.what = what
        self.instead = instead
        self.params = params


SYNTAX = N_("the expression could not be read")
SYNTAX_INSTEAD = N_("check the parentheses, quotes and operators")
FUNCTION = N_("the function %(name)s() is not supported")
FUNCTION_INSTEAD = N_("use comparisons, and/or/not and selected() only")
RELEVANT_SHAPE = N_("this kind of condition is not supported")
RELEVANT_INSTEAD = N_(
    "compare one earlier answer with a number or a quoted text (${key} >= 15), or use "
    "selected(${key}, 'value'), combined with and, or, not()"
)
CONSTRAINT_SHAPE = N_("this kind of constraint is not supported")
CONSTRAINT_INSTEAD = N_(
    "use . >= n and . <= n for numbers and dates, string-length(.) <= n for lengths, or "
    "regex(., 'pattern') for texts"
)
SLOW_REGEX = N_("a repetition inside a repeated group, such as (a+)+, is not supported")
SLOW_REGEX_INSTEAD = N_("simplify the pattern: it could take very long to check")
FORMULA_SHAPE = N_("this kind of calculation is not supported")
FORMULA_INSTEAD = N_("use + - * div mod with numbers and earlier numeric answers ${key}")
FILTER_SHAPE = N_("this kind of choice filter is not supported")
FILTER_INSTEAD = N_("filter on one column of the choices sheet: column = ${earlier_question}")


@dataclass(frozen=True)
class Node:
    """``num``, ``str``, ``date``, ``ref`` (an answer), ``self`` (.), ``name`` (a bare
    column name), ``call`` (``text`` names the function), ``op`` (``text`` is the
    operator) or ``neg``."""

    kind: str
    text: str = ""
    number: float = 0.0
    args: tuple[Node, ...] = field(default_factory=tuple)


_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[Token] = []
        for token in parse_expression(text):
            last = self.tokens[-1] if self.tokens else None
            # The lexer reads ">=" as ">" then "=" (when they touch): join them again.
            if (
                token.type == "OPS_COMP"
                and str(token) == "="
                and last is not None
                and last.type == "OPS_COMP"
                and str(last) in ("<", ">")
            ):
                self.tokens[-1] = Token("OPS_COMP", f"{last}=")
            elif token.type == "WHITESPACE":
                # A space between "<" and "=" keeps them apart, as XPath does.
                self.tokens.append(token)
            else:
                self.tokens.append(token)
        self.tokens = [t for t in self.tokens if t.type != "WHITESPACE"]
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise Unsupported(SYNTAX, SYNTAX_INSTEAD)
        self.at += 1
        return token

    def expect(self, kind: str) -> None:
        if self.take().type != kind:
            raise Unsupported(SYNTAX, SYNTAX_INSTEAD)

    def operator(self, *names: str) -> str | None:
        token = self.peek()
        if token is None:
            return None
        text = str(token).strip()
        if token.type in ("OPS_BOOL", "OPS_MATH", "OPS_COMP") and text in names:
            self.at += 1
            return text
        # "5 -3" lexes as two numbers: a signed number after an operand is a subtraction.
        if "-" in names and token.type == "NUMBER" and text.startswith("-"):
            self.tokens[self.at] = Token("NUMBER", text[1:])
            return "-"
        return None

    def parse(self) -> Node:
        node = self.disjunction()
        if self.peek() is not None:
            raise Unsupported(SYNTAX, SYNTAX_INSTEAD)
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.operator("or"):
            node = Node("op", "or", args=(node, self.conjunction()))
        return node

    def conjunction(self) -> Node:
        node = self.comparison()
        while self.operator("and"):
            node = Node("op", "and", args=(node, self.comparison()))
        return node

    def comparison(self) -> Node:
        node = self.sum()
        found = self.operator(*_COMPARISONS)
        if found:
            node = Node("op", found, args=(node, self.sum()))
        return node

    def sum(self) -> Node:
        node = self.product()
        while found := self.operator("+", "-"):
            node = Node("op", found, args=(node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while found := self.operator("*", "div", "mod"):
            node = Node("op", found, args=(node, self.unary()))
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token.type == "OPS_MATH" and str(token).strip() == "-":
            self.at += 1
            return Node("neg", args=(self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        text = str(token)
        match token.type:
            case "NUMBER":
                return Node("num", text, float(text))
            case "SYSTEM_LITERAL":
                return Node("str", text[1:-1])
            case "DATE":
                return Node("date", text)
            case "PYXFORM_REF":
                return Node("ref", text[2:-1])
            case "SELF_REF":
                return Node("self")
            case "NAME":
                return Node("name", text)
            case "OPEN_PAREN":
                node = self.disjunction()
                self.expect("CLOSE_PAREN")
                return node
            case "FUNC_CALL":
                name = text[:-1]
                args: list[Node] = []
                closing = self.peek()
                if closing is not None and closing.type == "CLOSE_PAREN":
                    self.at += 1
                    return Node("call", name)
                args.append(self.disjunction())
                while (comma := self.peek()) is not None and comma.type == "COMMA":
                    self.at += 1
                    args.append(self.disjunction())
                self.expect("CLOSE_PAREN")
                return Node("call", name, args=tuple(args))
        raise Unsupported(SYNTAX, SYNTAX_INSTEAD)


def parse(text: str) -> Node:
    try:
        return _Parser(text).parse()
    except RecursionError as exc:
        raise Unsupported(SYNTAX, SYNTAX_INSTEAD) from exc


def _literal(node: Node) -> Any:
    if node.kind == "num":
        return int(node.number) if node.number.is_integer() else node.number
    if node.kind == "str":
        return node.text
    if node.kind == "neg" and node.args[0].kind == "num":
        return -_literal(node.args[0])
    if node.kind == "call" and node.text in ("true", "false") and not node.args:
        return node.text == "true"
    return None


_CONDITION_OPS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def condition(text: str) -> Condition:
    """A ``relevant`` expression as a Condition."""
    return _condition(parse(text))


def _condition(node: Node) -> Condition:
    if node.kind == "op" and node.text in ("and", "or"):
        op: Literal["all", "any"] = "all" if node.text == "and" else "any"
        parts: list[Condition] = []
        for arg in node.args:
            part = _condition(arg)
            parts += (part.of or []) if part.op == op else [part]
        return Condition(op=op, of=parts)
    if node.kind == "call":
        if node.text == "not" and len(node.args) == 1:
            return Condition(op="not", of=[_condition(node.args[0])])
        if (
            node.text == "selected"
            and len(node.args) == 2
            and node.args[0].kind == "ref"
            and _literal(node.args[1]) is not None
        ):
            return Condition(key=node.args[0].text, op="in", value=[str(_literal(node.args[1]))])
        raise Unsupported(FUNCTION, FUNCTION_INSTEAD, name=node.text)
    if node.kind == "op" and node.text in _COMPARISONS:
        left, right = node.args
        operator = node.text
        if right.kind == "ref" and left.kind != "ref":
            left, right, operator = right, left, _FLIPPED[operator]
        value = _literal(right)
        if left.kind == "ref" and value is not None:
            if value == "" and operator in ("=", "!="):
                return Condition(
                    key=left.text, op="not_answered" if operator == "=" else "answered"
                )
            if operator in ("<", "<=", ">", ">=") and isinstance(value, str):
                try:
                    value = float(value) if "." in value else int(value)
                except ValueError as exc:
                    raise Unsupported(RELEVANT_SHAPE, RELEVANT_INSTEAD) from exc
            return Condition(key=left.text, op=_CONDITION_OPS[operator], value=value)  # type: ignore[arg-type]
    raise Unsupported(RELEVANT_SHAPE, RELEVANT_INSTEAD)


@dataclass
class Limits:
    """What a ``constraint`` says, as the definition's fields."""

    minimum: float | None = None
    maximum: float | None = None
    earliest: date | None = None
    latest: date | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None


def constraint(text: str, kind: str) -> Limits:
    """A ``constraint`` on a question of ``kind`` (integer, decimal, date or text)."""
    limits = Limits()
    for part in _conjuncts(parse(text)):
        _limit(part, kind, limits)
    return limits


def _conjuncts(node: Node) -> list[Node]:
    if node.kind == "op" and node.text == "and":
        return [part for arg in node.args for part in _conjuncts(arg)]
    return [node]


def _date(node: Node) -> date | None:
    text = node.text if node.kind in ("str", "date") else None
    if node.kind == "call" and node.text == "date" and len(node.args) == 1:
        text = node.args[0].text if node.args[0].kind in ("str", "date") else None
    if text is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _limit(node: Node, kind: str, limits: Limits) -> None:
    if node.kind == "call" and node.text == "regex" and kind == "text":
        subject, pattern = node.args if len(node.args) == 2 else (Node("none"), Node("none"))
        if subject.kind == "self" and pattern.kind == "str":
            try:
                re.compile(pattern.text)
            except re.error as exc:
                raise Unsupported(CONSTRAINT_SHAPE, CONSTRAINT_INSTEAD) from exc
            if NESTED_REPEAT.search(pattern.text):
                raise Unsupported(SLOW_REGEX, SLOW_REGEX_INSTEAD)
            limits.pattern = pattern.text
            return
    if node.kind == "op" and node.text in _COMPARISONS and node.text not in ("=", "!="):
        left, right = node.args
        operator = node.text
        if left.kind == "num" or _date(left) is not None:
            left, right, operator = right, left, _FLIPPED[operator]
        lower = operator in (">", ">=")
        strict = operator in ("<", ">")
        if left.kind == "self" and kind in ("integer", "decimal") and right.kind in ("num", "neg"):
            number = _literal(right)
            if isinstance(number, int | float) and not isinstance(number, bool):
                if strict and kind == "integer" and isinstance(number, int):
                    number = number + 1 if lower else number - 1
                elif strict:
                    raise Unsupported(CONSTRAINT_SHAPE, CONSTRAINT_INSTEAD)
                if lower:
                    limits.minimum = number
                else:
                    limits.maximum = number
                return
        day = _date(right) if left.kind == "self" and kind == "date" else None
        if day is not None and not strict:  # a strict date bound falls through to the report
            if lower:
                limits.earliest = day
            else:
                limits.latest = day
            return
        if (
            left.kind == "call"
            and left.text == "string-length"
            and len(left.args) == 1
            and left.args[0].kind == "self"
            and kind == "text"
            and right.kind == "num"
            and right.number.is_integer()
        ):
            length = int(right.number) + (1 if strict and lower else -1 if strict else 0)
            if lower:
                limits.min_length = length
            else:
                limits.max_length = length
            return
    raise Unsupported(CONSTRAINT_SHAPE, CONSTRAINT_INSTEAD)


_FORMULA_OPS = {"+": "add", "-": "sub", "*": "mul", "div": "div", "mod": "mod"}


def formula(text: str) -> Formula:
    """A ``calculation`` as a Formula."""
    return _formula(parse(text))


def _formula(node: Node) -> Formula:
    if node.kind == "num":
        return Formula(value=node.number)
    if node.kind == "ref":
        return Formula(key=node.text)
    if node.kind == "neg":
        return Formula(op="neg", args=[_formula(node.args[0])])
    if node.kind == "op" and node.text in _FORMULA_OPS:
        return Formula(op=_FORMULA_OPS[node.text], args=[_formula(arg) for arg in node.args])  # type: ignore[arg-type]
    if node.kind == "call":
        raise Unsupported(FUNCTION, FORMULA_INSTEAD, name=node.text)
    raise Unsupported(FORMULA_SHAPE, FORMULA_INSTEAD)


def choice_filter(text: str) -> tuple[str, str]:
    """``column = ${key}`` as (column, key)."""
    node = parse(text)
    if node.kind == "op" and node.text == "=":
        left, right = node.args
        if left.kind == "ref":
            left, right = right, left
        if left.kind == "name" and right.kind == "ref":
            return left.text, right.text
    raise Unsupported(FILTER_SHAPE, FILTER_INSTEAD)


def references(text: str) -> list[str]:
    """The ``${key}`` answers an expression reads."""
    return [str(t)[2:-1] for t in parse_expression(text) if t.type == "PYXFORM_REF"]
