"""``heptagon export RUN`` and ``heptagon publish RUN``: from a trained run to a bundle that
someone outside the collaboration can use with nothing but ONNX Runtime.

``RUN/model.onnx`` (checked against PyTorch on real test batches, see
:func:`heptagon.publish.onnx.export_onnx`) and ``RUN/bundle/``::

    model.onnx  preprocess.json  MODEL_CARD.md  hepdata/  hepdata.tar.gz  SHA256SUMS

The HEPData tables are rebuilt from ``RUN/eval/`` (the test-split predictions and
``metrics.json``), so they hold the same numbers; re-running gives the same content
(the tarball's timestamps aside).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.metadata import version
from itertools import islice
from pathlib import Path
from typing import Any

from heptagon import __version__
from heptagon.data.loader import JetDataset
from heptagon.errors import ExportError
from heptagon.evaluate.analysis import binary_curves
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.run import EVAL_DIR, evaluate
from heptagon.generate.run import load_manifest
from heptagon.io import atomic_path, sha256sum
from heptagon.physics.ddt import DDT_FILE, DDTMap
from heptagon.publish.card import render_model_card
from heptagon.publish.hepdata import build_submission, write_submission
from heptagon.publish.onnx import ExportReport, export_onnx
from heptagon.train.rundir import LoadedRun, load_run

__all__ = ["BUNDLE_DIR", "export_run", "publish"]

BUNDLE_DIR = "bundle"
ONNX_NAME = "model.onnx"
#: real test batches the export is checked on
CHECK_BATCHES = 2


def export_run(run_dir: str | Path) -> ExportReport:
    """Export a run's best model to ``RUN/model.onnx`` (and ``preprocess.json`` beside it),
    checked against PyTorch on real batches of its test split; a run's DDT map
    (``RUN/ddt.json``) goes into the ONNX metadata."""
    loaded = load_run(run_dir)
    cfg = loaded.config
    dataset = JetDataset(
        list(cfg.files),
        cfg.data,
        loaded.preprocess,
        split="test",
        split_fractions=cfg.split.fractions,
        batch_size=256,
        shuffle=False,
        seed=cfg.train.seed,
    )
    checks = [batch.tensors() for batch in islice(dataset, CHECK_BATCHES)]
    if not checks:
        raise ExportError(f"{loaded.root}: the test split is empty; nothing to check the export on")
    return export_onnx(
        loaded.model,
        loaded.input_names,
        loaded.info["input_dims"],
        loaded.preprocess,
        loaded.class_names,
        loaded.root / ONNX_NAME,
        data_config=cfg.data,
        model_name=loaded.info["name"],
        check_inputs=checks,
        ddt=DDTMap.load(ddt_path) if (ddt_path := loaded.root / DDT_FILE).exists() else None,
    )


def _manifest(loaded: LoadedRun) -> dict[str, Any] | None:
    """The training dataset's manifest, if the files come from one heptagon dataset."""
    for f in loaded.config.files:
        p = Path(f)
        for parent in (p.parent.parent, p.parent):
            if (parent / "manifest.json").exists():
                return load_manifest(parent)
    return None


def _write_sums(bundle: Path) -> None:
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256sum(p)}  {p.relative_to(bundle).as_posix()}" for p in files]
    with atomic_path(bundle / "SHA256SUMS") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def publish(run_dir: str | Path) -> Path:
    """Build ``RUN/bundle/`` (exporting and evaluating first where that is not done yet);
    return its path. A binary classifier is required for the HEPData tables."""
    root = Path(run_dir)
    if not (root / ONNX_NAME).exists():
        export_run(root)
    eval_dir = root / EVAL_DIR
    if not (eval_dir / "predictions_test.parquet").exists():
        evaluate(root)
    loaded = load_run(root)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    nominal = {k: v for k, v in metrics.items() if k != "samples"}
    class_names = list(loaded.class_names)
    if len(class_names) != 2:
        raise ExportError(f"{root}: publish supports binary classifiers ({class_names})")
    pred = Predictions.load(eval_dir / "predictions_test.parquet", class_names)
    curves = binary_curves(pred)  # the ROC and maps; the quoted numbers: metrics.json
    manifest = _manifest(loaded)
    sample = manifest["sample"] if manifest else "user files"

    staging = Path(tempfile.mkdtemp(prefix=".bundle.", dir=root))
    try:
        shutil.copyfile(root / ONNX_NAME, staging / ONNX_NAME)
        shutil.copyfile(root / "preprocess.json", staging / "preprocess.json")
        maps = {f"{k.capitalize()} map vs jet pT and eta": m for k, m in curves.maps.items()}
        submission = build_submission(
            nominal, curves.roc, maps, sample=sample, model_path=staging / ONNX_NAME
        )
        write_submission(submission, staging / "hepdata")
        fractions = loaded.config.split.fractions
        card = render_model_card(
            model_info=loaded.info,
            preprocess=loaded.preprocess.to_dict(),
            metrics=nominal,
            manifest=manifest,
            onnx_name=ONNX_NAME,
            n_train=f"deterministic split train/val/test = {'/'.join(map(str, fractions))}",
            versions={"heptagon": __version__, "torch": version("torch")},
        )
        (staging / "MODEL_CARD.md").write_text(card)
        _write_sums(staging)
        bundle = root / BUNDLE_DIR
        if bundle.exists():
            os.replace(bundle, staging / "previous")
        os.replace(staging, bundle)
        shutil.rmtree(bundle / "previous", ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return bundle
