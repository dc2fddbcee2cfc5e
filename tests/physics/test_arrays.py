"""heptagon.physics.arrays: the owning row of a jagged layout's elements and the
packed-int64 stable argsort."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics.arrays import owner_index, stable_order


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


def test_owner_index_names_each_elements_row() -> None:
    owner = owner_index(np.array([2, 0, 3, 0, 1], np.int32))  # empty rows, any int type
    assert owner.dtype == np.int64
    assert owner.tolist() == [0, 0, 2, 2, 2, 4]
    # the rows of a jagged array's flat elements
    counts = np.random.default_rng(1).integers(0, 4, 50)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rows = owner_index(counts)
    assert all((rows[offsets[i] : offsets[i + 1]] == i).all() for i in range(counts.size))
    assert rows.size == counts.sum()
    # no rows, or only empty ones: no elements
    assert owner_index(np.zeros(0, np.int64)).size == 0
    assert owner_index([0, 0]).size == 0
    with pytest.raises(ValueError, match="1-dimensional"):
        owner_index(3)  # np.repeat would broadcast a scalar count
    with pytest.raises(ValueError, match="negative"):
        owner_index([1, -1])
