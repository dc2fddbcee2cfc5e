"""The numpy forms of jagged data: expression columns, standardisation, padding."""

from __future__ import annotations

import threading
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from heptagon.data.config import load_config
from heptagon.data.expr import Expr
from heptagon.data.io import open_reader
from heptagon.data.jagged import Jagged, JaggedColumn, from_awkward, interleave, pad_index
from heptagon.data.loader import pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import GroupParams, Preprocess, VarParams
from heptagon.data.transform import Table, Transform, _standardise
from heptagon.errors import DataError

PT = ak.Array([[3.0, 4.0], [], [1.0, 2.0, 5.0]])
JET = np.array([10.0, 20.0, 30.0])


def column(array: ak.Array) -> JaggedColumn:
    out = from_awkward(array)
    assert isinstance(out, JaggedColumn)
    return out


def test_from_awkward_fast_forms_and_round_trip() -> None:
    pt = column(PT)
    assert pt.counts.tolist() == [2, 0, 3]
    assert pt.content.tolist() == [3.0, 4.0, 1.0, 2.0, 5.0]
    assert ak.to_list(pt.to_awkward()) == ak.to_list(PT)
    assert isinstance(from_awkward(ak.Array(JET)), np.ndarray)
    # sliced (offsets not from 0) and filtered (ListArray) layouts
    assert ak.to_list(column(PT[1:]).to_awkward()) == ak.to_list(PT[1:])
    assert ak.to_list(column(PT[[2, 0]]).to_awkward()) == ak.to_list(PT[[2, 0]])
    # deeper nesting and options stay awkward
    assert isinstance(from_awkward(ak.Array([[[1.0]], []])), ak.Array)
    assert isinstance(from_awkward(ak.Array([[1.0, None]])), ak.Array)


def test_ufuncs_broadcast_like_awkward() -> None:
    lookup = {"pt": column(PT), "jet": JET, "apt": PT}.__getitem__
    for text in ("log(pt / jet) * 2 + 1", "hypot(pt, pt) > 5", "-pt % 3", "jet - pt"):
        fast = Expr(text, "k").evaluate(lookup, columns=True)
        assert isinstance(fast, JaggedColumn)
        assert fast.counts is lookup("pt").counts  # structure shared, not copied
        slow = Expr(text.replace("pt", "apt"), "k").evaluate(lookup)
        assert ak.to_list(fast.to_awkward()) == ak.to_list(slow)
    # other functions and mixed awkward operands go through awkward, back to fast forms
    assert isinstance(Expr("sum(pt)", "k").evaluate(lookup, columns=True), np.ndarray)
    mixed = Expr("where(pt > 2, pt, 0) + apt", "k").evaluate(lookup, columns=True)
    assert ak.to_list(mixed.to_awkward()) == [[6.0, 8.0], [], [1.0, 2.0, 10.0]]
    assert isinstance(Expr("pt * 2", "k").evaluate(lookup), ak.Array)  # default: awkward


def test_ufunc_on_different_structures_raises_as_awkward() -> None:
    other = column(ak.Array([[1.0], [2.0], [3.0]]))
    with pytest.raises(ValueError, match="broadcast"):
        np.add(column(PT), other)


def test_standardise_matches_var_params_apply() -> None:
    rng = np.random.default_rng(0)
    columns = [rng.normal(0, 3, 20_000).astype(np.float32) for _ in range(3)]
    params = (
        VarParams("a", 1.5, 0.7, (-1.0, 2.0), 0.0),
        VarParams("b", 0.0, 1.0, None, 0.0),
        VarParams("c", -2.0, 3.0, None, 0.0),
    )
    before = [c.copy() for c in columns]
    for c, p in zip(columns, params, strict=True):
        out = _standardise(c, p)
        assert out.dtype == np.float32
        assert np.array_equal(out, p.apply(c))
    assert all(np.array_equal(a, b) for a, b in zip(before, columns, strict=True))  # untouched
    assert np.array_equal(interleave(columns), np.stack(columns, axis=1))


def test_column_held_jagged_lays_out_once_and_alike() -> None:
    rng = np.random.default_rng(2)
    counts = [rng.integers(0, 6, n) for n in (7, 9000, 3)]
    columns = [[rng.normal(size=int(c.sum())).astype(np.float32) for _ in range(2)] for c in counts]
    by_columns = [Jagged.from_columns(cols, c) for cols, c in zip(columns, counts, strict=True)]
    by_rows = [Jagged(np.stack(cols, axis=1), c) for cols, c in zip(columns, counts, strict=True)]
    mixed = [by_rows[0], *by_columns[1:]]
    expected = Jagged.concatenate(by_rows)
    for parts in (by_columns, mixed):
        joined = Jagged.concatenate(parts)
        assert np.array_equal(joined.values, expected.values)
        assert np.array_equal(joined.counts, expected.counts)
    cut = Jagged.from_columns(columns[1], counts[1]).truncate(2)
    assert np.array_equal(cut.values, by_rows[1].truncate(2).values)
    assert cut.counts.max() == 2


def test_pad_constant_and_wrap() -> None:
    values = np.arange(12, dtype=np.float32).reshape(6, 2)  # particles x variables
    jagged = Jagged(values, np.array([2, 0, 4]))
    pad = np.array([-1.0, -2.0], dtype=np.float32)
    slots = pad_index(jagged.counts[[2, 0, 1]], jagged.starts[[2, 0, 1]], 3, wrap=False)
    out = jagged.pad(slots, pad)
    assert out.shape == (3, 2, 3)
    assert out[0].tolist() == [[4, 6, 8], [5, 7, 9]]  # entry 2 cut at 3
    assert out[1].tolist() == [[0, 2, -1], [1, 3, -2]]
    assert out[2].tolist() == [[-1, -1, -1], [-2, -2, -2]]
    wrapped = jagged.pad(pad_index(jagged.counts, jagged.starts, 5, wrap=True), pad)
    assert wrapped[0, 0].tolist() == [0, 2, 0, 2, 0]
    assert wrapped[1, 0].tolist() == [-1] * 5
    empty = Jagged(np.zeros((0, 2), np.float32), np.array([0, 0]))
    assert empty.pad(pad_index(empty.counts, empty.starts, 2, False), pad)[:, 1].tolist() == [
        [-2, -2],
        [-2, -2],
    ]


def test_pad_table_with_index_equals_pad_table_of_take() -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 9, 50)
    values = rng.normal(size=(int(counts.sum()), 3)).astype(np.float32)
    table = Table(
        {
            "pf_a": Jagged(values[:, :2].copy(), counts),
            "pf_b": Jagged(values[:, 2:].copy(), counts),
            "jet": rng.normal(size=(50, 2)).astype(np.float32),
        },
        rng.integers(0, 2, 50),
        np.ones(50, np.float32),
        {"event": np.arange(50)},
        counts,
    )
    var = VarParams("x", 0.0, 1.0, None, -5.0)
    groups = {
        "pf_a": GroupParams(6, "constant", True, (var, var)),
        "pf_b": GroupParams(6, "wrap", True, (var,)),
        "jet": GroupParams(None, "constant", False, (var, var)),
    }
    preprocess = Preprocess(groups)
    index = rng.permutation(50)[:17]
    for fixed in (False, True):
        direct = pad_table(table, preprocess, fixed_length=fixed, index=index)
        copied = pad_table(table.take(index), preprocess, fixed_length=fixed)
        for a, b in zip(direct.tensors().values(), copied.tensors().values(), strict=True):
            assert torch.equal(a, b)
        assert torch.equal(direct.label, copied.label)
        assert direct.observers["event"].tolist() == index.tolist()


def test_pad_table_keeps_collections_apart_when_batch_counts_coincide() -> None:
    # two collections with the same counts on entries 1 and 2 but not on entry 0: their
    # particles start at different places, so each group must be padded from its own starts
    pf_counts, sv_counts = np.array([3, 2, 1]), np.array([1, 2, 1])
    pf = Jagged(np.arange(6, dtype=np.float32)[:, None], pf_counts)
    sv = Jagged(np.arange(100, 104, dtype=np.float32)[:, None], sv_counts)
    table = Table({"pf_x": pf, "sv_x": sv}, None, np.ones(3, np.float32), {}, pf_counts)
    var = VarParams("x", 0.0, 1.0, None, -1.0)
    group = GroupParams(2, "constant", True, (var,))
    batch = pad_table(table, Preprocess({"pf_x": group, "sv_x": group}), index=np.array([1, 2]))
    assert batch.inputs["pf_x"][:, 0].tolist() == [[3, 4], [5, -1]]
    assert batch.inputs["sv_x"][:, 0].tolist() == [[101, 102], [103, -1]]
    assert batch.masks["sv_x"][:, 0].tolist() == [[1, 1], [1, 0]]


def _reader_threads() -> int:
    return sum(t.name == "heptagon-reader" for t in threading.enumerate())


def test_background_reader_keeps_order_stops_early_and_hands_errors_on(tmp_path: Path) -> None:
    config = load_config({"inputs": {"jet": {"vars": ["jet_pt"]}}})
    paths = []
    for i in range(3):
        path = tmp_path / f"f{i}.parquet"
        pq.write_table(pa.table({"jet_pt": np.arange(100, dtype=np.float32) + 1000 * i}), path)
        paths.append(path)
    units = []
    for path in paths:
        with open_reader(path) as reader:
            units += reader.units(40)  # one row group each, read in chunks of 40
    tables = iter_tables(units, Transform(config, None), 40, files_at_once=2)
    first = [float(t.inputs["jet"][0, 0]) for t in tables]
    assert first == [0, 1000, 40, 1040, 80, 1080, 2000, 2040, 2080]  # 2 files in turn
    assert _reader_threads() == 0
    tables = iter_tables(units, Transform(config, None), 40, files_at_once=2)
    next(tables)
    tables.close()  # stopping early ends the reader
    assert _reader_threads() == 0
    (tmp_path / "f1.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(DataError, match=r"f1\.parquet"):
        list(iter_tables(units, Transform(config, None), 40, files_at_once=2))
    assert _reader_threads() == 0
