"""The safe expression language."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heptagon.data.expr import Expr
from heptagon.errors import ConfigError

ARRAYS = {
    "pt": ak.Array([[3.0, 4.0], [], [1.0]]),
    "jet": np.array([10.0, 20.0, 30.0]),
    "n": np.array([2, 0, 1]),
}


def ev(text: str) -> list:
    return ak.to_list(Expr(text, "k").evaluate(ARRAYS.__getitem__))


def test_arithmetic_broadcasts_jagged_and_flat() -> None:
    assert ev("pt / jet * 2 + 1") == [[1.6, 1.8], [], [1 + 2 / 30]]
    assert ev("jet ** 2 % 7 // 1") == [2.0, 1.0, 4.0]
    assert ev("-jet") == [-10.0, -20.0, -30.0]


def test_comparisons_and_boolean_logic() -> None:
    assert ev("(jet > 15) & (n > 0)") == [False, False, True]
    assert ev("jet > 15 and n > 0") == [False, False, True]
    assert ev("not (jet > 15) or n == 1") == [True, False, True]
    assert ev("~(jet > 15) | (n == 1)") == [True, False, True]
    assert ev("10 <= jet < 30") == [True, True, False]


def test_functions_and_module_prefixes() -> None:
    assert ev("np.log(jet)") == pytest.approx(np.log([10, 20, 30]).tolist())
    assert ev("hypot(pt, pt)")[0] == pytest.approx([3 * 2**0.5, 4 * 2**0.5])
    assert ev("clip(jet, 12, 25)") == [12.0, 20.0, 25.0]
    assert ev("where(jet > 15, 1, 0)") == [0, 1, 1]
    assert ev("ak.ones_like(pt)") == [[1, 1], [], [1]]
    assert ev("arctan2(jet, jet)") == pytest.approx([np.pi / 4] * 3)


def test_jagged_reductions_on_last_axis() -> None:
    assert ev("sum(pt)") == [7.0, 0.0, 1.0]
    assert ev("count(pt)") == [2, 0, 1]
    assert ev("ak.num(pt)") == [2, 0, 1]
    assert ev("max(pt, -1)") == [4.0, -1.0, 1.0]
    assert ev("min(pt)") == [3.0, np.inf, 1.0]  # no fill: the identity (then a NaN/inf error)
    assert ev("at(pt, 1, 0)") == [4.0, 0.0, 0.0]
    assert ev("mean(pt)")[0] == 3.5


def test_names_are_collected() -> None:
    assert Expr("log(a / b) + sum(c) * 2", "k").names == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("jet >", "syntax error"),
        ("__import__('os')", "__import__"),
        ("open(jet)", "'open'"),
        ("jet.__class__", "jet.__class__"),
        ("os.system(1)", "os.system"),
        ("lambda x: x", "Lambda"),
        ("[x for x in jet]", "ListComp"),
        ("jet['a']", "Subscript"),
        ("'text'", "'text'"),
        ("log(jet, base=2)", "base"),
        ("_private + 1", "_private"),
        ("log", "'log'"),
        ("a if b else c", "IfExp"),
    ],
)
def test_forbidden_and_malformed_expressions_name_key_and_culprit(text: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=r"new_variables\.x") as err:
        Expr(text, "new_variables.x")
    assert culprit in str(err.value)
    assert err.value.key == "new_variables.x"
