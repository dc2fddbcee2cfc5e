"""Property-based fuzzing (hypothesis) of the two languages a user config speaks: the
expression language (random syntax trees and random strings) and the data config loader
(random mappings and random YAML text). Whatever the input, the answer is a value of the
right shape or a ConfigError, never another exception, never a hang (each example has a
deadline; the module runs in well under 30 s)."""

from __future__ import annotations

import contextlib
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heptagon.data.config import DataConfig, load_config
from heptagon.data.expr import FUNCTIONS, Expr
from heptagon.data.jagged import JaggedColumn
from heptagon.errors import ConfigError, DataError

N = 4
ARRAYS: dict[str, Any] = {
    "jet_pt": np.array([500.0, 0.0, -3.5, np.nan]),
    "jet_n": np.array([3, 0, 1, 2]),
    "flag": np.array([True, False, True, False]),
    "part_px": JaggedColumn(np.array([1.0, -2.0, 0.0, 4.0, 5.0, np.inf]), np.array([3, 0, 1, 2])),
    "part_e": ak.Array([[1.0, 2.0], [], [3.0], [4.0, 5.0, 6.0]]),
}
NAMES = sorted(ARRAYS)
FUZZ = settings(
    max_examples=250,
    deadline=timedelta(seconds=5),  # generous for CI; a hang (9**9**9 took minutes) fails
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: CI is reproducible
    database=None,
)


def lookup(name: str) -> Any:
    """As the data namespace: a known variable, else a DataError naming the branch."""
    if name not in ARRAYS:
        raise DataError("branch not found", "fuzz.parquet", name)
    return ARRAYS[name]


def check_value(value: Any) -> None:
    """A number (a constant expression, broadcast later) or one value / list per entry."""
    if isinstance(value, (bool, int, float, np.generic)):
        return
    assert isinstance(value, (np.ndarray, JaggedColumn, ak.Array)), type(value)
    assert len(value) == N, (len(value), value)


def evaluate(text: str) -> None:
    """Parse and evaluate ``text``: a value of the right length or a ConfigError (or the
    lookup's DataError for an unknown name); warnings count as failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            expr = Expr(text, "selection")
            check_value(expr.evaluate(lookup, columns=True))
        except (ConfigError, DataError) as err:
            error = err
        else:
            return
    # a ConfigError names the key; the lookup's DataError names the unknown branch
    assert str(error).startswith(("selection: ", "fuzz.parquet, branch")), error


# --- random syntax trees ------------------------------------------------------------

BINARY = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "^"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["True", "False", "0", "1", "-1", "9", "0.5", "1e308"]),
)
leaves = st.one_of(st.sampled_from(NAMES), numbers)


def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(COMPARE), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["-", "~", "not ", "+"]), children).map(
            lambda t: f"({t[0]}{t[1]})"
        ),
        st.tuples(
            st.sampled_from(sorted(FUNCTIONS)), st.lists(children, min_size=0, max_size=3)
        ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


trees = st.recursive(leaves, extend, max_leaves=12)


@FUZZ
@given(trees)
def test_random_expression_trees(text: str) -> None:
    evaluate(text)


EXPR_TOKENS = [*"0123456789.e+-*/%()<>=!&|^~, _[]:'\"@", " and ", " or ", "**", "np.", *NAMES]


@FUZZ
@given(st.lists(st.sampled_from(EXPR_TOKENS), max_size=25).map("".join))
def test_random_expression_strings(text: str) -> None:
    evaluate(text)


def test_the_known_bombs() -> None:
    for text in [
        "9**9**9",
        "9**9**9**9",
        "(jet_pt > 0) * 10**10**10",
        "-" * 3000 + "1",
        "(" * 300 + "1" + ")" * 300,
        "jet_n ** -1",
        "where(jet_pt) * 10**18",
        "jet_pt.__class__",
        "__import__('os').system('true')",
        "[x for x in jet_pt]",
        "lambda: 1",
        # found by this module: each gave a TypeError, a per-chunk number or wrote in place
        "num(flag)",
        "maximum(flag, flag, flag)",
        "at(part_e, flag, flag)",
        "at(part_e, 10**18, 0)",
        "wrap_phi(0)",
    ]:
        evaluate(text)


# --- the data config loader ----------------------------------------------------------

KEYS = [
    *DataConfig.model_fields,
    "vars", "length", "pad_mode", "mask", "name", "center", "scale", "clip", "pad_value",
    "type", "value", "use_precomputed_weights", "reweight_vars", "class_weights", "method",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([*NAMES, "auto", "error", "drop", "simple", "custom", "jet_pt > 0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=20,
)
configs = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def load(source: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(ConfigError):
            assert isinstance(load_config(source), DataConfig)


def test_the_known_bad_configs() -> None:
    load({"inputs": {"jet": {"vars": ["jet_pt"]}}, "preprocess": True})  # was AttributeError


@FUZZ
@given(configs)
def test_random_config_mappings(data: dict[str, Any]) -> None:
    load(data)


@FUZZ
@given(
    st.one_of(
        configs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
        st.lists(st.sampled_from([*":-[]{}&*!|>'\"#%@`,? \n\tab1", *KEYS]), max_size=30).map(
            "".join
        ),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    )
)
def test_random_config_files(tmp_path_factory: Any, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "data.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    load(path)
