"""predict: row-aligned scores equal to PyTorch's, observers copied, every entry scored,
and bad inputs rejected before any output is written."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from heptagon.data import DataConfig, JetDataset, Preprocess, load_config
from heptagon.errors import DataError
from heptagon.infer.predict import predict


def shard(sample: Path, name: str = "Tbqq_0000") -> Path:
    return sample / "shards" / f"{name}.parquet"


def torch_scores(
    path: Path, config: DataConfig, preprocess: Preprocess, model: nn.Module
) -> np.ndarray:
    """The model's probabilities on every entry of ``path``, in file order."""
    every = load_config({**config.model_dump(mode="json"), "selection": None})
    dataset = JetDataset(
        path, every, preprocess, split=None, shuffle=False, bucketing=False, batch_size=64
    )
    with torch.no_grad():
        out = [
            torch.softmax(model(*(b.tensors()[n] for n in model.input_names)), 1) for b in dataset
        ]
    return torch.cat(out).numpy()


def test_scores_row_aligned_with_torch(
    tmp_path: Path,
    top_qcd_sample: Path,
    onnx_model: Path,
    infer_config: DataConfig,
    infer_preprocess: Preprocess,
    torch_model: nn.Module,
) -> None:
    source = shard(top_qcd_sample)
    (out,) = predict(
        onnx_model, source, tmp_path, threads=1, batch_size=50, observers=["jet_pt", "event"],
        progress=False,
    )  # fmt: skip
    assert out == tmp_path / "Tbqq_0000.parquet"
    got = pq.read_table(out)
    raw = pq.read_table(source)
    # the truth labels, the file having them, then the observers
    assert got.column_names == [
        "score_QCD",
        "score_Tbqq",
        "label_QCD",
        "label_Tbqq",
        "jet_pt",
        "event",
    ]
    np.testing.assert_array_equal(got["label_Tbqq"].to_numpy(), raw["label_Tbqq"].to_numpy())
    assert got.num_rows == raw.num_rows  # the training selection (jet_pt > 600) is not applied
    np.testing.assert_array_equal(got["jet_pt"].to_numpy(), raw["jet_pt"].to_numpy())
    np.testing.assert_array_equal(got["event"].to_numpy(), raw["event"].to_numpy())
    scores = np.stack([got["score_QCD"].to_numpy(), got["score_Tbqq"].to_numpy()], axis=1)
    want = torch_scores(source, infer_config, infer_preprocess, torch_model)
    np.testing.assert_allclose(scores, want, atol=1e-5, rtol=0)
    assert np.ptp(scores[:, 1]) > 0  # not a constant


def test_several_files_in_order(
    tmp_path: Path, top_qcd_sample: Path, onnx_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = sorted((top_qcd_sample / "shards").glob("*.parquet"))
    with caplog.at_level(logging.INFO, logger="heptagon.predict"):
        outs = predict(onnx_model, top_qcd_sample, tmp_path / "out", progress=False)
    assert [o.name for o in outs] == [f.name for f in files]
    logged = [r.getMessage() for r in caplog.records]  # one line per file, as it is done
    n = len(files)
    assert [m.split(" done: ")[0] for m in logged] == [f"file {i}/{n}" for i in range(1, n + 1)]
    assert all(f.name in m and o.name in m for f, o, m in zip(files, outs, logged, strict=True))
    for out, source in zip(outs, files, strict=True):
        assert pq.read_metadata(out).num_rows == pq.read_metadata(source).num_rows


def _without(source: Path, target: Path, column: str) -> Path:
    table = pq.read_table(source)
    pq.write_table(table.drop_columns([column]), target)
    return target


def test_missing_branch_errs_before_any_output(
    tmp_path: Path, top_qcd_sample: Path, onnx_model: Path
) -> None:
    good = shard(top_qcd_sample, "QCD_0000")
    bad = _without(shard(top_qcd_sample), tmp_path / "nodeta.parquet", "part_deta")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"nodeta\.parquet, branch 'part_deta': branch not found"):
        predict(onnx_model, [good, bad], out, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_wrong_shape_errs_before_any_output(
    tmp_path: Path, top_qcd_sample: Path, onnx_model: Path
) -> None:
    arrays = ak.from_parquet(shard(top_qcd_sample))
    arrays = ak.with_field(arrays, arrays["jet_pt"], "part_deta")  # a scalar, not per particle
    bad = tmp_path / "scalar.parquet"
    ak.to_parquet(arrays, bad)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"scalar\.parquet, branch 'part_deta': expected a jagged"):
        predict(onnx_model, [shard(top_qcd_sample, "QCD_0000"), bad], out, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_observer_problems(tmp_path: Path, top_qcd_sample: Path, onnx_model: Path) -> None:
    source = shard(top_qcd_sample)
    with pytest.raises(DataError, match="branch 'jet_nothing': branch not found"):
        predict(onnx_model, source, tmp_path, observers=["jet_nothing"], progress=False)
    with pytest.raises(DataError, match="branch 'part_px': expected a value per entry"):
        predict(onnx_model, source, tmp_path, observers=["part_px"], progress=False)
    with pytest.raises(DataError, match="clash with the score columns"):
        predict(onnx_model, source, tmp_path, observers=["score_QCD"], progress=False)
    assert not any(tmp_path.iterdir())


def test_not_an_onnx_file(tmp_path: Path, top_qcd_sample: Path) -> None:
    fake = tmp_path / "model.onnx"
    shutil.copy(shard(top_qcd_sample), fake)  # a Parquet file named .onnx
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"model\.onnx: not an? (ONNX model|heptagon ONNX export)"):
        predict(fake, shard(top_qcd_sample), out, progress=False)
    assert not out.exists()


def test_output_would_overwrite_input(
    tmp_path: Path, top_qcd_sample: Path, onnx_model: Path
) -> None:
    copy = tmp_path / "Tbqq_0000.parquet"
    shutil.copy(shard(top_qcd_sample), copy)
    with pytest.raises(DataError, match="would overwrite an input"):
        predict(onnx_model, copy, tmp_path, progress=False)
