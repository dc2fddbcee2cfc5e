"""``heptagon bundle inspect BUNDLE``: what a published model needs, what it was trained
on, how well it does, under which licence, and whether the bundle is intact.

Every file listed in ``SHA256SUMS`` is checked first (:func:`heptagon.publish.sums.
verify_sums`; an altered, missing or unlisted ``model.onnx`` is a
:class:`~heptagon.errors.DataError` naming the file); then the bundle's own typed files
are read (``metadata.json``, ``preprocess.json``, ``metrics.json``). Nothing in the
bundle is executed or unpickled.
"""

from __future__ import annotations

from pathlib import Path

from heptagon.artifacts.bundle import BundleMetadata
from heptagon.artifacts.metrics import (
    AnomalyMetrics,
    BinaryMetrics,
    MulticlassMetrics,
    RegressionMetrics,
    read_evaluation,
)
from heptagon.artifacts.preprocess import PreprocessFile
from heptagon.errors import DataError
from heptagon.evaluate.report import format_value
from heptagon.publish.fair import METADATA_FILE
from heptagon.publish.onnx import ONNX_NAME
from heptagon.publish.sums import SUMS_FILE, read_sums, verify_sums

__all__ = ["inspect_bundle"]


def _inputs(pre: PreprocessFile) -> list[str]:
    lines = ["inputs (float32, pre-processed as preprocess.json says):"]
    for name in pre.input_names:
        entry = pre.inputs[name]
        n = len(entry.var_names)
        shape = f"(batch, {n})" if entry.kind == "entry" else f"(batch, {n}, n_particles)"
        if entry.kind == "particles" and entry.max_length is not None:
            shape += f", up to {entry.max_length} particles"
        lines.append(f"  {name} {shape} [{entry.kind}]: {', '.join(entry.var_names)}")
        for var, info in entry.var_infos.items():
            if info.median != 0 or info.norm_factor != 1:
                lines.append(
                    f"    {var}: (x - {info.median:.6g}) * {info.norm_factor:.6g}, clipped to "
                    f"[{info.lower_bound:g}, {info.upper_bound:g}]"
                )
    return lines


def _performance(
    metrics: BinaryMetrics | MulticlassMetrics | RegressionMetrics | AnomalyMetrics,
) -> list[str]:
    if isinstance(metrics, BinaryMetrics):
        rej = metrics.rejection_at_eff
        return [
            f"  {metrics.signal}: AUC {format_value(metrics.auc)}, accuracy "
            f"{format_value(metrics.accuracy)}",
            *(f"  1/eps_B at eps_S = {k}: {format_value(v)}" for k, v in rej.items()),
        ]
    if isinstance(metrics, MulticlassMetrics):
        lines = [
            f"  macro AUC {format_value(metrics.auc)}, accuracy {format_value(metrics.accuracy)}"
        ]
        lines += [f"  {c} vs rest: AUC {format_value(m.auc)}" for c, m in metrics.per_class.items()]
        lines += [
            f"  {c} vs QCD: AUC {format_value(m.auc)}" for c, m in metrics.pairwise_vs_QCD.items()
        ]
        return lines
    if isinstance(metrics, RegressionMetrics):
        return [
            f"  median response {format_value(metrics.response_median)}, resolution "
            f"{format_value(metrics.resolution)}"
        ]
    lines = [f"  score {metrics.score}: AUC {format_value(metrics.auc)} (all held-out classes)"]
    for cls, v in metrics.scores.get(metrics.score, {}).items():
        at = v.eff_at_rate
        lines.append(
            f"  {cls}: AUC {format_value(v.auc)}, eps_S {format_value(at.signal_eff)} at "
            f"{at.rate_hz / 1e3:.4g} kHz"
        )
    return lines


def inspect_bundle(bundle: str | Path) -> list[str]:
    """The report of ``bundle`` (a directory ``publish`` wrote), as lines; a
    :class:`DataError` naming the file when the bundle is not intact or not a bundle."""
    root = Path(bundle)
    if not (root / SUMS_FILE).is_file():
        raise DataError(f"no {SUMS_FILE}: not a heptagon bundle (heptagon publish RUN)", root)
    verify_sums(root, ONNX_NAME)
    listed = read_sums(root)
    for name in (METADATA_FILE, "preprocess.json", "metrics.json"):
        if name not in listed:
            raise DataError(f"is not listed in {SUMS_FILE}: cannot be trusted", root / name)
    meta = BundleMetadata.read(root / METADATA_FILE)
    pre = PreprocessFile.read(root / "preprocess.json")
    metrics = read_evaluation(root / "metrics.json")
    data, env = meta.training_data, meta.environment
    entries = ", ".join(f"{c} {n}" for c, n in data.entries.items()) or "-"
    return [
        f"bundle {root}: intact ({len(listed)} files match {SUMS_FILE})",
        f"model: {meta.title}",
        f"  {meta.model_name}, task {meta.task}, version {meta.model_version}",
        f"  licence {meta.license}; identifier {meta.identifier or '-'}; authors "
        f"{'; '.join(meta.authors)}",
        f"outputs: {', '.join(meta.outputs)}",
        *_inputs(pre),
        f"training data: sample {data.sample} ({data.kind or 'user files'}), seed "
        f"{data.seed if data.seed is not None else '-'}, {entries}",
        f"  manifest sha256 {data.manifest_sha256 or '- (no heptagon manifest)'}",
        f"  split train/val/test {'/'.join(f'{f:g}' for f in data.split_fractions)}, "
        f"seed {data.split_seed}",
        f"performance on the {metrics.sample} sample:",
        *_performance(metrics),
        f"made with heptagon {env.heptagon} (source sha256 {env.heptagon_source_sha256[:16]}"
        f"...), Python {env.python}, "
        + ", ".join(f"{k} {v.version}" for k, v in env.packages.items()),
    ]
