"""``MODEL_CARD.md``: what a physicist outside the collaboration needs to reuse a model.

Model details, inputs with their pre-processing, the training data and its generator
settings (from the dataset manifest), the performance table with working points, intended
use, out-of-scope uses, limitations, and how to run it in a few lines of onnxruntime.
Everything is rendered from the run's artifacts (the typed models of
:mod:`heptagon.artifacts`), so re-running gives the same text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heptagon.artifacts.manifest import ElementManifest, JetClass, JetManifest, Manifest
from heptagon.artifacts.metrics import BinaryMetrics
from heptagon.artifacts.run import ModelInfo
from heptagon.evaluate.report import SUMMARY_COLUMNS, format_value, markdown_table, summary_rows

__all__ = ["render_model_card"]


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


def _model_details(
    model_info: ModelInfo,
    preprocess: Mapping[str, Any],
    onnx_name: str,
    versions: Mapping[str, str],
) -> list[str]:
    """The model: architecture, outputs, inputs and the file."""
    classes = model_info.class_names
    names = model_info.input_names
    shapes = ", ".join(f"`{n}` {_shape(n, preprocess)}" for n in names)
    masked = any(n.endswith("_mask") for n in names)
    return [
        "## Model details",
        f"- Architecture: `{model_info.name}` from heptagon's model zoo, options "
        f"`{model_info.options}`; task: {model_info.task}.",
        f"- Outputs: `probs`, softmax probabilities of {classes} (in that order).",
        f"- Inputs (ONNX input names, float32): {shapes}"
        + ("; padded slots are zero and masked." if masked else "."),
        f"- File: `{onnx_name}` (ONNX, opset >= 17, dynamic batch and particle axes); the "
        "pre-processing below is embedded in its metadata and in `preprocess.json`.",
        f"- Made with heptagon {versions.get('heptagon', '?')}, "
        f"torch {versions.get('torch', '?')}.",
    ]


def _use(signal: str, classes: Sequence[str]) -> list[str]:
    """Intended and out-of-scope use."""
    return [
        "## Intended use",
        f"- Identifying {signal} jets against {', '.join(c for c in classes if c != signal)} "
        "in samples made with the same jet definition and a comparable detector response.",
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


def render_model_card(
    *,
    model_info: ModelInfo,
    preprocess: Mapping[str, Any],
    metrics: BinaryMetrics,
    manifest: Manifest | None,
    onnx_name: str,
    n_train: str,
    versions: Mapping[str, str],
    limitations: Sequence[str] = (),
) -> str:
    """Render the model card. ``model_info`` is the run's ``model.json``; ``metrics`` its
    ``eval/metrics.json`` (nominal test sample); ``manifest`` the training dataset's
    ``manifest.json`` (or None for user files)."""
    classes = model_info.class_names
    signal = metrics.signal or classes[0]
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
        f"Signal: `{signal}`. Uncertainties: bootstrap over the test set.",
        "",
        markdown_table(SUMMARY_COLUMNS, summary_rows({"test": metrics})),
        "",
        "## Working points",
        *_working_points(metrics),
        "",
        "The ROC curve, efficiency and mistag maps vs jet pT and eta, and the working points "
        "are in the HEPData record in `hepdata/`.",
        "",
        *_use(signal, classes),
        "## Limitations",
        "- Trained on simulation with a parametric detector, not a full (Geant4) simulation; "
        "no pile-up unless the manifest says otherwise.",
        *(f"- {x}" for x in limitations),
        "",
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
