"""``heptagon export RUN`` and ``heptagon publish RUN``: from a trained run to a bundle that
someone outside the collaboration can use with nothing but ONNX Runtime.

``RUN/model.onnx`` (checked against PyTorch on real test batches, see
:func:`heptagon.publish.onnx.export_onnx`) and ``RUN/bundle/``::

    model.onnx  preprocess.json  metrics.json  MODEL_CARD.md  hepdata/  hepdata.tar.gz
    metadata.json  CITATION.cff  codemeta.json  .zenodo.json  SHA256SUMS
    scale_factors.json  (with publish --scale-factors: docs/scale-factors.md)

for binary and multi-class classifiers, regressions and anomaly detectors. The HEPData
tables are rebuilt from ``RUN/eval/`` (the test-split predictions and ``metrics.json``,
copied into the bundle), so they hold the same numbers; re-running gives the same
content (the tarball's timestamps aside). The FAIR files (licence, version, identifier,
software environment, training data: :mod:`heptagon.publish.fair`) are made from the
user's :class:`~heptagon.publish.fair.FairOptions`.

The export records the sha256 of the checkpoint it was made from. ``publish`` ships
``RUN/model.onnx`` only if it is a valid heptagon export of the run's current best
checkpoint that matches it on real test jets; otherwise (missing, unreadable, stale after a
resumed training, altered) it re-exports first and says why. The shipped file itself
passes every check of the export before the bundle replaces the previous one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heptagon import __version__
from heptagon.artifacts.bundle import BundleMetadata, TrainingData
from heptagon.artifacts.manifest import JetManifest, Manifest, load_manifest
from heptagon.artifacts.metrics import BinaryEvaluation, Evaluation, MulticlassEvaluation
from heptagon.artifacts.scale_factors import ScaleFactorTable
from heptagon.data.loader import JetDataset
from heptagon.errors import DataError, ExportError
from heptagon.evaluate.analysis import analyse, binary_curves
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.run import EVAL_DIR, current_evaluation
from heptagon.io import sha256sum
from heptagon.logs import get_logger
from heptagon.models.autoencoder import AnomalyScore, ReconstructionModel
from heptagon.physics.ddt import DDT_FILE, DDTMap
from heptagon.physics.experiment import dataset_experiment
from heptagon.publish.card import render_model_card
from heptagon.publish.fair import FairOptions, environment, keywords, write_fair
from heptagon.publish.hepdata import (
    add_tables,
    build_submission,
    scale_factor_tables,
    submission_of,
    task_tables,
    write_submission,
)
from heptagon.publish.onnx import (
    ONNX_NAME,
    OUTPUT_NAME,
    Activation,
    ExportReport,
    Tensors,
    check_parity,
    export_onnx,
    onnx_model,
    read_onnx,
)
from heptagon.publish.sums import write_sums
from heptagon.train.rundir import LoadedRun, load_run

if TYPE_CHECKING:
    from hepdata_lib import Submission

__all__ = ["BUNDLE_DIR", "SCALE_FACTORS_FILE", "export_run", "exported_model", "publish"]

BUNDLE_DIR = "bundle"
#: a bundle's scale-factor table (publish --scale-factors)
SCALE_FACTORS_FILE = "scale_factors.json"
_log = get_logger("publish")
#: real test batches the export is checked on
CHECK_BATCHES = 2


def export_run(run_dir: str | Path, output_name: str = OUTPUT_NAME) -> ExportReport:
    """Export a run's best model to ``RUN/model.onnx`` (and ``preprocess.json`` beside it),
    checked against PyTorch on real batches of its test split; a run's DDT map
    (``RUN/ddt.json``) and the sha256 of the best checkpoint go into the ONNX metadata.
    ``output_name``: the ONNX output's name (``softmax`` as weaver names it)."""
    loaded = load_run(run_dir)
    return _export(loaded, _check_batches(loaded), output_name)


def _check_batches(loaded: LoadedRun) -> list[Tensors]:
    """The first real test batches of a run, to check an export on."""
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
    checks: list[Tensors] = [batch.tensors() for batch in islice(dataset, CHECK_BATCHES)]
    if not checks:
        raise ExportError(f"{loaded.root}: the test split is empty; nothing to check the export on")
    return checks


def _export(
    loaded: LoadedRun, checks: Sequence[Tensors], output_name: str = OUTPUT_NAME
) -> ExportReport:
    """:func:`export_run` of a loaded run on its check batches."""
    cfg = loaded.config
    model, class_names, activation = exported_model(loaded)
    return export_onnx(
        model,
        loaded.input_names,
        loaded.info.input_dims,
        loaded.preprocess,
        class_names,
        loaded.root / ONNX_NAME,
        data_config=cfg.data,
        model_name=loaded.info.name,
        check_inputs=checks,
        ddt=DDTMap.load(ddt_path) if (ddt_path := loaded.root / DDT_FILE).exists() else None,
        checkpoint_sha256=loaded.checkpoint_sha256(),
        output_name=output_name,
        activation=activation,
    )


def exported_model(loaded: LoadedRun) -> tuple[Any, tuple[str, ...], Activation | None]:
    """What a run's export computes: the model, its output names and activation (None:
    from the preprocessing). An anomaly detector exports its score (one output,
    ``anomaly_<score>``, no activation: :class:`~heptagon.models.autoencoder.AnomalyScore`)."""
    if isinstance(loaded.model, ReconstructionModel):
        score = AnomalyScore(loaded.model)
        return score, (f"anomaly_{score.score}",), "none"
    return loaded.model, loaded.class_names, None


def _export_problem(path: Path, loaded: LoadedRun, checks: Sequence[Tensors]) -> str | None:
    """Why the ONNX file at ``path`` is not a sound export of the run's best checkpoint
    (None: it is): not a valid heptagon export, made from another checkpoint, or failing
    ``onnx.checker``, ONNX Runtime or the parity check against the loaded model."""
    try:
        path, proto = read_onnx(path, verify=False)
        exported = onnx_model(path, proto)
    except DataError as err:
        return f"is not a valid heptagon export ({err})"
    if exported.checkpoint_sha256 != loaded.checkpoint_sha256():
        return "was exported from another checkpoint"
    model, class_names, activation = exported_model(loaded)
    try:
        check_parity(
            proto,
            model,
            loaded.input_names,
            loaded.preprocess,
            len(class_names),
            checks,
            activation=activation,
        )
    except ExportError as err:
        return f"fails the export checks ({err})"
    return None


def _manifest(loaded: LoadedRun) -> tuple[Path, Manifest] | None:
    """The training dataset's ``manifest.json`` and its content, if the files come from one
    heptagon dataset."""
    for f in loaded.config.files:
        p = Path(f)
        for parent in (p.parent.parent, p.parent):
            if (parent / "manifest.json").exists():
                return parent / "manifest.json", load_manifest(parent)
    return None


def _training_data(loaded: LoadedRun, found: tuple[Path, Manifest] | None) -> TrainingData:
    """The training data's description: the manifest's sha256, sample, seed and sizes."""
    cfg = loaded.config
    split = {"split_fractions": list(cfg.split.fractions), "split_seed": cfg.train.seed}
    if found is None:
        return TrainingData(
            manifest_sha256=None, kind=None, sample="user files", seed=None, entries={}, **split
        )
    path, manifest = found
    if isinstance(manifest, JetManifest):
        entries = {c: v.jets for c, v in manifest.classes.items()}
    elif isinstance(manifest.classes, dict):
        entries = {c: v.events for c, v in manifest.classes.items()}
    else:  # detector elements: the events of the whole sample
        entries = {"events": manifest.events}
    return TrainingData(
        manifest_sha256=sha256sum(path),
        kind=manifest.kind,
        sample=manifest.sample,
        seed=manifest.seed,
        entries=entries,
        **split,
    )


def _submission(loaded: LoadedRun, metrics: Evaluation, sample: str, model: Path) -> Submission:
    """The HEPData submission of the run's evaluation (ROC curves and maps from the saved
    test-split predictions; every quoted number from ``metrics.json``)."""
    experiment = dataset_experiment(loaded.config.files)
    predictions = loaded.root / EVAL_DIR / "predictions_test.parquet"
    if isinstance(metrics, BinaryEvaluation):
        curves = binary_curves(Predictions.load(predictions, list(loaded.class_names)))
        maps = {f"{k.capitalize()} map vs jet pT and eta": m for k, m in curves.maps.items()}
        return build_submission(
            metrics, curves.roc, maps, sample=sample, model_path=model, experiment=experiment
        )
    rocs = {}
    if isinstance(metrics, MulticlassEvaluation):  # the curves only; analyse's numbers unused
        pred = Predictions.load(predictions, list(loaded.class_names))
        rocs = analyse(pred, n_boot=2).rocs
    tables = task_tables(metrics, sample=sample, rocs=rocs)
    return submission_of(tables, model_path=model, experiment=experiment)


def _ship_model(
    loaded: LoadedRun, staging: Path, checks: Sequence[Tensors], say: Callable[[str], None]
) -> None:
    """Copy ``RUN/model.onnx`` into ``staging``, re-exporting it first (and saying why) if
    it is not a sound export of the best checkpoint; the copy is checked itself."""
    source, shipped = loaded.root / ONNX_NAME, staging / ONNX_NAME
    if source.exists():
        shutil.copyfile(source, shipped)
        problem = _export_problem(shipped, loaded, checks)
    else:
        problem = "does not exist"
    if problem is None:
        return
    _export(loaded, checks)
    say(f"{source} {problem}: re-exported")
    shutil.copyfile(source, shipped)
    problem = _export_problem(shipped, loaded, checks)
    if problem is not None:
        raise ExportError(f"{shipped}: the fresh export {problem}")


def _make_staging(root: Path) -> Path:
    """A new hidden directory in ``root`` with the umask's permissions (not mkdtemp's
    0700: the bundle is meant to be shared)."""
    staging = root / f".bundle.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    return staging


def _metadata(
    loaded: LoadedRun, options: FairOptions, found: tuple[Path, Manifest] | None
) -> BundleMetadata:
    """The bundle's ``metadata.json`` from the run and the user's choices."""
    info = loaded.info
    data = _training_data(loaded, found)
    return BundleMetadata(
        title=f"{info.name} {info.task} model ({', '.join(info.class_names)}) on {data.sample}",
        description=f"A {info.task} model ({info.name}) trained with heptagon on the sample "
        f"{data.sample}, exported to ONNX with its pre-processing, model card and HEPData "
        "record of its performance on the held-out test split.",
        model_name=info.name,
        task=info.task,
        outputs=list(exported_model(loaded)[1]),
        license=options.license,
        model_version=options.model_version,
        identifier=options.identifier,
        authors=list(options.authors),
        keywords=keywords(info.task, info.class_names),
        checkpoint_sha256=loaded.checkpoint_sha256(),
        training_data=data,
        environment=environment(),
    )


def _scale_factors(path: str | Path | None, staging: Path) -> ScaleFactorTable | None:
    """The scale-factor table at ``path``, checked against the shipped model and copied
    into the bundle (None: none given)."""
    if path is None:
        return None
    table = ScaleFactorTable.read(path)
    if table.tagger_sha256 != sha256sum(staging / ONNX_NAME):
        raise DataError(
            "was measured with another model file than this run's model.onnx", path, "tagger"
        )
    table.write(staging / SCALE_FACTORS_FILE)
    return table


def publish(
    run_dir: str | Path,
    *,
    options: FairOptions | None = None,
    say: Callable[[str], None] = print,
    scale_factors: str | Path | None = None,
) -> Path:
    """Build ``RUN/bundle/`` (exporting and evaluating first where that is not done yet;
    re-exporting a ``model.onnx`` that is not a sound export of the best checkpoint, and
    re-evaluating an evaluation that is not of the best checkpoint's test split, the reason
    passed to ``say``); return its path. ``options``: the licence, version, identifier
    and authors of the FAIR files (None: the defaults of :class:`FairOptions`).
    ``scale_factors``: a scale-factor table of this model (``heptagon sf measure``),
    copied into the bundle as ``scale_factors.json`` with its HEPData tables and model-card
    section; :class:`DataError` if it was measured with another model file."""
    options = (options or FairOptions()).checked()
    root = Path(run_dir)
    loaded = load_run(root)
    start = time.perf_counter()
    _log.info("publishing %s", root)
    checks = _check_batches(loaded)
    metrics = current_evaluation(loaded, say=say)
    found = _manifest(loaded)
    manifest = found[1] if found else None
    metadata = _metadata(loaded, options, found)

    staging = _make_staging(root)
    try:
        _ship_model(loaded, staging, checks, say)
        shutil.copyfile(root / "preprocess.json", staging / "preprocess.json")
        metrics.write(staging / "metrics.json")
        submission = _submission(
            loaded, metrics, metadata.training_data.sample, staging / ONNX_NAME
        )
        sf = _scale_factors(scale_factors, staging)
        if sf is not None:
            add_tables(submission, scale_factor_tables(sf), sf.sqrt_s_gev / 1000)
        write_submission(submission, staging / "hepdata")
        fractions = loaded.config.split.fractions
        card = render_model_card(
            model_info=loaded.info,
            preprocess=loaded.preprocess.to_dict(loaded.info.input_names),
            metrics=metrics,
            manifest=manifest,
            onnx_name=ONNX_NAME,
            n_train=f"deterministic split train/val/test = {'/'.join(map(str, fractions))}",
            versions={"heptagon": __version__, "torch": version("torch")},
            metadata=metadata,
            scale_factors=sf,
        )
        (staging / "MODEL_CARD.md").write_text(card)
        write_fair(staging, metadata)
        write_sums(staging)
        bundle = root / BUNDLE_DIR
        if bundle.exists():
            os.replace(bundle, staging / "previous")
        os.replace(staging, bundle)
        shutil.rmtree(bundle / "previous", ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    _log.info("published %s (%.1f s)", bundle, time.perf_counter() - start)
    return bundle
