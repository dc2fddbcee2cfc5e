"""A small, safe expression language over jagged (per-particle) and flat arrays.

Used by the data config (``selection``, ``new_variables``, label expressions, weights).
An expression is parsed with :mod:`ast` and only an allow-list of node types is accepted;
nothing is ever passed to Python's ``eval``.

Language
--------
- names are branches (or derived variables): ``part_px``, ``jet_pt``, ``Jet_pt``
- numbers and ``True`` / ``False``
- arithmetic ``+ - * / // % **``, comparisons (chained too), ``& | ^ ~`` and
  ``and / or / not`` (both elementwise)
- functions from :data:`FUNCTIONS` (with the event-level ones of
  :mod:`heptagon.physics.event_features`), optionally spelled ``np.log`` / ``ak.num`` as
  in weaver configs; jagged reductions (``sum, max, min, mean, count / num``) act on the last axis,
  ``max(x, fill)`` / ``min(x, fill)`` / ``at(x, i, fill)`` give ``fill`` for too-short lists.

Mind Python's precedence: ``&`` binds tighter than ``>``, so write ``(a > 1) & (b < 2)``.

Values are numpy arrays (one number per entry), :class:`~heptagon.data.jagged.JaggedColumn` s
(a list of numbers per entry) or awkward arrays (anything else). Operators and numpy ufuncs
run on the first two directly; the other functions get awkward arrays, and their results
come back in the fast forms where they fit (:func:`~heptagon.data.jagged.from_awkward`).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np

from heptagon.data.jagged import JaggedColumn, from_awkward
from heptagon.errors import ConfigError
from heptagon.physics.event_features import FUNCTIONS as EVENT_FUNCTIONS
from heptagon.physics.kinematics import delta_phi, delta_r, wrap_phi

__all__ = ["FUNCTIONS", "Expr"]


def _reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
    def reduce(x: Any, fill: float | None = None) -> Any:
        out = fn(x, axis=-1, mask_identity=fill is not None)
        return out if fill is None else ak.fill_none(out, fill)

    return reduce


def _at(x: Any, index: int, fill: float) -> Any:
    """Element ``index`` of each list of ``x``, ``fill`` where the list is too short."""
    return ak.fill_none(ak.pad_none(x, index + 1, axis=-1)[..., index], fill)


#: The allow-list of callable functions, by name.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    # elementwise (numpy ufuncs dispatch to awkward)
    "abs": np.abs,
    "arccos": np.arccos,
    "arcsin": np.arcsin,
    "arctan": np.arctan,
    "arctan2": np.arctan2,
    "ceil": np.ceil,
    "clip": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),  # np.clip is no ufunc
    "cos": np.cos,
    "cosh": np.cosh,
    "exp": np.exp,
    "expm1": np.expm1,
    "floor": np.floor,
    "hypot": np.hypot,
    "isfinite": np.isfinite,
    "isnan": np.isnan,
    "log": np.log,
    "log10": np.log10,
    "log1p": np.log1p,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "power": np.power,
    "sign": np.sign,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "square": np.square,
    "tan": np.tan,
    "tanh": np.tanh,
    "where": ak.where,
    "ones_like": ak.ones_like,
    "zeros_like": ak.zeros_like,
    # kinematics (phi wrapped into (-pi, pi])
    "wrap_phi": wrap_phi,
    "delta_phi": delta_phi,
    "delta_r": delta_r,
    # jagged reductions over the last axis
    "sum": lambda x: ak.sum(x, axis=-1),
    "mean": lambda x: ak.mean(x, axis=-1),
    "max": _reduce(ak.max),
    "min": _reduce(ak.min),
    "count": lambda x: ak.num(x, axis=-1),
    "num": lambda x: ak.num(x, axis=-1),
    "at": _at,
    # event-level features over object collections (closest pairs, sphericity, m_T...)
    **EVENT_FUNCTIONS,
}

_MODULE_PREFIXES = {"np", "numpy", "ak", "awkward"}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: operator.invert,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_OPERATORS = {*_BINARY.values(), *_UNARY.values(), *_COMPARE.values()}


def _to_awkward(value: Any) -> Any:
    return value.to_awkward() if isinstance(value, JaggedColumn) else value


def _apply(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``: directly for ufuncs and operators on fast forms, through awkward
    for other functions or when an argument is already an awkward array."""
    fast = isinstance(function, np.ufunc) or function in _OPERATORS
    if fast and not any(isinstance(a, ak.Array) for a in args):
        return function(*args)
    return from_awkward(function(*(_to_awkward(a) for a in args)))


class Expr:
    """A parsed, validated expression.

    ``key`` is the dotted config key the expression came from; every error names it.
    """

    def __init__(self, text: str, key: str) -> None:
        self.text = text
        self.key = key
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise ConfigError(f"syntax error in expression {text!r}: {err.msg}", key) from None
        self._body = tree.body
        names: set[str] = set()
        self._check(self._body, names)
        self.names: frozenset[str] = frozenset(names)

    def __repr__(self) -> str:
        return f"Expr({self.text!r}, key={self.key!r})"

    def _forbid(self, what: str) -> ConfigError:
        return ConfigError(f"{what} is not allowed in expression {self.text!r}", self.key)

    def _function_name(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            name = node.id
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in _MODULE_PREFIXES
        ):
            name = node.attr
        else:
            raise self._forbid(f"calling '{ast.unparse(node)}'")
        if name not in FUNCTIONS:
            raise self._forbid(f"function '{name}' (allowed: {', '.join(sorted(FUNCTIONS))})")
        return name

    def _check(self, node: ast.expr, names: set[str]) -> None:
        if isinstance(node, ast.Name):
            if node.id.startswith("_") or node.id in FUNCTIONS:
                raise self._forbid(f"the name '{node.id}'")
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (bool, int, float)):
                raise self._forbid(f"the constant {node.value!r}")
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left, names)
            self._check(node.right, names)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand, names)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value, names)
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            for value in (node.left, *node.comparators):
                self._check(value, names)
        elif isinstance(node, ast.Call):
            self._function_name(node.func)
            if node.keywords:
                raise self._forbid(f"keyword argument '{node.keywords[0].arg}'")
            for arg in node.args:
                if isinstance(arg, ast.Starred):
                    raise self._forbid("'*' unpacking")
                self._check(arg, names)
        elif isinstance(node, ast.Attribute):
            raise self._forbid(f"the attribute '{ast.unparse(node)}'")
        else:
            raise self._forbid(f"'{type(node).__name__}' ({ast.unparse(node)!r})")

    def evaluate(self, lookup: Callable[[str], Any], *, columns: bool = False) -> Any:
        """Evaluate with ``lookup(name)`` giving the array for each referenced name.

        A list-per-entry result is an awkward array, or with ``columns`` a
        :class:`~heptagon.data.jagged.JaggedColumn` (the fast form the loader works on)."""
        result = self._eval(self._body, lookup)
        return result if columns else _to_awkward(result)

    def _eval(self, node: ast.expr, lookup: Callable[[str], Any]) -> Any:
        if isinstance(node, ast.Name):
            return lookup(node.id)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return _apply(
                _BINARY[type(node.op)],
                self._eval(node.left, lookup),
                self._eval(node.right, lookup),
            )
        if isinstance(node, ast.UnaryOp):
            return _apply(_UNARY[type(node.op)], self._eval(node.operand, lookup))
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            result = self._eval(node.values[0], lookup)
            for value in node.values[1:]:
                result = _apply(combine, result, self._eval(value, lookup))
            return result
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, lookup)
            result = None
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, lookup)
                term = _apply(_COMPARE[type(op)], left, right)
                result = term if result is None else _apply(operator.and_, result, term)
                left = right
            return result
        assert isinstance(node, ast.Call)  # the only node left after _check
        function = FUNCTIONS[self._function_name(node.func)]
        return _apply(function, *(self._eval(arg, lookup) for arg in node.args))
