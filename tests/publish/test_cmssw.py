"""The ``preprocess.json`` beside ``model.onnx`` is enough to run the model as CMSSW does.

:func:`cmssw_scores` re-implements, from that file alone, what CMSSW's
``BoostedJetONNXJetTagsProducer`` does per jet (``RecoBTag/ONNXRuntime``, with the shared
``ParticleNetConstructor`` and ``center_norm_pad`` of ``RecoBTag/FeatureTools``'s
``deep_helpers.cc``): every name of ``input_names`` is an input whose length is
``var_length`` if the entry has one, else ``clamp(n, min_length, max_length)`` for a jet of
``n`` particles; each variable's raw values are replaced by ``replace_inf_value`` where not
finite (or beyond +-1e32), centred and scaled, ``(x - median) * norm_factor``, clamped to
``[lower_bound, upper_bound]``, cut to the length or padded with ``pad``; the jet is run
alone (batch 1) through ONNX Runtime and the first output is its scores. The raw values
(CMSSW's tag-info features) come from heptagon's data stage without standardisation.

The scores must equal ``heptagon predict``'s to 1e-5 on generated jets, for both CMSSW
length modes (the dynamic ``min_length`` / ``max_length`` heptagon writes, and a fixed
``var_length`` as weaver writes) and for both of heptagon's pad modes: CMSSW always pads
with the constant ``pad``; a ``wrap`` model (whose padded slots repeat the jet's particles
in heptagon) still agrees because the padded slots are masked out (``pf_mask`` is 0 there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
import torch

from heptagon.artifacts.schemas import json_schema
from heptagon.data import JetDataset, compute_preprocess, load_config
from heptagon.data.io import open_reader
from heptagon.data.jagged import Jagged
from heptagon.data.transform import Table, Transform
from heptagon.infer.predict import predict
from heptagon.models import build_model
from heptagon.publish.onnx import export_onnx

LENGTH = 48
SHARD = "Tbqq_0000.parquet"
#: jets run one by one, as CMSSW does
JETS = 80


def data_config(pad_mode: str) -> dict[str, Any]:
    auto = {"center": "auto", "scale": "auto", "clip": [-5.0, 5.0]}
    return {
        "inputs": {
            "pf_features": {
                "length": LENGTH,
                "pad_mode": pad_mode,
                "vars": [
                    {"name": "part_pt_log", **auto},
                    {"name": "part_logerel", **auto},
                    {"name": "part_deta", "scale": 5.0},
                    "part_dphi",
                    "part_charge",
                ],
            },
            "pf_vectors": {
                "length": LENGTH,
                "pad_mode": pad_mode,
                "vars": ["part_px", "part_py", "part_pz", "part_energy"],
            },
        },
        "labels": ["label_QCD", "label_Tbqq"],
    }


def raw_features(path: Path, config: Any) -> Table:
    """Every entry's unstandardised variables (what CMSSW's tag-info producer computes)."""
    transform = Transform(config, None, with_labels=False)
    with open_reader(path) as reader:
        branches = transform.branches(reader.branches)
        units = reader.units(10_000)
        return Table.concatenate(
            [transform(chunk) for unit in units for chunk in reader.read(unit, branches, 10_000)]
        )


def center_norm_pad(x: np.ndarray, info: dict[str, float], length: int) -> np.ndarray:
    """One variable of one jet, as CMSSW's ``center_norm_pad`` makes it."""
    bad = ~np.isfinite(x) | (np.abs(x) > 1e32)
    x = np.where(bad, info["replace_inf_value"], x)[:length]
    out = np.full(length, info["pad"], dtype=np.float32)
    y = (x - info["median"]) * info["norm_factor"]
    out[: len(x)] = np.clip(y, info["lower_bound"], info["upper_bound"])
    return out


def cmssw_scores(model: Path, prep: dict[str, Any], raw: Table) -> np.ndarray:
    """Each jet scored alone from ``preprocess.json`` and the raw features (see the module
    docstring)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    groups = {g: v for g, v in raw.inputs.items() if isinstance(v, Jagged)}
    counts = next(iter(groups.values())).counts
    scores = []
    for jet in range(min(len(raw), JETS)):
        feed = {}
        for name in prep["input_names"]:
            entry = prep[name]
            low, high = (
                (entry["var_length"],) * 2
                if "var_length" in entry
                else (entry["min_length"], entry["max_length"])
            )
            length = int(np.clip(counts[jet], low, high))
            rows = []
            for i, var in enumerate(entry["var_names"]):
                if entry["kind"] == "mask":  # the tag info's per-particle 1
                    x = np.ones(counts[jet], dtype=np.float32)
                else:
                    values = groups[name]
                    start = values.starts[jet]
                    x = values.values[start : start + values.counts[jet], i]
                rows.append(center_norm_pad(x, entry["var_infos"][var], length))
            feed[name] = np.stack(rows)[None].astype(np.float32)
        scores.append(session.run(None, feed)[0][0])
    return np.array(scores)


@pytest.mark.parametrize("pad_mode", ["constant", "wrap"])
def test_cmssw_reimplementation_reproduces_predict(
    tmp_path: Path, top_qcd_sample: Path, pad_mode: str
) -> None:
    config = load_config(data_config(pad_mode))
    pre = compute_preprocess(top_qcd_sample, config)
    dims = {"pf_features": 5, "pf_vectors": 4, "pf_mask": 1}
    torch.manual_seed(5)
    small = {"embed_dims": (16, 16), "pair_embed_dims": (8, 8), "num_heads": 2, "num_layers": 2}
    model = build_model("part-lite", dims, 2, **small).eval()
    batches = JetDataset(top_qcd_sample, config, pre, split="test", batch_size=128)
    export_onnx(
        model, model.input_names, dims, pre, ["QCD", "Tbqq"], tmp_path / "model.onnx",
        data_config=config, model_name="part-lite", output_name="softmax",
        check_inputs=[b.tensors() for b in batches],
    )  # fmt: skip
    source = top_qcd_sample / "shards" / SHARD
    (out,) = predict(tmp_path / "model.onnx", source, tmp_path / "out", progress=False)
    table = pq.read_table(out)
    want = np.stack([table["score_QCD"].to_numpy(), table["score_Tbqq"].to_numpy()], axis=1)

    prep = json.loads((tmp_path / "preprocess.json").read_text())
    jsonschema.validate(prep, json_schema("preprocess"))  # docs/schemas describes the file
    assert prep["input_names"] == ["pf_features", "pf_vectors", "pf_mask"]
    assert prep["output_names"] == ["QCD", "Tbqq"]
    assert prep["pf_features"]["pad_mode"] == pad_mode  # heptagon's key: CMSSW ignores it
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["softmax"]
    raw = raw_features(source, config)
    assert len(raw) == len(want)
    counts = raw.inputs["pf_features"].counts  # the data stage keeps a jet's first 48
    assert (counts[:JETS] < LENGTH).any()  # padded jets
    assert (counts[:JETS] == LENGTH).any()  # and cut ones
    dynamic = cmssw_scores(tmp_path / "model.onnx", prep, raw)
    np.testing.assert_allclose(dynamic, want[:JETS], atol=1e-5, rtol=0)
    for name in prep["input_names"]:  # weaver's fixed var_length: every jet padded to 48
        prep[name]["var_length"] = prep[name]["max_length"]
    fixed = cmssw_scores(tmp_path / "model.onnx", prep, raw)
    np.testing.assert_allclose(fixed, want[:JETS], atol=1e-5, rtol=0)
    assert np.ptp(want[:, 1]) > 1e-3  # the scores depend on the jet
