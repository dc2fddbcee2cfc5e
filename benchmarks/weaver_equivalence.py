"""heptagon's tensors against weaver-core 0.5.3's, element for element.

For each weaver data config (default: the ones in ``tests/data/weaver/``, written after the
public weaver-core and particle_transformer configs) and each file format (ROOT, Parquet)
of the same small JetClass-layout files, this reads the files with weaver-core's
``SimpleIterDataset`` (the test-time loader: ``test_time_selection``, observers, no
shuffling) and with heptagon (``Transform`` + ``pad_table`` at the full ``length``), aligns
the entries by their ``event`` index, and records the largest absolute difference of
every input tensor, the labels and, with flat reweighting, the per-entry weights (weaver's
``_build_weights`` on the training selection). Where weaver computes something (``method:
auto`` standardisation, reweighting tables) it writes an ``*.auto.yaml``, and heptagon
reads that file unchanged. Needs weaver-core (``pip install weaver-core==0.5.3``).

    python benchmarks/weaver_equivalence.py                  # -> results/weaver_equivalence.json
    python benchmarks/weaver_equivalence.py --jets 2000 --config my_weaver_config.yaml

``compare`` is the reusable part (tests/data/test_weaver_equivalence.py runs it on tiny
files).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from heptagon.data.config import DataConfig, load_config
from heptagon.data.io import open_reader
from heptagon.data.loader import pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import Preprocess, compute_preprocess
from heptagon.data.split import Split
from heptagon.data.transform import Table, Transform

CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "weaver"
FORMATS = ("root", "parquet")
#: the entry index every config observes, to align weaver's entries with heptagon's
INDEX = "event"


def make_jets(n: int, label: str, seed: int, first_event: int) -> dict[str, Any]:
    """``n`` jets of class ``label`` ('QCD' or 'Tbqq') in the JetClass branch layout (plus
    the top-landscape ``label`` branch and a unique ``event`` index)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2 if label == "QCD" else 10, 60, size=n)
    total = int(counts.sum())
    jet_pt = rng.uniform(500, 1000, n)
    jet_eta = rng.uniform(-2, 2, n)
    jet_phi = rng.uniform(-np.pi, np.pi, n)
    frac = ak.unflatten(rng.exponential(1.0, total), counts)
    pt = ak.flatten(frac / ak.sum(frac, axis=1) * jet_pt).to_numpy()
    deta, dphi = rng.normal(0, 0.2, total), rng.normal(0, 0.2, total)
    eta, phi = np.repeat(jet_eta, counts) + deta, np.repeat(jet_phi, counts) + dphi
    kind = rng.integers(0, 5, total)
    flat = {
        "part_px": pt * np.cos(phi),
        "part_py": pt * np.sin(phi),
        "part_pz": pt * np.sinh(eta),
        "part_energy": pt * np.cosh(eta),
        "part_deta": deta,
        "part_dphi": dphi,
        "part_charge": np.where(kind == 0, rng.choice([-1.0, 1.0], total), 0.0),
        "part_isChargedHadron": (kind == 0) * 1.0,
        "part_isNeutralHadron": (kind == 1) * 1.0,
        "part_isPhoton": (kind == 2) * 1.0,
        "part_isElectron": (kind == 3) * 1.0,
        "part_isMuon": (kind == 4) * 1.0,
        "part_d0val": rng.normal(0, 0.05, total),
        "part_d0err": rng.uniform(0.01, 0.05, total),
        "part_dzval": rng.normal(0, 0.05, total),
        "part_dzerr": rng.uniform(0.01, 0.05, total),
    }
    jets: dict[str, Any] = {k: ak.unflatten(v.astype(np.float32), counts) for k, v in flat.items()}
    scalars = {
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
        "jet_phi": jet_phi,
        "jet_energy": ak.to_numpy(ak.sum(jets["part_energy"], axis=1)),
        "jet_nparticles": counts,
        "jet_sdmass": rng.uniform(0, 250, n) if label == "QCD" else rng.normal(172, 15, n),
        "jet_tau1": rng.uniform(0.2, 1, n),
        "jet_tau2": rng.uniform(0.1, 0.6, n),
        "jet_tau3": rng.uniform(0.05, 0.4, n),
        "jet_tau4": rng.uniform(0.02, 0.3, n),
    }
    jets |= {k: np.asarray(v, dtype=np.float32) for k, v in scalars.items()}
    for cls in ("QCD", "Tbqq"):
        jets[f"label_{cls}"] = np.full(n, cls == label, dtype=np.int32)
    jets["label"] = np.full(n, label == "Tbqq", dtype=np.int32)
    jets[INDEX] = np.arange(first_event, first_event + n, dtype=np.int64)
    return jets


def write_files(directory: Path, n_jets: int, fmt: str) -> list[Path]:
    """A QCD and a Tbqq file (as JetClass: one class per file) of ``n_jets`` each."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(("QCD", "Tbqq")):
        jets = make_jets(n_jets, label, seed=i, first_event=i * n_jets)
        path = directory / f"{label}_000.{fmt}"
        if fmt == "parquet":
            ak.to_parquet(ak.zip(jets, depth_limit=1), path, row_group_size=max(1, n_jets // 3))
        else:
            with uproot.recreate(path) as f:
                f.mktree(
                    "tree",
                    {
                        k: "var * float32" if isinstance(v, ak.Array) else v.dtype
                        for k, v in jets.items()
                    },
                )
                f["tree"].extend(jets)
        paths.append(path)
    return paths


@contextmanager
def _quiet_weaver() -> Iterator[None]:
    """weaver's INFO logging and its numpy warnings (a division by an empty bin) off, and
    its 10 s pauses after a warning skipped."""
    from weaver.utils.data import preprocess as weaver_preprocess

    logger = logging.getLogger("weaver")
    level = logger.level
    sleep = weaver_preprocess.time.sleep
    logger.setLevel(logging.WARNING)
    weaver_preprocess.time.sleep = lambda seconds: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        weaver_preprocess.time.sleep = sleep
        logger.setLevel(level)


def weaver_config(config: Path, files: Sequence[Path]) -> Path:
    """Let weaver prepare ``config`` as its training loader does (auto standardisation,
    reweighting tables) and return the config it then reads: its ``*.auto.yaml`` where it
    wrote one, else ``config``."""
    from weaver.utils.data.config import _md5
    from weaver.utils.dataset import SimpleIterDataset

    auto = Path(str(config).replace(".yaml", f".{_md5(str(config))}.auto.yaml"))
    with _quiet_weaver():
        SimpleIterDataset({"_": [str(f) for f in files]}, str(config), for_training=True)
    return auto if auto.exists() else config


def weaver_tensors(config: Path, files: Sequence[Path]) -> dict[str, np.ndarray]:
    """Every entry of weaver's test-time loader: inputs, labels and observers by name."""
    from weaver.utils.dataset import SimpleIterDataset

    with _quiet_weaver():
        dataset = SimpleIterDataset(
            {"_": [str(f) for f in files]},
            str(config),
            for_training=False,
            fetch_by_files=True,
            fetch_step=len(files),
            async_load=False,
        )
        rows = list(dataset)
    out: dict[str, list[Any]] = {}
    for x, y, z in rows:
        for key, value in (*x.items(), *y.items(), *z.items()):
            out.setdefault(key, []).append(value)
    return {k: np.stack([np.asarray(v) for v in values]) for k, values in out.items()}


def weaver_weights(config: Path, files: Sequence[Path]) -> dict[str, np.ndarray]:
    """weaver's per-entry reweighting weights (``_build_weights``) of the training
    selection, with the entry index."""
    from weaver.utils.data.config import DataConfig as WeaverConfig
    from weaver.utils.data.fileio import _read_files
    from weaver.utils.data.preprocess import (
        _apply_selection,
        _build_new_variables,
        _build_weights,
    )

    with _quiet_weaver():
        dc = WeaverConfig.load(str(config), load_observers=False)
        branches = set(dc.train_load_branches) | {INDEX}
        table = _read_files([str(f) for f in files], branches, treename=dc.treename)
        table = _apply_selection(table, dc.selection, funcs=dc.var_funcs)
        table = _build_new_variables(table, dc.train_var_funcs)
        weight = _build_weights(table, dc)
    return {INDEX: ak.to_numpy(table[INDEX]), "weight": weight}


def _table(config: DataConfig, files: Sequence[Path], transform: Transform) -> Table:
    units = []
    for path in files:
        with open_reader(path, config.treename) as reader:
            units.extend(reader.units(10_000))
    tables = list(iter_tables(units, transform, 10_000, files_at_once=1))
    transform.check_selected()
    return Table.concatenate(tables)


def heptagon_tensors(
    config: DataConfig, files: Sequence[Path], preprocess: Preprocess | None = None
) -> dict[str, np.ndarray]:
    """heptagon's tensors of every entry (test time: ``test_time_selection``), padded to
    each group's ``length``, under weaver's names (the groups, ``_label_`` or the
    regression targets, observers), plus the masks heptagon makes itself (``mask:<group>``).
    ``preprocess``: the standardisation (default: the config's own numbers)."""
    preprocess = preprocess or Preprocess.from_config(config)
    table = _table(config, files, Transform(config, preprocess))
    batch = pad_table(table, preprocess, fixed_length=True)
    out = {g: t.numpy() for g, t in batch.inputs.items()}
    out |= {f"mask:{g}": t.numpy() for g, t in batch.masks.items()}
    assert config.labels is not None  # every compared config has labels
    assert batch.label is not None
    label = batch.label.numpy()
    if config.labels.type == "simple":
        out["_label_"] = label
    else:
        out |= {name: label[:, i] for i, name in enumerate(config.labels.names)}
    return out | batch.observers


def heptagon_weights(config: DataConfig, files: Sequence[Path]) -> dict[str, np.ndarray]:
    """heptagon's per-entry weights of the training selection (every entry in training)."""
    preprocess = Preprocess.from_config(config)
    transform = Transform(config, preprocess, split=Split((1.0, 0.0, 0.0)), split_name="train")
    table = _table(config, files, transform)
    return {INDEX: table.observers[INDEX], "weight": table.weight}


def _max_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    if ours.shape != theirs.shape:
        return float("inf")
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))


def _aligned(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(values[INDEX], kind="stable")
    return {k: v[order] for k, v in values.items()}


def compare(config: Path, files: Sequence[Path], workdir: Path) -> dict[str, Any]:
    """Max abs difference per tensor between heptagon and weaver on ``files`` for the
    weaver data config ``config`` (copied into ``workdir``, where weaver writes its
    ``*.auto.yaml``): every input group, the labels (``_label_`` or the regression
    targets), the observers or monitor_variables, heptagon's own masks (``mask:<group>``,
    of the groups as long as it) against weaver's ``pf_mask`` group, and the reweighting
    ``weight``; ``entries`` counts both sides' entries."""
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / config.name
    shutil.copyfile(config, local)
    used = weaver_config(local, files)
    ours_config = load_config(used)  # weaver's file, unchanged
    theirs = _aligned(weaver_tensors(used, files))
    ours = _aligned(heptagon_tensors(ours_config, files))
    same = np.array_equal(ours[INDEX], theirs[INDEX])
    labels = ours_config.labels
    names = ["_label_"] if labels is None or labels.type == "simple" else labels.names
    keys = [*ours_config.inputs, *names]
    keys += [k for k in ours_config.entry_observers if k != INDEX]  # observers / monitored
    if "pf_mask" in ours_config.inputs:  # weaver's mask group: compare heptagon's masks
        length = ours_config.inputs["pf_mask"].length
        keys += [f"mask:{g}" for g, s in ours_config.inputs.items() if s.length == length]
    diffs: dict[str, float] = {}
    for key in keys:
        value = theirs["pf_mask" if key.startswith("mask:") else key]
        diffs[key] = _max_diff(ours[key], value) if same else float("inf")
    result: dict[str, Any] = {
        "config": config.name,
        "weaver_config": used.name,
        "entries": {"heptagon": len(ours[INDEX]), "weaver": len(theirs[INDEX])},
        "max_abs_diff": diffs,
    }
    weights = ours_config.weights
    if weights is not None and not weights.use_precomputed_weights:
        w_theirs = _aligned(weaver_weights(used, files))
        w_ours = _aligned(heptagon_weights(ours_config, files))
        aligned = np.array_equal(w_ours[INDEX], w_theirs[INDEX])
        diffs["weight"] = (
            _max_diff(w_ours["weight"], w_theirs["weight"]) if aligned else float("inf")
        )
        result["entries"]["weighted"] = len(w_ours[INDEX])
        result["entries"]["zero_weight"] = int(np.sum(w_ours["weight"] == 0))
    return result


def auto_standardisation(config: Path, files: Sequence[Path], workdir: Path) -> dict[str, Any]:
    """heptagon's own ``auto`` (``compute_preprocess`` on ``files`` as explicit training
    files, i.e. no hash split) against weaver's ``AutoStandardizer`` (its ``*.auto.yaml``):
    ``params``, per ``auto`` variable, ``[center, scale]`` of each; ``max_rel_diff`` the
    largest relative difference of them; ``max_abs_diff`` per tensor, heptagon's tensors
    with its own numbers against weaver's test-time tensors."""
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / config.name
    shutil.copyfile(config, local)
    used = weaver_config(local, files)
    theirs = load_config(used)
    spec = load_config(config)
    ours = compute_preprocess(files, spec, split=Split((1.0, 0.0, 0.0)))
    params: dict[str, Any] = {}
    worst = 0.0
    for group, group_spec in spec.inputs.items():
        resolved = {v.name: v for v in theirs.inputs[group].vars}
        for v, p in zip(group_spec.vars, ours.inputs[group].vars, strict=True):
            if v.is_auto:
                w = resolved[v.name]
                ours_cs, theirs_cs = (p.center, p.scale), (w.center or 0.0, w.scale)
                for a, b in zip(ours_cs, theirs_cs, strict=True):
                    worst = max(worst, abs(a - b) / max(abs(b), 1e-30))
                params[v.name] = {"heptagon": list(ours_cs), "weaver": list(theirs_cs)}
    mine = _aligned(heptagon_tensors(spec, files, ours))
    other = _aligned(weaver_tensors(used, files))
    same = np.array_equal(mine[INDEX], other[INDEX])
    diffs = {g: _max_diff(mine[g], other[g]) if same else float("inf") for g in spec.inputs}
    return {"params": params, "max_rel_diff": worst, "max_abs_diff": diffs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jets", type=int, default=500, help="jets per class and file")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        help="weaver data configs (default: all in tests/data/weaver)",
    )
    args = parser.parse_args()
    configs = args.config or sorted(CONFIGS.glob("*.yaml"))
    table: dict[str, dict[str, Any]] = {}
    standardisation: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            files = write_files(Path(tmp) / fmt / "files", args.jets, fmt)
            for config in configs:
                result = compare(config, files, Path(tmp) / fmt / config.stem)
                table.setdefault(config.name, {})[fmt] = result
                worst = max(result["max_abs_diff"].values())
                print(f"{config.name:28s} {fmt:8s} entries {result['entries']} worst {worst:.3g}")
                if any(v.is_auto for g in load_config(config).inputs.values() for v in g.vars):
                    auto = auto_standardisation(
                        config, files, Path(tmp) / fmt / "auto" / config.stem
                    )
                    standardisation.setdefault(config.name, {})[fmt] = auto
                    tensors = max(auto["max_abs_diff"].values())
                    print(
                        f"{config.name:28s} {fmt:8s} heptagon's own auto: params rel diff "
                        f"{auto['max_rel_diff']:.3g}, tensors {tensors:.3g}"
                    )
    import weaver
    from _common import write_results

    path = write_results(
        "weaver_equivalence",
        {
            "weaver_core": getattr(weaver, "__version__", "0.5.3"),
            "jets_per_file": args.jets,
            "files": "one QCD and one Tbqq file per format (JetClass branch layout)",
            "table": table,
            "auto_standardisation": standardisation,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
