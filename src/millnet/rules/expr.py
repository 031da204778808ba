"""The small safe expression language of rules (docs/rules.md, "Expressions").

A hand-written tokenizer and Pratt parser turn text into a tree of a few node types; nothing is
ever handed to ``eval`` or the ``ast`` module. Evaluation is vectorised: every point is an array
(one element per device bound to a rule, or per time step) and the whole tree runs as numpy
operations, so one rule over ten thousand machines costs a handful of array operations.

Errors at run time (a division by zero, the square root of a negative number, a missing point
value, an overflow) are per element: they mark only the elements they hit, carry a reason, and
never raise. Grammar, lowest precedence first::

    expr   := or
    or     := and ("or" and)*
    and    := not ("and" not)*
    not    := "not" not | cmp
    cmp    := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?     # does not chain
    sum    := prod (("+" | "-") prod)*
    prod   := unary (("*" | "/" | "%") unary)*
    unary  := "-" unary | atom
    atom   := NUMBER | "true" | "false" | "{" point name "}" | IDENT | IDENT "(" args ")"
              | "(" expr ")"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from millnet.errors import InvalidInput

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_REFS", "MAX_TEXT", "Evaluation", "Expression",
           "ExpressionError", "compile_expression"]

MAX_TEXT = 1000
MAX_DEPTH = 32
MAX_REFS = 64
#: name -> (fewest, most) arguments; None: any number.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1), "sqrt": (1, 1), "min": (2, None), "max": (2, None), "clamp": (3, 3)}
_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
# Binding power of infix operators; higher binds tighter. "not" sits between and/comparison.
_INFIX = {"or": 1, "and": 2, **dict.fromkeys(_COMPARISONS, 4), "+": 5, "-": 5,
          "*": 6, "/": 6, "%": 6}
_NOT_BP = 3
_NEG_BP = 6  # the operand of unary minus stops before * / %: -a * b is (-a) * b

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<point>\{[^{}]*\})
  | (?P<op><=|>=|==|!=|[-+*/%<>(),])
""", re.VERBOSE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class ExpressionError(InvalidInput):
    """Text that is not a valid expression; ``position`` is the 0-based offset of the problem,
    shown as a 1-based column."""

    def __init__(self, message: str, position: int, field: str | None = None) -> None:
        super().__init__(f"{message} at column {position + 1}", field)
        self.reason = message
        self.position = position


# The syntax tree. ``height`` bounds the evaluator's recursion; ``pos`` points errors at text.


@dataclass(frozen=True, slots=True)
class _Num:
    value: float
    text: str
    pos: int
    height: int = 1


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str
    pos: int
    height: int = 1


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str  # "-" or "not"
    operand: _Node
    pos: int
    height: int


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node
    pos: int
    height: int


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    pos: int
    height: int


_Node = _Num | _Ref | _Unary | _Binary | _Call


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, name, point, op, end
    text: str
    pos: int


def point_text(name: str) -> str:
    """How a point reference is written back: always in braces (any name fits them)."""
    return "{" + name + "}"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            what = "'{' without a matching '}'" if char == "{" else f"character {char!r}"
            raise ExpressionError(f"unexpected {what}", pos)
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._at = 0
        self.refs: set[str] = set()

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _next(self) -> _Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _expect(self, text: str) -> _Token:
        token = self._next()
        if token.text != text or token.kind not in ("op",):
            raise ExpressionError(f"expected '{text}', found {_describe(token)}", token.pos)
        return token

    def parse(self) -> _Node:
        tree = self._expr(0, 1)
        token = self._peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {_describe(token)}", token.pos)
        return tree

    def _expr(self, min_bp: int, depth: int) -> _Node:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", self._peek().pos)
        left = self._prefix(depth)
        while True:
            token = self._peek()
            bp = _INFIX.get(token.text) if token.kind in ("op", "name") else None
            if bp is None or bp <= min_bp:
                return left
            self._next()
            right = self._expr(bp, depth + 1)
            left = _Binary(token.text, left, right, token.pos,
                           _height(token.pos, left, right))
            following = self._peek()
            if token.text in _COMPARISONS and following.text in _COMPARISONS:
                raise ExpressionError(
                    "comparisons do not chain: write 'a < b and b < c'", following.pos)

    def _prefix(self, depth: int) -> _Node:
        token = self._next()
        if token.kind == "num":
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"number out of range: {token.text}", token.pos)
            return _Num(value, token.text, token.pos)
        if token.kind == "point":
            return self._ref(token.text[1:-1], token.pos)
        if token.text == "-" and token.kind == "op":
            operand = self._expr(_NEG_BP, depth + 1)
            return _Unary("-", operand, token.pos, _height(token.pos, operand))
        if token.text == "(" and token.kind == "op":
            inner = self._expr(0, depth + 1)
            self._expect(")")
            return inner
        if token.kind == "name":
            return self._name(token, depth)
        raise ExpressionError(f"expected a value, found {_describe(token)}", token.pos)

    def _name(self, token: _Token, depth: int) -> _Node:
        if token.text in ("true", "false"):
            return _Num(1.0 if token.text == "true" else 0.0, token.text, token.pos)
        if token.text == "not":
            operand = self._expr(_NOT_BP, depth + 1)
            return _Unary("not", operand, token.pos, _height(token.pos, operand))
        if token.text in _KEYWORDS:
            raise ExpressionError(f"expected a value, found '{token.text}'", token.pos)
        if self._peek().text == "(":
            return self._call(token, depth)
        return self._ref(token.text, token.pos)

    def _call(self, token: _Token, depth: int) -> _Node:
        if token.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function '{token.text}' (one of {known})",
                                  token.pos)
        self._expect("(")
        args: list[_Node] = []
        if self._peek().text != ")":
            args.append(self._expr(0, depth + 1))
            while self._peek().text == ",":
                self._next()
                args.append(self._expr(0, depth + 1))
        self._expect(")")
        fewest, most = FUNCTIONS[token.text]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = str(fewest) if fewest == most else f"at least {fewest}"
            raise ExpressionError(
                f"{token.text}() takes {wanted} arguments, not {len(args)}", token.pos)
        return _Call(token.text, tuple(args), token.pos, _height(token.pos, *args))

    def _ref(self, name: str, pos: int) -> _Ref:
        if not name.strip():
            raise ExpressionError("empty point name in '{}'", pos)
        if _CONTROL.search(name):
            raise ExpressionError("point name with a control character", pos)
        self.refs.add(name)
        if len(self.refs) > MAX_REFS:
            raise ExpressionError(f"more than {MAX_REFS} points referenced", pos)
        return _Ref(name, pos)


def _height(pos: int, *children: _Node) -> int:
    height = 1 + max(child.height for child in children)
    if height > MAX_DEPTH:
        raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", pos)
    return height


def _describe(token: _Token) -> str:
    return "the end of the expression" if token.kind == "end" else f"'{token.text}'"


def compile_expression(text: str, field: str) -> Expression:
    """Parse ``text``; ExpressionError (an InvalidInput naming ``field``, "at column N")
    when it is not a valid expression."""
    if not isinstance(text, str):
        raise InvalidInput(f"must be an expression (a string), not {type(text).__name__}", field)
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"longer than {MAX_TEXT} characters ({len(text)})", MAX_TEXT,
                              field)
    if not text.strip():
        raise ExpressionError("empty expression", 0, field)
    try:
        parser = _Parser(text)
        tree = parser.parse()
    except ExpressionError as exc:
        raise ExpressionError(exc.reason, exc.position, field) from None
    return Expression(text, tuple(sorted(parser.refs)), tree)


# Writing a tree back as text (for the reasons of run-time errors).

_PREFIX_BP = {"-": 7, "not": _NOT_BP}


def _bp(node: _Node) -> int:
    if isinstance(node, _Binary):
        return _INFIX[node.op]
    if isinstance(node, _Unary):
        return _PREFIX_BP[node.op]
    return 8


def show(node: _Node) -> str:
    """The canonical text of a (sub)tree, with only the parentheses it needs."""
    if isinstance(node, _Num):
        return node.text
    if isinstance(node, _Ref):
        return point_text(node.name)
    if isinstance(node, _Call):
        return f"{node.name}({', '.join(show(arg) for arg in node.args)})"
    if isinstance(node, _Unary):
        inner = show(node.operand)
        inner = inner if _bp(node.operand) >= _PREFIX_BP[node.op] else f"({inner})"
        return f"-{inner}" if node.op == "-" else f"not {inner}"
    bp = _INFIX[node.op]
    left, right = show(node.left), show(node.right)
    # Left associative: a right operand of the same strength needs parentheses; comparisons
    # do not chain, so either side of one needs them.
    if _bp(node.left) < bp or (_bp(node.left) == bp and node.op in _COMPARISONS):
        left = f"({left})"
    if _bp(node.right) <= bp:
        right = f"({right})"
    return f"{left} {node.op} {right}"


# Evaluation: every node gives (values, errors, reason of its first error).

_Result = tuple[FloatArray, BoolArray, str | None]

_ARITHMETIC: dict[str, Callable[[FloatArray, FloatArray], FloatArray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.remainder}
_COMPARE: dict[str, Callable[[FloatArray, FloatArray], BoolArray]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
    "==": np.equal, "!=": np.not_equal}


def _first(*parts: tuple[BoolArray, str | None]) -> str | None:
    return next((reason for errors, reason in parts if reason is not None and errors.any()),
                None)


class _Evaluator:
    def __init__(self, values: Mapping[str, FloatArray], size: int) -> None:
        self._values = values
        self._size = size

    def run(self, node: _Node) -> _Result:
        if isinstance(node, _Num):
            return np.full(self._size, node.value), np.zeros(self._size, np.bool_), None
        if isinstance(node, _Ref):
            return self._ref(node)
        if isinstance(node, _Unary):
            value, errors, reason = self.run(node.operand)
            if node.op == "-":
                return -value, errors, reason
            return (value == 0).astype(np.float64), errors, reason
        if isinstance(node, _Call):
            return self._call(node)
        if node.op in ("and", "or"):
            return self._logic(node)
        left, right = self.run(node.left), self.run(node.right)
        if node.op in _COMPARE:
            errors = left[1] | right[1]
            value = _COMPARE[node.op](left[0], right[0]).astype(np.float64)
            return value, errors, _first(left[1:], right[1:])
        return self._arithmetic(node, left, right)

    def _ref(self, node: _Ref) -> _Result:
        given = self._values.get(node.name)
        if given is None:
            value = np.full(self._size, np.nan)
        else:
            value = np.broadcast_to(np.asarray(given, np.float64), (self._size,))
        errors = ~np.isfinite(value)
        if not errors.any():
            return value, errors, None
        nan = np.isnan(value)
        what = "no value" if nan.any() else "not a finite value"
        return value, errors, f"{what} of {point_text(node.name)}"

    def _logic(self, node: _Binary) -> _Result:
        # Short-circuit per element: an error on the right side matters only where the left
        # side does not decide the result alone.
        left, left_errors, left_reason = self.run(node.left)
        right, right_errors, right_reason = self.run(node.right)
        left_true, right_true = left != 0, right != 0
        if node.op == "and":
            value, needs_right = left_true & right_true, left_true
        else:
            value, needs_right = left_true | right_true, ~left_true
        masked = ~left_errors & needs_right & right_errors
        errors = left_errors | masked
        return value.astype(np.float64), errors, _first((left_errors, left_reason),
                                                        (masked, right_reason))

    def _arithmetic(self, node: _Binary, left: _Result, right: _Result) -> _Result:
        errors = left[1] | right[1]
        reason = _first(left[1:], right[1:])
        divisor = right[0]
        if node.op in ("/", "%"):
            zero = ~errors & (divisor == 0)
            if zero.any():
                reason = reason or f"division by zero in {show(node)}"
                errors = errors | zero
                divisor = np.where(zero, 1.0, divisor)
        with np.errstate(all="ignore"):
            value = _ARITHMETIC[node.op](left[0], divisor)
        return self._in_range(node, value, errors, reason)

    def _in_range(self, node: _Node, value: FloatArray, errors: BoolArray,
                  reason: str | None) -> _Result:
        overflow = ~errors & ~np.isfinite(value)
        if overflow.any():
            return value, errors | overflow, reason or f"result out of range in {show(node)}"
        return value, errors, reason

    def _call(self, node: _Call) -> _Result:
        args = [self.run(arg) for arg in node.args]
        errors = np.logical_or.reduce([arg[1] for arg in args])
        reason = _first(*(arg[1:] for arg in args))
        values = [arg[0] for arg in args]
        with np.errstate(all="ignore"):
            if node.name == "abs":
                return np.abs(values[0]), errors, reason
            if node.name == "min":
                return np.minimum.reduce(values), errors, reason
            if node.name == "max":
                return np.maximum.reduce(values), errors, reason
            if node.name == "clamp":
                return np.minimum(np.maximum(values[0], values[1]), values[2]), errors, reason
            negative = ~errors & (values[0] < 0)
            if negative.any():
                reason = reason or f"square root of a negative number in {show(node)}"
                errors = errors | negative
            return np.sqrt(np.where(negative, 0.0, values[0])), errors, reason


class _Suspect(Exception):
    """A non-finite value appeared: the fast evaluation defers to the exact one."""


def _fast(node: _Node, values: Mapping[str, FloatArray]) -> FloatArray | float:
    """Values only, no error bookkeeping: the common case of finite inputs and no division by
    zero costs one numpy call per node. Anything non-finite (a missing input, a division by
    zero, a negative square root, an overflow) raises :class:`_Suspect`, and the exact
    evaluator, which says which element failed and why, runs instead; so both always agree."""
    if isinstance(node, _Num):
        return node.value
    if isinstance(node, _Ref):
        given = values.get(node.name)
        if given is None:
            raise _Suspect
        array = np.asarray(given, np.float64)
        if not np.isfinite(array).all():
            raise _Suspect
        return array
    if isinstance(node, _Unary):
        operand = _fast(node.operand, values)
        return -operand if node.op == "-" else np.equal(operand, 0).astype(np.float64)
    if isinstance(node, _Call):
        args = [_fast(arg, values) for arg in node.args]
        if node.name == "abs":
            return np.abs(args[0])
        if node.name in ("min", "max"):
            reduce = np.minimum.reduce if node.name == "min" else np.maximum.reduce
            reduced: FloatArray = reduce(np.broadcast_arrays(*args))
            return reduced
        if node.name == "clamp":
            return np.minimum(np.maximum(args[0], args[1]), args[2])
        if np.any(np.less(args[0], 0)):
            raise _Suspect
        return np.sqrt(args[0])
    left = np.asarray(_fast(node.left, values), np.float64)
    right = np.asarray(_fast(node.right, values), np.float64)
    if node.op == "and":
        return np.logical_and(np.not_equal(left, 0), np.not_equal(right, 0)).astype(np.float64)
    if node.op == "or":
        return np.logical_or(np.not_equal(left, 0), np.not_equal(right, 0)).astype(np.float64)
    if node.op in _COMPARE:
        return _COMPARE[node.op](left, right).astype(np.float64)
    result = _ARITHMETIC[node.op](left, right)
    if not np.isfinite(result).all():
        raise _Suspect
    return result


@dataclass(frozen=True)
class Evaluation:
    """One evaluation over arrays: booleans are 1.0/0.0; an element in ``error`` is NaN."""

    value: FloatArray
    error: BoolArray
    reason: str | None  # the first error's reason, None when there is none


@dataclass(frozen=True)
class Expression:
    """A parsed expression; make one with :func:`compile_expression`."""

    text: str
    inputs: tuple[str, ...]  # the point names referenced, sorted, unique
    tree: _Node = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, FloatArray]) -> Evaluation:
        """Evaluate over arrays of equal length (a missing name or a NaN element is a missing
        value); the result has that length (1 when no input is an array)."""
        size = _size(values, self.inputs)
        try:
            with np.errstate(all="ignore"):
                fast = _fast(self.tree, values)
            return Evaluation(np.broadcast_to(fast, (size,)).astype(np.float64, copy=True),
                              np.zeros(size, np.bool_), None)
        except _Suspect:
            pass
        value, errors, reason = _Evaluator(values, size).run(self.tree)
        value = np.broadcast_to(value, (size,)).astype(np.float64, copy=True)
        errors = np.broadcast_to(errors, (size,)).copy()
        value[errors] = np.nan
        return Evaluation(value, errors, reason)

    def canonical(self) -> str:
        """The expression written back with braces around every point, minimal parentheses."""
        return show(self.tree)


def _size(values: Mapping[str, FloatArray], inputs: tuple[str, ...]) -> int:
    sizes = {np.shape(values[name]) for name in inputs if name in values}
    sizes.discard(())
    if not sizes:
        sizes = {np.shape(array) for array in values.values()} - {()}
    if not sizes:
        return 1
    if len(sizes) > 1 or any(len(shape) != 1 for shape in sizes):
        raise ValueError(f"inputs must be 1-D arrays of one length, got shapes {sorted(sizes)}")
    return int(next(iter(sizes))[0])


def is_bare_name(name: str) -> bool:
    """A point name that can be written without braces (and is not a keyword)."""
    return _BARE.fullmatch(name) is not None and name not in _KEYWORDS
