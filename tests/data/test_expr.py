"""The safe expression language."""

from __future__ import annotations

import re
import signal

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
    assert ev("at(pt, 10**9, -1)") == [-1.0, -1.0, -1.0]  # a slice: nothing padded
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


def _hang(signum: int, frame: object) -> None:
    raise TimeoutError("the expression hung")


def test_huge_powers_are_float_and_instant() -> None:
    """9**9**9 hung (a 370-million-digit integer): plain-number powers beyond int64 are float."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(10)  # the old evaluator ran for minutes: a hang fails the test
    try:
        check_huge_powers()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_huge_powers() -> None:
    assert Expr("9**9**9", "k").evaluate(ARRAYS.__getitem__) == np.inf
    assert ev("jet > 9**9**9") == [False, False, False]
    assert Expr("2**62", "k").evaluate(ARRAYS.__getitem__) == 2**62  # exact while it fits
    assert Expr("2**-1", "k").evaluate(ARRAYS.__getitem__) == 0.5
    assert ev("jet ** 1e9 > 0") == [True, True, True]  # numpy: overflows to inf, no loop


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1" + " + 1" * 700, "2801 characters"),
        ("(" * 60 + "jet" + ")" * 60 + " + " + "-" * 60 + "jet", "nested more than 50"),
        ("jet > 99999999999999999999", "integer literal beyond int64"),
    ],
)
def test_limits_on_size_depth_and_literals(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^selection: .*{message}"):
        Expr(text, "selection")


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("n ** -1", "'n ** (-1)'"),  # numpy: integers to negative integer powers
        ("1 // 0", "'1 // 0'"),
        ("at(pt)", "'at(pt)'"),  # a wrong number of arguments
        ("where(jet) * 10**18", "'where(jet)'"),  # awkward's one-argument form: a tuple
        ("at(jet, 0, 0)", "'at(jet, 0, 0)'"),  # a reduction of a flat array: per chunk
        ("at(pt, jet, 0)", "'at(pt, jet, 0)'"),  # the index must be a whole number
    ],
)
def test_evaluation_failures_are_config_errors(text: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=rf"^sel: cannot evaluate {re.escape(culprit)} in exp"):
        Expr(text, "sel").evaluate(ARRAYS.__getitem__)


def test_floating_point_warnings_give_inf_not_noise() -> None:
    assert ev("jet / 0") == [np.inf] * 3  # pytest turns warnings into errors: none was raised
    assert ev("log(jet - jet)") == [-np.inf] * 3


def test_ufuncs_take_their_number_of_arguments() -> None:
    """maximum(a, b, c) made numpy write the result INTO c, a cached input column."""
    jet = ARRAYS["jet"].copy()
    for text, message in [("maximum(jet, 0, jet)", "takes 2 argument"), ("hypot(jet)", "not 1")]:
        with pytest.raises(ConfigError, match=rf"^k: .*{message}"):
            Expr(text, "k")
    np.testing.assert_array_equal(ARRAYS["jet"], jet)
