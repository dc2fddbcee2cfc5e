"""heptagon.physics.arrays: the packed-int64 stable argsort."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics.arrays import stable_order


def test_stable_order_is_a_stable_argsort() -> None:
    key = np.random.default_rng(2).integers(0, 50, 10_000)  # many ties
    assert np.array_equal(stable_order(key), np.argsort(key, kind="stable"))
    assert stable_order(np.zeros(0, np.int64)).size == 0
    with pytest.raises(ValueError, match="negative"):
        stable_order(np.array([3, -1]))
    # two keys take one position bit: a key of 2^62 leaves no room for it
    assert np.array_equal(stable_order(np.array([(1 << 62) - 1, 0])), [1, 0])
    with pytest.raises(ValueError, match="too large"):
        stable_order(np.array([1 << 62, 0]))
