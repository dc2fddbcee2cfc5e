"""``MODEL_CARD.md``: what a physicist outside the collaboration needs to reuse a model.

Model details, inputs with their pre-processing, the training data and its generator
settings (from the dataset manifest), the performance table with working points, intended
use, out-of-scope uses, limitations, licence and citation, and how to run it in a few
lines of onnxruntime. A binary classifier's working points; a multi-class tagger's per
class (one vs rest, and each signal vs QCD); a regression's response and resolution; an
anomaly detector's efficiency per held-out class at the fixed background rate.
Everything is rendered from the run's artifacts (the typed models of
:mod:`heptagon.artifacts`), so re-running gives the same text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heptagon.artifacts.bundle import BundleMetadata
from heptagon.artifacts.manifest import ElementManifest, JetClass, JetManifest, Manifest
from heptagon.artifacts.metrics import (
    AnomalyMetrics,
    BinaryMetrics,
    MulticlassMetrics,
    RegressionMetrics,
)
from heptagon.artifacts.run import ModelInfo
from heptagon.artifacts.scale_factors import ScaleFactorTable
from heptagon.evaluate.report import SUMMARY_COLUMNS, format_value, markdown_table, summary_rows

__all__ = ["Metrics", "render_model_card"]

#: the metrics a card renders: one sample's, of any task
Metrics = BinaryMetrics | MulticlassMetrics | RegressionMetrics | AnomalyMetrics


def _inputs_table(preprocess: Mapping[str, Any]) -> list[str]:
    """The variables of each input but the masks, from ``preprocess.json``'s entries."""
    lines = [
        "| input | variable | center | scale | clip | padded to |",
        "|---|---|---|---|---|---|",
    ]
    for group in preprocess["input_names"]:
        entry = preprocess[group]
        if entry["kind"] == "mask":
            continue
        length = "(per jet)" if entry["kind"] == "entry" else entry.get("max_length")
        for name in entry["var_names"]:
            var = entry["var_infos"][name]
            clip = var["lower_bound"], var["upper_bound"]
            clip_text = "-" if clip == (-1e32, 1e32) else f"[{clip[0]:g}, {clip[1]:g}]"
            lines.append(
                f"| `{group}` | `{name}` | {var['median']:.6g} | {var['norm_factor']:.6g} | "
                f"{clip_text} | {length} |"
            )
    return lines


def _training_data(manifest: Manifest | None, n_train: str) -> list[str]:
    if manifest is None:
        return [f"User-supplied files ({n_train}); no heptagon manifest was found."]
    gen = manifest.generator
    lines = [
        f"- Sample `{manifest.sample}`"
        + (f": {manifest.description}" if isinstance(manifest, JetManifest) else ""),
        f"- Pythia {manifest.versions.get('pythia8mc', '?')}, pp at "
        f"{gen.get('beams_ecm_gev', 14000) / 1000:g} TeV, MPI {'on' if gen.get('mpi') else 'off'}, "
        f"pTHatMin {gen.get('pthat_min_gev', '?')} GeV; FastJet "
        f"{manifest.versions.get('fastjet', '?')}",
    ]
    if isinstance(manifest, JetManifest):
        sel = manifest.selection
        lines.append(
            f"- Jets: anti-kT R = {sel.get('radius')}, pT in [{sel.get('pt_min')}, "
            f"{sel.get('pt_max')}) GeV, |eta| < {sel.get('eta_max')}"
        )
    det = "parametric CMS-like (heptagon.generate.detector; every parameter in the manifest)"
    lines += [
        f"- Detector: {det if manifest.detector else 'none (hadron level)'}",
        f"- Seed {manifest.seed}; {n_train}",
        "",
    ]
    if isinstance(manifest, ElementManifest):
        return lines
    unit = "jets" if isinstance(manifest, JetManifest) else "events"
    lines += [f"| class | {unit} | Pythia process | sigma_gen [pb] |", "|---|---|---|---|"]
    for cls, c in manifest.classes.items():
        entries = c.jets if isinstance(c, JetClass) else c.events
        lines.append(
            f"| {cls} | {entries} | {c.description} | "
            f"{c.sigma_gen_pb:.4g} +- {c.sigma_err_pb:.2g} |"
        )
    return lines


def _working_points(metrics: BinaryMetrics) -> list[str]:
    lines = [
        "| working point | signal efficiency | background rejection 1/eps_B |",
        "|---|---|---|",
    ]
    for eff, rej in metrics.rejection_at_eff.items():
        lines.append(f"| eps_S = {eff} | {eff} | {format_value(rej)} |")
    for mistag, eff_s in metrics.eff_at_mistag.items():
        lines.append(f"| eps_B = {mistag} | {format_value(eff_s)} | {1 / float(mistag):g} |")
    return lines


def _per_class(title: str, by_class: Mapping[str, BinaryMetrics]) -> list[str]:
    """One row per class of its AUC and working points."""
    header = ["class", "AUC", "1/eps_B @ eps_S=0.3", "1/eps_B @ eps_S=0.5", "eps_S @ eps_B=1%"]
    rows = [
        [
            cls,
            format_value(m.auc),
            format_value(m.rejection_at_eff.get("0.3")),
            format_value(m.rejection_at_eff.get("0.5")),
            format_value(m.eff_at_mistag.get("0.01")),
        ]
        for cls, m in by_class.items()
    ]
    return [title, "", markdown_table(header, rows), ""]


def _regression(metrics: RegressionMetrics) -> list[str]:
    lines = [
        f"- Median response predicted/true: {format_value(metrics.response_median)}",
        f"- Response IQR: {format_value(metrics.response_iqr)}",
        f"- Resolution IQR/2 / median: {format_value(metrics.resolution)}",
        "",
    ]
    for key, bins in metrics.resolution_vs.items():
        rows = [
            [f"[{lo:.4g}, {hi:.4g})", f"{med:.4g}", f"{res:.4g}"]
            for lo, hi, med, res in zip(
                bins.edges[:-1], bins.edges[1:], bins.median, bins.resolution, strict=True
            )
        ]
        lines += [
            f"Resolution in bins of {key}:",
            "",
            markdown_table([key, "median", "resolution"], rows),
            "",
        ]
    return lines


def _anomaly(metrics: AnomalyMetrics) -> list[str]:
    rows = []
    for score, by_class in metrics.scores.items():
        for cls, v in by_class.items():
            at = v.eff_at_rate
            rate = f"{at.rate_hz / 1e3:.4g} kHz" + ("" if at.reached else " (lowest reachable)")
            rows.append([score, cls, format_value(v.auc), rate, format_value(at.signal_eff)])
    return [
        f"Background: {', '.join(metrics.background)}; the model's score is `{metrics.score}`; "
        f"rates are eps_B x {metrics.reference_rate_hz / 1e6:g} MHz.",
        "",
        markdown_table(["score", "held-out class", "AUC", "rate", "eps_S at the rate"], rows),
        "",
    ]


def _performance_details(metrics: Metrics) -> list[str]:
    """The working points (or, for a regression or an anomaly detector, their numbers)."""
    if isinstance(metrics, BinaryMetrics):
        return ["## Working points", *_working_points(metrics), ""]
    if isinstance(metrics, MulticlassMetrics):
        lines = _per_class("## Working points, each class vs the rest", metrics.per_class)
        if metrics.pairwise_vs_QCD:
            lines += _per_class(
                "## Working points, each class vs QCD (p_s / (p_s + p_QCD))",
                metrics.pairwise_vs_QCD,
            )
        return lines
    if isinstance(metrics, RegressionMetrics):
        return ["## Response and resolution", *_regression(metrics)]
    return ["## Anomaly detection at a fixed rate", *_anomaly(metrics)]


def _outputs(model_info: ModelInfo) -> str:
    if model_info.task == "regression":
        return f"`{model_info.class_names[0]}`, the regressed value"
    if model_info.task == "anomaly":
        return f"`{model_info.class_names[0]}`, the anomaly score (larger: more anomalous)"
    return f"softmax probabilities of {model_info.class_names} (in that order)"


def _model_details(
    model_info: ModelInfo,
    preprocess: Mapping[str, Any],
    onnx_name: str,
    versions: Mapping[str, str],
) -> list[str]:
    """The model: architecture, outputs, inputs and the file."""
    names = model_info.input_names
    shapes = ", ".join(f"`{n}` {_shape(n, preprocess)}" for n in names)
    masked = any(n.endswith("_mask") for n in names)
    return [
        "## Model details",
        f"- Architecture: `{model_info.name}` from heptagon's model zoo, options "
        f"`{model_info.options}`; task: {model_info.task}.",
        f"- Outputs: {_outputs(model_info)}.",
        f"- Inputs (ONNX input names, float32): {shapes}"
        + ("; padded slots are zero and masked." if masked else "."),
        f"- File: `{onnx_name}` (ONNX, opset >= 17, dynamic batch and particle axes); the "
        "pre-processing below is embedded in its metadata and in `preprocess.json`.",
        f"- Made with heptagon {versions.get('heptagon', '?')}, "
        f"torch {versions.get('torch', '?')}.",
    ]


def _use(metrics: Metrics, classes: Sequence[str]) -> list[str]:
    """Intended and out-of-scope use."""
    if isinstance(metrics, BinaryMetrics):
        signal = metrics.signal or classes[0]
        others = ", ".join(c for c in classes if c != signal)
        purpose = f"Identifying {signal} against {others}"
    elif isinstance(metrics, MulticlassMetrics):
        purpose = f"Classifying entries into {', '.join(classes)}"
    elif isinstance(metrics, RegressionMetrics):
        purpose = f"Estimating {classes[0]}"
    else:
        purpose = f"Flagging entries unlike the background ({', '.join(metrics.background)})"
    return [
        "## Intended use",
        f"- {purpose} in samples made with the same object definitions and a comparable "
        "detector response.",
        "- Studies of tagging performance, reinterpretation, and teaching.",
        "",
        "## Out of scope",
        "- Use on real collision data without calibration (scale factors measured in data).",
        "- Jets outside the training pT / |eta| window or with another jet definition.",
        "",
    ]


def _how_to_run(onnx_name: str, names: Sequence[str]) -> list[str]:
    """A few lines of onnxruntime (and the heptagon command) that run the model."""
    feeds = ", ".join(f'"{n}": x["{n}"]' for n in names)
    return [
        "## How to run it",
        "```python",
        "import onnxruntime as ort",
        f'session = ort.InferenceSession("{onnx_name}")',
        "# x: dict of float32 arrays in the layout above, pre-processed as in preprocess.json",
        f"probs = session.run(None, {{{feeds}}})[0]",
        "```",
        f"or, from files: `heptagon predict {onnx_name} FILES... --out scores/`.",
        "",
    ]


def _citation(meta: BundleMetadata) -> list[str]:
    """Licence, version, identifier and how to cite."""
    return [
        "## Licence and citation",
        f"- Licence: {meta.license} (SPDX); model version {meta.model_version}.",
        f"- Persistent identifier: {meta.identifier or 'none yet (publish --identifier)'}.",
        f"- Authors: {'; '.join(meta.authors)}.",
        "- Cite with `CITATION.cff`; `codemeta.json` and `.zenodo.json` describe the bundle "
        "for software catalogues and a Zenodo upload; `metadata.json` records the software "
        "environment and the training data's manifest sha256.",
        "",
    ]


def _scale_factors(table: ScaleFactorTable) -> list[str]:
    """The data/simulation scale factors per probe-pT bin, with their largest parts."""
    wp = f" (the {table.working_point:g} working point)" if table.working_point else ""
    lines = [
        "## Data/simulation scale factors",
        f"Measured with tag-and-probe in semileptonic ttbar for the cut `{table.score} > "
        f"{table.threshold:.4g}`{wp} (`heptagon sf measure`; data: `{table.data}`): "
        f"{table.fit}. The tables with the full breakdown are in the HEPData record.",
        "",
        "| probe pT [GeV] | eff (sim) | eff (data) | SF | largest uncertainties |",
        "|---|---|---|---|---|",
    ]
    for b in table.bins:
        parts = sorted(b.breakdown.items(), key=lambda kv: -kv[1])[:3]
        lines.append(
            f"| {b.pt_low:g}-{b.pt_high:g} | {b.eff_sim:.3f} +- {b.eff_sim_stat:.3f} | "
            f"{b.eff_data:.3f} +- {b.eff_data_err:.3f} | {b.sf:.3f} +- {b.sf_err:.3f} | "
            f"{', '.join(f'{k} {v:.3f}' for k, v in parts)} |"
        )
    lines += [
        "",
        "Apply them to simulated signal jets with `heptagon predict MODEL FILES --out DIR "
        "--scale-factors scale_factors.json` (weights `sf_weight`, `sf_weight_up`, "
        "`sf_weight_down`).",
        "",
    ]
    return lines


def render_model_card(
    *,
    model_info: ModelInfo,
    preprocess: Mapping[str, Any],
    metrics: Metrics,
    manifest: Manifest | None,
    onnx_name: str,
    n_train: str,
    versions: Mapping[str, str],
    limitations: Sequence[str] = (),
    metadata: BundleMetadata | None = None,
    scale_factors: ScaleFactorTable | None = None,
) -> str:
    """Render the model card. ``model_info`` is the run's ``model.json``; ``metrics`` its
    ``eval/metrics.json`` (nominal test sample; binary, multi-class, regression or
    anomaly); ``manifest`` the training dataset's ``manifest.json`` (or None for user
    files); ``metadata`` the bundle's licence, version and identifier (None: no such
    section); ``scale_factors`` the data/simulation scale factors measured for it (None:
    no such section)."""
    classes = model_info.class_names
    about = (
        f"Signal: `{metrics.signal or classes[0]}`. " if isinstance(metrics, BinaryMetrics) else ""
    )
    parts = [
        f"# Model card: {model_info.name} ({' vs '.join(classes)})",
        "",
        *_model_details(model_info, preprocess, onnx_name, versions),
        "",
        "## Inputs and pre-processing",
        "Each variable is transformed as `x' = clip((x - center) * scale)` before padding.",
        "",
        *_inputs_table(preprocess),
        "",
        "## Training data",
        *_training_data(manifest, n_train),
        "",
        "## Performance (held-out test split)",
        f"{about}Uncertainties: bootstrap over the test set.",
        "",
        markdown_table(SUMMARY_COLUMNS, summary_rows({"test": metrics})),
        "",
        *_performance_details(metrics),
        "The tables behind these numbers (ROC curves, maps, working points, response) are in "
        "the HEPData record in `hepdata/`.",
        "",
        *(_scale_factors(scale_factors) if scale_factors else []),
        *_use(metrics, classes),
        "## Limitations",
        "- Trained on simulation with a parametric detector, not a full (Geant4) simulation; "
        "no pile-up unless the manifest says otherwise.",
        *(f"- {x}" for x in limitations),
        "",
        *(_citation(metadata) if metadata else []),
        *_how_to_run(onnx_name, model_info.input_names),
    ]
    return "\n".join(parts)


def _shape(group: str, preprocess: Mapping[str, Any]) -> str:
    entry = preprocess.get(group)
    if entry is None:
        return ""
    n = len(entry["var_names"])
    if entry["kind"] == "entry":
        return f"(batch, {n})"
    return f"(batch, {n}, n_particles)"
