"""ONNX Runtime inference speed: heptagon's export and predict path vs weaver-core's export.

    python benchmarks/inference.py [--jets 20000] [--threads 1 2] [--models particlenet part]
                                   [--batch-size 256] [--workdir DIR] [--name inference]

Writes ``--jets`` JetClass-schema jets (20-80 particles, ``benchmarks/loader.py``'s
generator and data config: 15 particle features, 128 slots), reads them once through the
data stage, then for each model (full-size ParticleNet and ParT, random weights) and each
ONNX Runtime thread count measures, in this process, on the same jets:

- heptagon: :func:`~heptagon.publish.onnx.export_onnx` (with its 1e-5 parity check),
  then :class:`~heptagon.infer.predict.Scorer` (batches bucketed by multiplicity and padded
  to their longest jet, only real particles computed) -> jets/s, padding included;
- weaver-core 0.5.3: the same architecture from ``weaver.nn.model`` (``for_inference``),
  exported through weaver's own ``--export-onnx`` route (``train.onnx``: traced on
  ``torch.ones`` inputs of shape (2, C, 128), the batch axis of size 1 taken to 2,
  TorchScript exporter, dynamic
  batch and particle axes, output ``softmax``), fed the same jets two ways: at batch 1,
  each jet at its own length (as CMSSW calls a tagger: ``clamp(n, min_length,
  max_length)`` slots, so no padding), and at batch ``--batch-size`` padded to the fixed
  128 slots as weaver's loader does (padding not timed) -> jets/s, and how many jets get
  a non-finite score; at batch 1 its scores are also compared with weaver's own PyTorch
  model on the first jets (``weaver_max_abs_diff_vs_torch``);

with the same ONNX Runtime session options (all graph optimisations, ``T`` intra-op
threads), at batch 1 and at ``--batch-size``. The ratio heptagon / weaver is the figure,
and only where every weaver score is finite and matches PyTorch (else ``ratio`` is null
and ``void`` says why: weaver's ParT export gives NaN for every jet with a padded slot,
as its attention rows of padded particles are fully masked); skipped with a message when
``weaver`` cannot be imported (``pip install weaver-core==0.5.3 --no-deps``). Results go
to ``benchmarks/results/<name>.json`` with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import write_results
from loader import CONFIG, write_dataset

from heptagon.data.config import load_config
from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import JetDataset, pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import Preprocess
from heptagon.data.transform import Table, Transform
from heptagon.infer.predict import Scorer
from heptagon.models import build_model
from heptagon.publish.onnx import export_onnx, make_session

#: weaver-core's own defaults differ (fusion on); these match heptagon's registry entries
WEAVER_OPTIONS: dict[str, dict[str, Any]] = {
    "particlenet": {
        "conv_params": [(16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256))],
        "fc_params": [(256, 0.1)],
        "use_fusion": False,
    },
    "part": {"pair_input_dim": 4},
}


def read_all(files: list[Path], config: Any, preprocess: Preprocess) -> Table:
    """Every jet of ``files`` as one standardised table, in file order."""
    transform = Transform(config, preprocess, with_labels=False)
    units = []
    for path in files:
        with open_reader(path) as reader:
            units.extend(reader.units(10_000))
    return Table.concatenate(list(iter_tables(units, transform, 10_000, files_at_once=1)))


def heptagon_export(name: str, files: list[Path], config: Any, pre: Preprocess, out: Path) -> Path:
    torch.manual_seed(0)
    dims = {g: len(p.vars) for g, p in pre.inputs.items()} | {"pf_mask": 1}
    model = build_model(name, dims, 2)
    check = JetDataset(files, config, pre, split=None, shuffle=False, buffer_size=512)
    path = out / f"{name}.onnx"
    export_onnx(
        model,
        model.input_names,
        {g: dims[g] for g in model.input_names},
        pre,
        ["QCD", "Tbqq"],
        path,
        data_config=config,
        model_name=name,
        check_inputs=[b.tensors() for _, b in zip(range(2), check, strict=False)],
    )
    return path


def time_heptagon(path: Path, table: Table, threads: int, batch_size: int) -> dict[str, Any]:
    """heptagon's predict path -> jets/s and how many jets get a non-finite score."""
    scorer = Scorer(path, threads=threads, batch_size=batch_size)
    scorer.score_table(table.take(np.arange(min(len(table), batch_size))))  # warm-up
    start = time.perf_counter()
    scores = scorer.score_table(table)
    return {
        "heptagon_jets_per_s": len(table) / (time.perf_counter() - start),
        "heptagon_nonfinite_jets": int((~np.isfinite(scores)).any(axis=1).sum()),
    }


#: each weaver export's PyTorch model, for the correctness check
WEAVER_MODELS: dict[Path, Any] = {}


def weaver_export(
    name: str, feed: dict[str, np.ndarray], out: Path
) -> tuple[Path, list[str]] | str:
    """weaver-core's model exported as its ``--export-onnx`` does; or why it cannot run."""
    try:
        from weaver.nn.model.ParticleNet import ParticleNet
        from weaver.nn.model.ParticleTransformer import ParticleTransformer
    except ImportError as err:
        return f"weaver-core not importable ({err}); pip install weaver-core==0.5.3 --no-deps"
    torch.manual_seed(0)
    n_features = feed["pf_features"].shape[1]
    if name == "particlenet":
        model = ParticleNet(n_features, 2, for_inference=True, **WEAVER_OPTIONS[name])
        names = ["pf_points", "pf_features", "pf_mask"]
    else:
        model = ParticleTransformer(n_features, 2, for_inference=True, **WEAVER_OPTIONS[name])
        names = ["pf_features", "pf_vectors", "pf_mask"]
    model.eval()
    # weaver's train.onnx: torch.ones inputs of the network's input_shapes (1, C, length),
    # a dynamic axis of size 1 (the batch) traced at 2
    args = tuple(torch.ones((2, *feed[n].shape[1:])) for n in names)
    axes = {n: {0: "N", 2: "n_" + n.split("_")[0]} for n in names} | {"softmax": {0: "N"}}
    path = out / f"weaver_{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weaver's tracing and the exporter's deprecations
        torch.onnx.export(
            model, args, path, input_names=names, output_names=["softmax"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip
    WEAVER_MODELS[path] = model
    return path, names


def time_weaver(
    path: Path, names: list[str], feed: dict[str, np.ndarray], threads: int, batch_size: int
) -> dict[str, Any]:
    """weaver's export at ``batch_size`` (1: each jet at its own length, as CMSSW; else the
    fixed 128 slots) -> jets/s, non-finite jets and (batch 1) max |ONNX - PyTorch|."""
    session = make_session(str(path), threads)
    n = len(feed[names[0]])
    counts = feed["pf_mask"].sum(axis=(1, 2)).astype(int)
    if batch_size == 1:
        batches = [{k: feed[k][i : i + 1, :, : counts[i]] for k in names} for i in range(n)]
    else:
        batches = [{k: feed[k][i : i + batch_size] for k in names} for i in range(0, n, batch_size)]
    session.run(None, batches[0])  # warm-up
    outs = []
    start = time.perf_counter()
    for batch in batches:
        outs.append(session.run(None, batch)[0])
    rate = n / (time.perf_counter() - start)
    scores = np.concatenate(outs)
    row: dict[str, Any] = {
        "weaver_jets_per_s": rate,
        "weaver_nonfinite_jets": int((~np.isfinite(scores)).any(axis=1).sum()),
    }
    if batch_size == 1:
        with torch.no_grad():
            want = [
                WEAVER_MODELS[path](*(torch.from_numpy(b[k]) for k in names)).numpy()
                for b in batches[:CHECKED_JETS]
            ]
        row["weaver_max_abs_diff_vs_torch"] = float(
            np.abs(np.concatenate(want) - scores[:CHECKED_JETS]).max()
        )
    return row


#: jets whose batch-1 weaver scores are compared with weaver's PyTorch model
CHECKED_JETS = 64
#: the largest |ONNX Runtime - PyTorch| a correct export gives (heptagon's parity bound)
TOLERANCE = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=20_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["particlenet", "part"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="inference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        files = write_dataset(root, args.jets, chunk=max(args.jets // 4, 1))
        config = load_config(CONFIG)
        pre = Preprocess.from_config(config)
        table = read_all(expand_files(files), config, pre)
        feed = {k: v.numpy() for k, v in pad_table(table, pre, fixed_length=True).tensors().items()}
        figures: dict[str, Any] = {
            "jets": len(table),
            "mean_particles": float(table.multiplicity.mean()),
            "slots": int(feed["pf_mask"].shape[2]),
            "batch_sizes": [1, args.batch_size],
        }
        for name in args.models:
            ours = heptagon_export(name, files, config, pre, root)
            theirs = weaver_export(name, feed, root)
            for threads in args.threads:
                for batch in (1, args.batch_size):
                    row = time_heptagon(ours, table, threads, batch)
                    if isinstance(theirs, str):
                        row["weaver_skipped"] = theirs
                    else:
                        row |= time_weaver(*theirs, feed, threads, batch)
                        void = []
                        if row["heptagon_nonfinite_jets"]:
                            void.append(f"{row['heptagon_nonfinite_jets']} heptagon NaN jets")
                        if row["weaver_nonfinite_jets"]:
                            void.append(f"{row['weaver_nonfinite_jets']} non-finite weaver jets")
                        if row.get("weaver_max_abs_diff_vs_torch", 0.0) > TOLERANCE:
                            void.append("weaver's ONNX differs from its PyTorch model")
                        rate = row["weaver_jets_per_s"]
                        row["ratio"] = None if void else row["heptagon_jets_per_s"] / rate
                        if void:
                            row["void"] = "; ".join(void)
                    figures[f"{name}_threads{threads}_batch{batch}"] = row
                    print(name, f"{threads} thread(s), batch {batch}:", {
                        k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()
                    })  # fmt: skip
        print("wrote", write_results(args.name, figures))


if __name__ == "__main__":
    main()
