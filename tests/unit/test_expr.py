"""The rule expression language: parsing, limits, errors and vectorised evaluation.

The property tests build random trees, print them as text, parse that back and compare the
vectorised evaluation with a reference evaluator over plain Python floats written here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.rules.expr import (
    MAX_DEPTH,
    MAX_REFS,
    MAX_TEXT,
    ExpressionError,
    compile_expression,
)

# A tree is a tuple: ("num", x) | ("ref", name) | (op, child) | (op, left, right)
# | ("call", name, args).
Tree = tuple[Any, ...]
NAMES = ("A", "B", "Speed", "Spindle/Temp C")
BINARY = ("+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "and", "or")
FUNCS = {"abs": 1, "sqrt": 1, "min": 2, "max": 3, "clamp": 3}
N = 4

numbers = st.one_of(st.integers(-5, 5).map(float),
                    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                    st.sampled_from([0.0, 1e300, 1e-300]))
leaves = st.one_of(numbers.map(lambda x: ("num", x)),
                   st.sampled_from(NAMES).map(lambda n: ("ref", n)))


def _extend(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    return st.one_of(
        st.tuples(st.sampled_from(BINARY), children, children),
        st.tuples(st.sampled_from(["neg", "not"]), children),
        st.sampled_from(sorted(FUNCS)).flatmap(
            lambda f: st.tuples(st.just("call"), st.just(f),
                                st.lists(children, min_size=FUNCS[f], max_size=FUNCS[f]))))


trees = st.recursive(leaves, _extend, max_leaves=10)
inputs = st.fixed_dictionaries({name: st.lists(
    st.one_of(numbers, st.just(math.nan)), min_size=N, max_size=N) for name in NAMES})


def height(tree: Tree) -> int:
    if tree[0] in ("num", "ref"):
        return 1
    if tree[0] == "call":
        return 1 + max(height(arg) for arg in tree[2])
    return 1 + max(height(child) for child in tree[1:])


def to_text(tree: Tree) -> str:
    """Fully parenthesised, so that precedence in the parser is what is tested elsewhere."""
    kind = tree[0]
    if kind == "num":
        return f"({tree[1]!r})"
    if kind == "ref":
        name = str(tree[1])
        return name if name.isidentifier() else "{" + name + "}"
    if kind == "neg":
        return f"(-{to_text(tree[1])})"
    if kind == "not":
        return f"(not {to_text(tree[1])})"
    if kind == "call":
        return f"{tree[1]}({', '.join(to_text(a) for a in tree[2])})"
    return f"({to_text(tree[1])} {kind} {to_text(tree[2])})"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def reference(tree: Tree, env: Mapping[str, float]) -> float | None:
    """None: an error (missing value, division by zero, negative sqrt, overflow)."""
    kind = tree[0]
    if kind == "num":
        return float(tree[1])
    if kind == "ref":
        return _finite(env[tree[1]])
    if kind in ("and", "or"):
        left = reference(tree[1], env)
        if left is None:
            return None
        if (kind == "and" and left == 0) or (kind == "or" and left != 0):
            return float(kind == "or")
        right = reference(tree[2], env)
        return None if right is None else float(right != 0)
    if kind == "call":
        args = [reference(a, env) for a in tree[2]]
        if any(a is None for a in args):
            return None
        return _call(tree[1], [a for a in args if a is not None])
    values = [reference(child, env) for child in tree[1:]]
    if any(v is None for v in values):
        return None
    if kind == "neg":
        return -values[0]  # type: ignore[operator]
    if kind == "not":
        return float(values[0] == 0)
    return _binary(kind, values[0], values[1])  # type: ignore[arg-type]


def _call(name: str, args: list[float]) -> float | None:
    if name == "abs":
        return abs(args[0])
    if name == "sqrt":
        return None if args[0] < 0 else math.sqrt(args[0])
    if name == "min":
        return min(args)
    if name == "max":
        return max(args)
    return min(max(args[0], args[1]), args[2])


def _binary(op: str, a: float, b: float) -> float | None:
    compare = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}
    if op in compare:
        return float(compare[op])
    if op in ("/", "%") and b == 0:
        return None
    result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
              "/": lambda: a / b, "%": lambda: a % b}[op]()
    return _finite(result)


@settings(max_examples=400, deadline=None)
@given(trees, inputs)
def test_evaluation_matches_a_reference_over_python_floats(
        tree: Tree, values: dict[str, list[float]]) -> None:
    assume(height(tree) <= 12)
    expression = compile_expression(to_text(tree), "expression")
    arrays = {name: np.array(column) for name, column in values.items()}
    result = expression.evaluate(arrays)
    assert result.value.shape == (N,) and result.error.shape == (N,)
    for i in range(N):
        expected = reference(tree, {name: column[i] for name, column in values.items()})
        if expected is None:
            assert result.error[i] and math.isnan(result.value[i]), (i, expected)
        else:
            assert not result.error[i], (i, result.reason)
            assert result.value[i] == expected, (i, result.value[i], expected)
    assert (result.reason is None) == (not result.error.any())


@settings(max_examples=300, deadline=None)
@given(trees)
def test_canonical_text_parses_to_the_same_canonical_text(tree: Tree) -> None:
    assume(height(tree) <= 12)
    first = compile_expression(to_text(tree), "e")
    again = compile_expression(first.canonical(), "e")
    assert again.canonical() == first.canonical()
    assert again.inputs == first.inputs


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_invalid_input(text: str) -> None:
    try:
        compile_expression(text, "expression")
    except InvalidInput as exc:
        assert exc.field == "expression"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="AB{}()<>=!+-*/%,. 0123456789e_notandormaxsqrt", max_size=120))
def test_text_close_to_the_grammar_raises_only_invalid_input(text: str) -> None:
    try:
        expression = compile_expression(text, "expression")
    except InvalidInput:
        return
    expression.evaluate({"A": np.array([1.0, 0.0]), "B": np.array([np.nan, 2.0])})


def test_precedence_follows_python() -> None:
    cases = {"1 + 2 * 3": 7.0, "-2 * 3": -6.0, "(1 + 2) * 3": 9.0, "7 % 4 - 1": 2.0,
             "not 1 == 2": 1.0, "1 < 2 and 2 < 1 or true": 1.0, "not false and false": 0.0,
             "-1e3 / 10": -100.0, "clamp(5, 0, 2)": 2.0, "min(3, -1, 2)": -1.0,
             "max(1, 2) == 2": 1.0, "sqrt(16) + abs(-2)": 6.0, "10 - 4 - 3": 3.0,
             "2 * .5": 1.0}
    for text, expected in cases.items():
        result = compile_expression(text, "e").evaluate({})
        assert result.value.tolist() == [expected], text


def test_inputs_are_sorted_unique_names_from_braces_and_identifiers() -> None:
    expression = compile_expression("{Spindle/Temperature} > 80 and State == 2 and State"
                                    " != {A b}", "e")
    assert expression.inputs == ("A b", "Spindle/Temperature", "State")


def test_errors_are_per_element_with_the_first_reason() -> None:
    expression = compile_expression("{A} / {B}", "e")
    result = expression.evaluate({"A": np.array([1.0, 2.0, 3.0]), "B": np.array([2.0, 0.0, 1.0])})
    assert result.error.tolist() == [False, True, False]
    assert result.value[0] == 0.5 and math.isnan(result.value[1]) and result.value[2] == 3.0
    assert result.reason == "division by zero in {A} / {B}"


def test_a_missing_point_is_an_error_on_every_element() -> None:
    result = compile_expression("{Pressure} * 2 > 1", "e").evaluate({"A": np.zeros(3)})
    assert result.error.tolist() == [True, True, True]
    assert result.reason == "no value of {Pressure}"


def test_sqrt_of_a_negative_number_and_overflow_are_errors() -> None:
    result = compile_expression("sqrt(A - 1)", "e").evaluate({"A": np.array([0.0, 5.0])})
    assert result.error.tolist() == [True, False] and result.value[1] == 2.0
    assert result.reason == "square root of a negative number in sqrt({A} - 1)"
    result = compile_expression("A * 1e300", "e").evaluate({"A": np.array([1e10, 1.0])})
    assert result.error.tolist() == [True, False]
    assert result.reason == "result out of range in {A} * 1e300"


def test_and_or_short_circuit_per_element() -> None:
    expression = compile_expression("State == 0 or A / B > 1", "e")
    result = expression.evaluate({"State": np.array([0.0, 1.0, 1.0]),
                                  "A": np.array([5.0, 5.0, 5.0]),
                                  "B": np.array([0.0, 0.0, 1.0])})
    assert result.error.tolist() == [False, True, False]
    assert result.value[0] == 1.0 and result.value[2] == 1.0


def test_without_array_inputs_the_result_has_one_element() -> None:
    assert compile_expression("1 + 1", "e").evaluate({}).value.tolist() == [2.0]


def test_inputs_of_different_lengths_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="one length"):
        compile_expression("A + B", "e").evaluate({"A": np.zeros(2), "B": np.zeros(3)})


@pytest.mark.parametrize(("text", "message", "column"), [
    ("a < b < c", "comparisons do not chain", 7),
    ("1 +", "expected a value, found the end of the expression", 4),
    ("A $ B", "unexpected character '$'", 3),
    ("{A", "unexpected '{' without a matching '}'", 1),
    ("{}", "empty point name", 1),
    ("foo(1)", "unknown function 'foo'", 1),
    ("clamp(1, 2)", "clamp() takes 3 arguments, not 2", 1),
    ("min(1)", "min() takes at least 2 arguments", 1),
    ("(1 + 2", "expected ')', found the end of the expression", 7),
    ("1 2", "unexpected '2'", 3),
    ("1e999", "number out of range", 1),
    ("a and or b", "expected a value, found 'or'", 7),
    ("   ", "empty expression", 1),
])
def test_syntax_errors_name_the_field_and_the_column(text: str, message: str,
                                                    column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, "rules[0].expression")
    assert caught.value.field == "rules[0].expression"
    assert message in str(caught.value)
    assert str(caught.value).endswith(f"at column {column}")
    assert str(caught.value).startswith("rules[0].expression: ")


def test_limits_are_enforced_and_named() -> None:
    with pytest.raises(ExpressionError, match=f"longer than {MAX_TEXT} characters"):
        compile_expression("1" + " " * MAX_TEXT, "e")
    deep = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    with pytest.raises(ExpressionError, match=f"deeper than {MAX_DEPTH}"):
        compile_expression(deep, "e")
    compile_expression("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1), "e")
    with pytest.raises(ExpressionError, match=f"deeper than {MAX_DEPTH}"):
        compile_expression(" + ".join(["1"] * (MAX_DEPTH + 1)), "e")
    with pytest.raises(ExpressionError, match=f"more than {MAX_REFS} points"):
        compile_expression("max(" + ", ".join(f"P{i}" for i in range(MAX_REFS + 1)) + ")", "e")
    many = compile_expression("max(" + ", ".join(f"P{i}" for i in range(MAX_REFS)) + ")", "e")
    assert len(many.inputs) == MAX_REFS


def test_non_text_is_refused_with_the_field() -> None:
    with pytest.raises(InvalidInput, match="must be an expression"):
        compile_expression(42, "suppress_when")  # type: ignore[arg-type]
