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
- weaver-core's expression helpers: ``_concat([a, b], axis=1)``, ``_stack([a, b], axis=1)``,
  ``_pad(x, length, value=0)``, ``_clip(x, lo, hi)`` and the four-vectors
  ``_p4_from_ptetaphim / _p4_from_ptetaphie / _p4_from_pxpypze(...)`` (of the ``vector``
  package), whose components are read as attributes (:data:`P4_ATTRIBUTES`:
  ``_p4_from_ptetaphim(pt, eta, phi, m).px``); a list literal is allowed only as an
  argument, and a keyword argument only where :data:`KEYWORDS` names it;
  the constants ``np.pi`` / ``math.pi``, ``np.e``, ``np.inf``.

Mind Python's precedence: ``&`` binds tighter than ``>``, so write ``(a > 1) & (b < 2)``.

Limits (so that no expression can hang or exhaust memory): at most :data:`MAX_LENGTH`
characters and :data:`MAX_DEPTH` levels of nesting; integer literals within int64. A power
of two plain numbers is computed in float64 (``9**9**9`` is ``inf``, at once) unless it is
an integer power that fits int64, so there is never big-integer arithmetic; powers of arrays
are numpy's, which never loop longer than the bits of the exponent. Floating-point warnings
(division by zero, overflow, log of 0) are silenced: their NaN/inf results meet the data
config's ``nan_policy`` downstream. Whatever goes wrong while evaluating (a wrong number of
arguments, arrays that do not broadcast, an integer division by zero) is a
:class:`~heptagon.errors.ConfigError` naming the key and the expression.

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
from heptagon.errors import ConfigError, first_line
from heptagon.physics.event_features import FUNCTIONS as EVENT_FUNCTIONS
from heptagon.physics.kinematics import delta_phi, delta_r, wrap_phi

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "KEYWORDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "P4_ATTRIBUTES",
    "Expr",
]

#: the longest expression accepted (characters)
MAX_LENGTH = 2000
#: the deepest nesting of an expression's syntax tree accepted
MAX_DEPTH = 50

_INT64 = 2**63


def _reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
    def reduce(x: Any, fill: float | None = None) -> Any:
        out = fn(x, axis=-1, mask_identity=fill is not None)
        return out if fill is None else ak.fill_none(out, fill)

    return reduce


def _at(x: Any, index: int, fill: float) -> Any:
    """Element ``index`` (a whole number >= 0) of each list of ``x``, ``fill`` where the
    list is too short. A slice, not padding: a huge index allocates nothing."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"the index of at() must be a whole number >= 0, not {index!r}")
    return ak.fill_none(ak.firsts(x[..., index : index + 1], axis=-1), fill)


def _p4(*fields: str) -> Callable[..., Any]:
    """weaver's ``_p4_from_*``: a ``vector`` four-momentum array from four components."""

    def p4(*components: Any) -> Any:
        import vector

        vector.register_awkward()
        if len(components) != len(fields):
            raise TypeError(f"takes {len(fields)} arguments, not {len(components)}")
        return vector.zip(dict(zip(fields, components, strict=True)))

    return p4


def _concat(arrays: list[Any], axis: int = 0) -> Any:
    """weaver's ``_concat``: the arrays joined along ``axis`` (1: each entry's lists)."""
    return ak.concatenate(arrays, axis=axis)


def _stack(arrays: list[Any], axis: int = 1) -> Any:
    """weaver's ``_stack``: the arrays stacked along a new ``axis``."""
    if not arrays:
        raise ValueError("needs at least one array")
    index: list[Any] = [slice(None)] * (arrays[0].ndim + 1)
    index[axis] = np.newaxis
    return ak.concatenate([a[tuple(index)] for a in arrays], axis=axis)


def _pad(x: Any, length: int, value: float = 0) -> Any:
    """weaver's ``_pad``: each list cut or padded with ``value`` to ``length`` (float32)."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"the length of _pad() must be a whole number >= 1, not {length!r}")
    return ak.values_astype(ak.fill_none(ak.pad_none(x, int(length), clip=True), value), np.float32)


def _clip(x: Any, lo: float, hi: float) -> Any:
    """``x`` limited to ``[lo, hi]`` (``np.clip`` is no ufunc: it does not reach awkward)."""
    return np.minimum(np.maximum(x, lo), hi)


#: The allow-list of callable functions, by name.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    # elementwise (numpy ufuncs dispatch to awkward)
    "abs": np.abs,
    "arccos": np.arccos,
    "arcsin": np.arcsin,
    "arctan": np.arctan,
    "arctan2": np.arctan2,
    "ceil": np.ceil,
    "clip": _clip,
    "cos": np.cos,
    "cosh": np.cosh,
    "exp": np.exp,
    "expm1": np.expm1,
    "floor": np.floor,
    "hypot": np.hypot,
    "isfinite": np.isfinite,
    "isnan": np.isnan,
    "nan_to_num": lambda x: ak.nan_to_num(x),
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
    "arctanh": np.arctanh,
    "where": ak.where,
    "ones_like": ak.ones_like,
    "zeros_like": ak.zeros_like,
    "to_numpy": lambda x: x,  # weaver's ak.to_numpy: values are numpy-backed already
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
    # weaver-core's helpers (weaver.utils.data.tools)
    "_concat": _concat,
    "_stack": _stack,
    "_pad": _pad,
    "_clip": _clip,
    "_p4_from_ptetaphim": _p4("pt", "eta", "phi", "mass"),
    "_p4_from_ptetaphie": _p4("pt", "eta", "phi", "energy"),
    "_p4_from_pxpypze": _p4("px", "py", "pz", "energy"),
    # event-level features over object collections (closest pairs, sphericity, m_T...)
    **EVENT_FUNCTIONS,
}

#: The keyword arguments each function accepts (none where not listed).
KEYWORDS: dict[str, frozenset[str]] = {
    "_concat": frozenset({"axis"}),
    "_stack": frozenset({"axis"}),
    "_pad": frozenset({"value"}),
}

#: The components of a ``_p4_from_*`` four-vector readable as attributes.
P4_ATTRIBUTES = frozenset(
    {"px", "py", "pz", "pt", "eta", "phi", "energy", "E", "mass", "m", "p", "rapidity"}
    | {"mt", "et", "theta"}
)

#: Constants read as ``np.pi`` / ``math.pi`` (a bare name is always a branch).
CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e), "inf": float(np.inf)}

_MODULE_PREFIXES = {"np", "numpy", "ak", "awkward", "math"}


def _power(base: Any, exponent: Any) -> Any:
    """``base ** exponent``; for two plain numbers exact only while an integer result fits
    int64, else in float64, so a constant like ``9**9**9`` never computes a huge integer."""
    if not (isinstance(base, (int, float)) and isinstance(exponent, (int, float))):
        return operator.pow(base, exponent)
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent >= 0
        and abs(base).bit_length() * exponent < 63
    ):
        return base**exponent
    return float(np.power(np.float64(base), np.float64(exponent)))


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
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
# what an operator or function may give: a number or an array
_VALUE_TYPES = (bool, int, float, np.generic, np.ndarray, JaggedColumn, ak.Array)


# the functions that reduce each entry's list (the last axis)
_REDUCTIONS = {"sum", "mean", "max", "min", "count", "num", "at"}


def _is_jagged(value: Any) -> bool:
    """Whether ``value`` has a list per entry."""
    return isinstance(value, JaggedColumn) or (isinstance(value, ak.Array) and value.ndim > 1)


def _to_awkward(value: Any) -> Any:
    if isinstance(value, list):  # a list literal argument (weaver's _concat / _stack)
        return [_to_awkward(v) for v in value]
    return value.to_awkward() if isinstance(value, JaggedColumn) else value


def _apply(function: Callable[..., Any], *args: Any, **keywords: Any) -> Any:
    """``function(*args, **keywords)``: directly for ufuncs and operators on fast forms,
    through awkward for other functions or when an argument is already an awkward array."""
    fast = isinstance(function, np.ufunc) or function in _OPERATORS
    if fast and not keywords and not any(isinstance(a, ak.Array) for a in args):
        return function(*args)
    return from_awkward(function(*(_to_awkward(a) for a in args), **keywords))


class Expr:
    """A parsed, validated expression.

    ``key`` is the dotted config key the expression came from; every error names it.
    """

    def __init__(self, text: str, key: str) -> None:
        self.text = text
        self.key = key
        if len(text) > MAX_LENGTH:
            raise ConfigError(
                f"expression of {len(text)} characters (at most {MAX_LENGTH}): {text[:60]!r}...",
                key,
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise ConfigError(f"syntax error in expression {text!r}: {err.msg}", key) from None
        except (RecursionError, MemoryError):  # CPython's parser on extreme nesting
            raise ConfigError(f"expression {text!r} is nested too deeply", key) from None
        self._body = tree.body
        self._check_depth()
        names: set[str] = set()
        self._check(self._body, names)
        self.names: frozenset[str] = frozenset(names)

    def __repr__(self) -> str:
        return f"Expr({self.text!r}, key={self.key!r})"

    def _check_depth(self) -> None:
        """Refuse a tree deeper than :data:`MAX_DEPTH` (walked without recursion: the
        checks and the evaluation below recurse, within Python's limit thanks to this)."""
        stack: list[tuple[ast.AST, int]] = [(self._body, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"expression {self.text!r} is nested more than {MAX_DEPTH} levels deep",
                    self.key,
                )
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

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

    def _check_call(self, node: ast.Call, names: set[str]) -> None:
        name = self._function_name(node.func)
        function = FUNCTIONS[name]
        # a ufunc takes extra positional arguments as outputs: it would overwrite them
        if isinstance(function, np.ufunc) and len(node.args) != function.nin:
            raise ConfigError(
                f"{ast.unparse(node.func)}() takes {function.nin} argument(s), not "
                f"{len(node.args)}, in expression {self.text!r}",
                self.key,
            )
        for keyword in node.keywords:
            if keyword.arg not in KEYWORDS.get(name, frozenset()):
                raise self._forbid(f"keyword argument '{keyword.arg}' of {name}()")
            self._check(keyword.value, names)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self._forbid("'*' unpacking")
            if isinstance(arg, ast.List):  # only as an argument: _concat([a, b])
                for element in arg.elts:
                    if isinstance(element, (ast.Starred, ast.List)):
                        raise self._forbid(f"the list {ast.unparse(arg)!r}")
                    self._check(element, names)
            else:
                self._check(arg, names)

    def _check_attribute(self, node: ast.Attribute, names: set[str]) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in _MODULE_PREFIXES:
            if node.attr not in CONSTANTS:
                raise self._forbid(f"the attribute '{ast.unparse(node)}'")
        elif node.attr in P4_ATTRIBUTES:
            self._check(value, names)
        else:
            raise self._forbid(f"the attribute '{ast.unparse(node)}'")

    def _check(self, node: ast.expr, names: set[str]) -> None:
        if isinstance(node, ast.Name):
            if node.id.startswith("_") or node.id in FUNCTIONS:
                raise self._forbid(f"the name '{node.id}'")
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (bool, int, float)):
                raise self._forbid(f"the constant {node.value!r}")
            if isinstance(node.value, int) and not -_INT64 <= node.value < _INT64:
                raise self._forbid("an integer literal beyond int64")
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
            self._check_call(node, names)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node, names)
        else:
            raise self._forbid(f"'{type(node).__name__}' ({ast.unparse(node)!r})")

    def evaluate(self, lookup: Callable[[str], Any], *, columns: bool = False) -> Any:
        """Evaluate with ``lookup(name)`` giving the array for each referenced name.

        A list-per-entry result is an awkward array, or with ``columns`` a
        :class:`~heptagon.data.jagged.JaggedColumn` (the fast form the loader works on)."""
        with np.errstate(all="ignore"):
            result = self._eval(self._body, lookup)
        return result if columns else _to_awkward(result)

    def _apply(
        self, node: ast.expr, function: Callable[..., Any], *args: Any, **keywords: Any
    ) -> Any:
        """:func:`_apply`, with a failure as a ConfigError naming the part of the expression."""
        try:
            result = _apply(function, *args, **keywords)
        except (ArithmeticError, LookupError, TypeError, ValueError) as err:
            why = first_line(err)
            raise self._cannot(node, why) from None
        if not isinstance(result, _VALUE_TYPES):  # e.g. where(x): a tuple (which * 10**18...)
            raise self._cannot(node, f"gives a {type(result).__name__}, not numbers or arrays")
        if isinstance(result, np.ndarray) and result.ndim == 0:  # wrap_phi(0): a number
            return result[()]
        return result

    def _cannot(self, node: ast.expr, why: str) -> ConfigError:
        return ConfigError(
            f"cannot evaluate {ast.unparse(node)!r} in expression {self.text!r}: {why}", self.key
        )

    def _eval(self, node: ast.expr, lookup: Callable[[str], Any]) -> Any:
        if isinstance(node, ast.Name):
            return lookup(node.id)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return self._apply(
                node,
                _BINARY[type(node.op)],
                self._eval(node.left, lookup),
                self._eval(node.right, lookup),
            )
        if isinstance(node, ast.UnaryOp):
            return self._apply(node, _UNARY[type(node.op)], self._eval(node.operand, lookup))
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            result = self._eval(node.values[0], lookup)
            for value in node.values[1:]:
                result = self._apply(node, combine, result, self._eval(value, lookup))
            return result
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, lookup)
            result = None
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, lookup)
                term = self._apply(node, _COMPARE[type(op)], left, right)
                result = term if result is None else self._apply(node, operator.and_, result, term)
                left = right
            return result
        if isinstance(node, ast.Attribute):
            return self._attribute(node, lookup)
        assert isinstance(node, ast.Call)  # the only node left after _check
        name = self._function_name(node.func)
        args = [
            [self._eval(e, lookup) for e in arg.elts]
            if isinstance(arg, ast.List)
            else self._eval(arg, lookup)
            for arg in node.args
        ]
        keywords = {k.arg: self._eval(k.value, lookup) for k in node.keywords if k.arg}
        if name in _REDUCTIONS and args and not _is_jagged(args[0]):
            # over a flat array the last axis is the entries: a result per chunk, not per entry
            raise self._cannot(node, f"{name}() reduces lists, but its argument has none")
        return self._apply(node, FUNCTIONS[name], *args, **keywords)

    def _attribute(self, node: ast.Attribute, lookup: Callable[[str], Any]) -> Any:
        """A module constant (``np.pi``) or a four-vector's component (``p4.px``)."""
        if isinstance(node.value, ast.Name) and node.value.id in _MODULE_PREFIXES:
            return CONSTANTS[node.attr]
        value = self._eval(node.value, lookup)
        if not (isinstance(value, ak.Array) and value.fields):
            raise self._cannot(node, "only a four-vector (_p4_from_*) has components")
        try:
            return from_awkward(getattr(value, node.attr))
        except AttributeError as err:
            raise self._cannot(node, first_line(err)) from None
