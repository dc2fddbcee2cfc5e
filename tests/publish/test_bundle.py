"""``export_run`` and ``publish``: a run becomes a bundle usable with ONNX Runtime alone."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

import heptagon.train.trainer as trainer_module
from heptagon.data.loader import JetDataset
from heptagon.evaluate.inference import predict_batches
from heptagon.evaluate.run import evaluate
from heptagon.infer.predict import predict
from heptagon.publish.bundle import export_run, publish
from heptagon.publish.onnx import OUTPUT_NAME, load_onnx
from heptagon.train.run import train
from heptagon.train.rundir import load_run, save_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def run(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "pfn"
    train(
        CONFIGS / "top_pfn.yaml",
        top_qcd_sample,
        out,
        overrides=["train.epochs=2", "train.progress=false"],
    )
    return out


def test_export_run_checks_parity_on_real_batches(run: Path) -> None:
    report = export_run(run)
    assert report.path == run / "model.onnx"
    assert report.input_names == ("pf_features", "pf_mask")
    assert max(report.max_abs_diff.values()) <= 1e-5
    assert any("single" in case for case in report.max_abs_diff)


def test_publish_bundle(run: Path, top_qcd_sample: Path, tmp_path: Path) -> None:
    bundle = publish(run)
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {
        "model.onnx",
        "preprocess.json",
        "MODEL_CARD.md",
        "SHA256SUMS",
        "hepdata/submission.yaml",
        "hepdata.tar.gz",
    } <= names
    # the HEPData working points hold the numbers of metrics.json
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    table = yaml.safe_load(
        (bundle / "hepdata" / "background_rejection_at_fixed_signal_efficiency.yaml").read_text()
    )
    quoted = [v.get("value") for v in table["dependent_variables"][0]["values"]]
    expected = [metrics["rejection_at_eff"][k]["value"] for k in ("0.3", "0.5")]
    for q, e in zip(quoted, expected, strict=True):
        if e is None:
            assert q == "-"
        else:
            assert float(q) == pytest.approx(e, rel=1e-4)
    # every file is listed with its checksum
    sums = dict(line.split("  ")[::-1] for line in (bundle / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == names - {"SHA256SUMS"}
    # re-running gives the same content (the tarball's timestamps aside)
    again = publish(run)
    sums2 = dict(line.split("  ")[::-1] for line in (again / "SHA256SUMS").read_text().splitlines())
    assert {k: v for k, v in sums.items() if k != "hepdata.tar.gz"} == {
        k: v for k, v in sums2.items() if k != "hepdata.tar.gz"
    }

    # the bundle alone predicts what the run's torch model gives on the same jets
    shard = top_qcd_sample / "shards" / "Tbqq_0001.parquet"
    (scores,) = predict(
        bundle / "model.onnx",
        [shard],
        tmp_path / "scores",
        observers=["event", "jet_pt"],
        progress=False,
    )
    onnx = pq.read_table(scores).to_pandas()
    assert len(onnx) == pq.read_metadata(shard).num_rows
    loaded = load_run(run)
    cfg = loaded.config.data.model_copy(update={"observers": ["event", "jet_pt"]})
    data = JetDataset([shard], cfg, loaded.preprocess, split=None, shuffle=False, batch_size=64)
    torch_pred = predict_batches(loaded.model, data, name="x", class_names=["QCD", "Tbqq"])
    a = np.lexsort((onnx["jet_pt"].to_numpy(), onnx["event"].to_numpy()))
    b = np.lexsort((torch_pred.observers["jet_pt"], torch_pred.observers["event"]))
    np.testing.assert_allclose(onnx["score_Tbqq"].to_numpy()[a], torch_pred.probs[b, 1], atol=1e-5)


def test_publish_re_exports_a_stale_export(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export made after epoch 1, the run then resumed to epoch 2: publish ships the
    final best checkpoint, not the stale file; the bundle dir has the umask's mode."""
    full, early = tmp_path / "full", tmp_path / "early"

    def snapshot_after_epoch_1(path: Path, state: dict[str, Any]) -> None:
        save_checkpoint(path, state)
        if Path(path).name == "last.pt" and not early.exists():
            shutil.copytree(full, early)

    monkeypatch.setattr(trainer_module, "save_checkpoint", snapshot_after_epoch_1)
    overrides = ["train.epochs=2", "train.progress=false", "train.batch_size=64"]
    train(CONFIGS / "top_pfn.yaml", top_qcd_sample, full, overrides=overrides)
    monkeypatch.undo()
    stale = export_run(early)  # epoch 1's best
    stale_sha = load_onnx(stale.path).checkpoint_sha256
    assert evaluate(early).metrics.checkpoint_sha256 == stale_sha  # and its evaluation
    train(CONFIGS / "top_pfn.yaml", top_qcd_sample, early, overrides=overrides, resume=True)
    loaded = load_run(early)
    assert loaded.checkpoint_sha256() != stale_sha  # epoch 2 improved: the export is stale

    said: list[str] = []
    bundle = publish(early, say=said.append)
    assert said == [
        f"{early}: eval/ was made from another checkpoint: re-evaluated on the test split",
        f"{early / 'model.onnx'} was exported from another checkpoint: re-exported",
    ]
    metrics = json.loads((early / "eval" / "metrics.json").read_text())
    assert metrics["checkpoint_sha256"] == loaded.checkpoint_sha256()  # the card's numbers
    shipped = load_onnx(bundle / "model.onnx")
    assert shipped.checkpoint_sha256 == loaded.checkpoint_sha256()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o777 & ~umask
    # its scores on a test batch are the best checkpoint's
    data = JetDataset(
        list(loaded.config.files),
        loaded.config.data,
        loaded.preprocess,
        split="test",
        split_fractions=loaded.config.split.fractions,
        shuffle=False,
    )
    tensors = next(iter(data)).tensors()
    feed = {name: tensors[name].numpy() for name in shipped.input_names}
    (onnx_probs,) = shipped.session().run([OUTPUT_NAME], feed)
    with torch.no_grad():
        logits = loaded.model(*(tensors[name] for name in loaded.input_names))
    np.testing.assert_allclose(onnx_probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    # published again, nothing is re-exported
    said.clear()
    publish(early, say=said.append)
    assert said == []
