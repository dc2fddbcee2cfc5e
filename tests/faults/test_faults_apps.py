"""Fault injection into the DQM and MLPF apps (issue 15, items 2 and 7).

A model directory or a sample from someone else is data, never code: a DQM model that
holds a pickle with a payload, or an MLPF ``model.pt`` that does, is refused with one
line naming the file, and the payload never runs. Corrupt models, histograms and element
shards, a missing input and an unwritable output each end in one line naming the file
(exit 2). The headline cases run ``heptagon`` in a subprocess; the many variants of a
corrupt file run :func:`heptagon.cli.main` in-process (the same contract, much cheaper).
The inputs are tiny and built once per module through the Python API.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from faults_helpers import assert_user_error, heptagon, no_temp_files, run_main

from heptagon.apps.dqm.certify import SCHEMA_VERSION, TrainConfig, fit, load_model, score
from heptagon.apps.dqm.observables import histogram_shapes
from heptagon.apps.dqm.simulate import DQMData, load_data
from heptagon.apps.mlpf.training import MLPFTrainOptions, train_mlpf
from heptagon.errors import DataError
from heptagon.generate.elements import ElementOptions, generate_elements


class Payload:
    """Unpickling this touches ``marker``: proof that a file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- DQM


def _dqm_data(runs: int = 8, n_ls: int = 3, seed: int = 0) -> DQMData:
    """Poisson histograms of ``runs`` runs, the last two labelled bad (no generator
    needed: the shapes of today's histograms, flat contents)."""
    rng = np.random.default_rng(seed)
    n = runs * n_ls
    counts = {h: rng.poisson(5.0, (n, *s)).astype(np.int32) for h, s in histogram_shapes().items()}
    ls = {
        "run": np.repeat(np.arange(1, runs + 1), n_ls),
        "ls": np.tile(np.arange(n_ls), runs),
        "lumi": np.full(n, 100.0),
        "n_events": rng.poisson(100.0, n),
        "bad": np.zeros(n, dtype=bool),
        "fault": np.full(n, ""),
        "size": np.zeros(n),
    }
    records = [
        {"run": r, "n_ls": n_ls, "peak_lumi": 1.0, "fault": None, "bad": r > runs - 2}
        for r in range(1, runs + 1)
    ]
    ls["bad"] = ls["run"] > runs - 2
    return DQMData(counts, ls, records)


#: every kind of fitted part: references, PCA, a network, classifiers
DQM_CFG = TrainConfig(
    methods=("chi2", "pca", "autoencoder"),
    ae_epochs=1,
    ae_hidden=(8,),
    ae_latent=2,
    pca_components=2,
    n_features=3,
    rank_epochs=5,
)


@pytest.fixture(scope="module")
def dqm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny data dir, a model fitted on it (``fitted``) and saved (``model``)."""
    root = tmp_path_factory.mktemp("dqm")
    data = _dqm_data()
    data.save(root / "data")
    fitted = fit(data, DQM_CFG)
    fitted.save(root / "model")
    return {"data": root / "data", "model": root / "model", "fitted": fitted}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_dqm_model_with_a_pickle_payload_runs_nothing(dqm: dict[str, Any], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # the old format: model.pkl alone, with a payload
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    res = heptagon(
        "dqm", "certify", str(dqm["data"]), "--model", str(old), "--out", str(tmp_path / "c1")
    )
    assert_user_error(res, str(old / "model.json"), "model.pkl", "never read", "dqm train")
    # the new format, its arrays replaced by an object array that unpickles a payload
    evil = _copy(dqm["model"], tmp_path / "evil")
    np.savez(
        evil / "model.npz", weights=np.array([Payload(marker)], dtype=object), allow_pickle=True
    )
    (evil / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    res = heptagon(
        "dqm", "certify", str(dqm["data"]), "--model", str(evil), "--out", str(tmp_path / "c2")
    )
    assert_user_error(res, str(evil / "model.npz"))
    assert not marker.exists()
    assert not (tmp_path / "c1").exists()
    assert not (tmp_path / "c2").exists()


def test_dqm_model_of_a_newer_schema(dqm: dict[str, Any], tmp_path: Path) -> None:
    model = _copy(dqm["model"], tmp_path / "model")
    meta = json.loads((model / "model.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (model / "model.json").write_text(json.dumps(meta))
    res = heptagon(
        "dqm", "certify", str(dqm["data"]), "--model", str(model), "--out", str(tmp_path / "c")
    )
    assert_user_error(res, str(model / "model.json"), "schema_version", f"{SCHEMA_VERSION + 1}")


def _edit_json(model: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    meta = json.loads((model / "model.json").read_text())
    edit(meta)
    (model / "model.json").write_text(json.dumps(meta))


def _edit_npz(model: Path, edit: Callable[[dict[str, np.ndarray]], object]) -> None:
    with np.load(model / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(model / "model.npz", **arrays)


@pytest.mark.parametrize(
    ("case", "file", "key"),
    [
        ("json_missing_key", "model.json", "thresholds.pca.run"),
        ("json_wrong_type", "model.json", "methods.chi2.ref_rate"),
        ("json_bad_config", "model.json", "config.ae_latent"),
        ("json_not_json", "model.json", None),
        ("npz_missing_array", "model.npz", "pca/pca_axes"),
        ("npz_wrong_shape", "model.npz", "chi2/ref/occ_neutral"),
        ("npz_wrong_weights", "model.npz", "autoencoder/net/"),
        ("npz_truncated", "model.npz", None),
        ("npz_random_bytes", "model.npz", None),
        ("npz_missing", "model.npz", None),
    ],
)
def test_dqm_corrupt_model(
    dqm: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    file: str,
    key: str | None,
) -> None:
    model = _copy(dqm["model"], tmp_path / "model")
    npz = model / "model.npz"
    if case == "json_missing_key":
        _edit_json(model, lambda m: m["thresholds"]["pca"].pop("run"))
    elif case == "json_wrong_type":
        _edit_json(model, lambda m: m["methods"]["chi2"].update(ref_rate="fast"))
    elif case == "json_bad_config":
        _edit_json(model, lambda m: m["config"].update(ae_latent=-1))
    elif case == "json_not_json":
        (model / "model.json").write_bytes(os.urandom(64))
    elif case == "npz_missing_array":
        _edit_npz(model, lambda a: a.pop("pca/pca_axes"))
    elif case == "npz_wrong_shape":
        _edit_npz(model, lambda a: a.update({"chi2/ref/occ_neutral": np.zeros(3)}))
    elif case == "npz_wrong_weights":
        first = next(k for k in np.load(npz).files if k.startswith("autoencoder/net/"))
        _edit_npz(model, lambda a: a.update({first: a[first][..., :1]}))
    elif case == "npz_truncated":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif case == "npz_random_bytes":
        npz.write_bytes(os.urandom(4096))
    else:
        npz.unlink()
    with pytest.raises(DataError):  # the API raises what the CLI reports
        load_model(model)
    res = run_main(
        monkeypatch,
        capsys,
        "dqm",
        "certify",
        str(dqm["data"]),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "c"),
    )
    assert_user_error(res, str(model / file), *([key] if key else []))
    assert not (tmp_path / "c").exists()


def test_dqm_saved_model_scores_as_the_fitted_one(dqm: dict[str, Any]) -> None:
    """Every method and classifier of a reloaded model gives the fitted one's scores and
    thresholds (the networks' weights, PCA axes and classifiers' data survive exactly)."""
    data, fitted = load_data(dqm["data"]), dqm["fitted"]
    loaded = load_model(dqm["model"])
    a, b = score(fitted, data), score(loaded, data)
    assert set(a.run) == set(b.run) >= {"pca:run", "autoencoder:max_ls", "knn", "gnb", "svm"}
    for k in a.run:
        np.testing.assert_allclose(a.run[k], b.run[k], rtol=1e-12, err_msg=k)
    for m, cal in fitted.calibration.items():
        for level, c in cal.items():
            assert loaded.calibration[m][level].threshold == c.threshold
    assert loaded.ranking == fitted.ranking
    assert loaded.features == fitted.features


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_dqm_corrupt_histograms(dqm: dict[str, Any], tmp_path: Path) -> None:
    """``dqm train`` on histograms.npz of random bytes (subprocess), truncated, without
    one histogram (in-process in the test below)."""
    data = _copy(dqm["data"], tmp_path / "data")
    (data / "histograms.npz").write_bytes(os.urandom(2048))
    res = heptagon("dqm", "train", str(data), "--out", str(tmp_path / "m"))
    assert_user_error(res, str(data / "histograms.npz"))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "case", ["truncated", "missing_histogram", "misshapen_column", "bad_runs_json"]
)
def test_dqm_corrupt_histograms_variants(
    dqm: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    data = _copy(dqm["data"], tmp_path / "data")
    npz = data / "histograms.npz"
    names: tuple[str, ...] = (str(npz),)
    if case == "truncated":
        _truncate(npz)
    elif case in ("missing_histogram", "misshapen_column"):
        with np.load(npz) as z:
            arrays = {k: z[k] for k in z.files}
        if case == "missing_histogram":
            del arrays["h_jet_pt"]
            names += ("h_jet_pt",)
        else:
            arrays["ls_lumi"] = arrays["ls_lumi"][:-1]
            names += ("ls_lumi",)
        np.savez(npz, **arrays)
    else:
        meta = json.loads((data / "runs.json").read_text())
        meta["runs"][2]["n_ls"] = "many"
        (data / "runs.json").write_text(json.dumps(meta))
        names = (str(data / "runs.json"), "runs.2.n_ls")
    res = run_main(monkeypatch, capsys, "dqm", "train", str(data), "--out", str(tmp_path / "m"))
    assert_user_error(res, *names)
    assert not (tmp_path / "m").exists()


def test_dqm_missing_input_and_unwritable_output(
    dqm: dict[str, Any],
    tmp_path: Path,
    unwritable_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nowhere"
    res = heptagon("dqm", "simulate", "--out", str(unwritable_dir), "--runs", "2", "--ls", "1")
    assert_user_error(res, str(unwritable_dir))
    res = heptagon("dqm", "train", str(missing), "--out", str(tmp_path / "m"))
    assert_user_error(res, str(missing / "histograms.npz"))
    cases = [
        (("dqm", "train", str(dqm["data"]), "--out", str(unwritable_dir), "--epochs", "1",
          "--methods", "chi2", "--no-classifiers"), str(unwritable_dir)),
        (("dqm", "certify", str(missing), "--model", str(dqm["model"]), "--out",
          str(tmp_path / "c")), str(missing / "histograms.npz")),
        (("dqm", "certify", str(dqm["data"]), "--model", str(missing), "--out",
          str(tmp_path / "c")), str(missing / "model.json")),
        (("dqm", "certify", str(dqm["data"]), "--model", str(dqm["model"]), "--method",
          "pca", "--no-plots", "--out", str(unwritable_dir)), str(unwritable_dir)),
    ]  # fmt: skip
    for args, name in cases:
        assert_user_error(run_main(monkeypatch, capsys, *args), name)
    assert not (tmp_path / "m").exists()
    assert not (tmp_path / "c").exists()
    no_temp_files(tmp_path)


# -------------------------------------------------------------------------- MLPF


@pytest.fixture(scope="module")
def mlpf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 12-event gun element sample (two shards) and a tiny MLPF trained on it."""
    root = tmp_path_factory.mktemp("mlpf")
    generate_elements(
        ElementOptions(sample="gun", events=12, seed=1, out=root / "data", shard_size=6),
        show_progress=False,
    )
    opts = MLPFTrainOptions(
        data=root / "data", out=root / "run", epochs=1, width=8, n_layers=1, bin_size=8,
        val_fraction=0, threshold=0.5, device="cpu",
    )  # fmt: skip
    train_mlpf(opts)
    return {"data": root / "data", "run": root / "run"}


def test_mlpf_model_with_a_pickle_payload_runs_nothing(
    mlpf: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    run = _copy(mlpf["run"], tmp_path / "run")
    saved = torch.load(run / "model.pt", weights_only=True)
    saved["decoding"] = Payload(marker)
    torch.save(saved, run / "model.pt")
    res = heptagon("mlpf", "export", str(run))
    err = assert_user_error(res, str(run / "model.pt"))
    assert "weights_only" not in err
    assert not marker.exists()
    assert not (run / "model.onnx").exists()
    no_temp_files(run)


def test_mlpf_model_of_random_bytes(mlpf: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(mlpf["run"], tmp_path / "run")
    (run / "model.pt").write_bytes(os.urandom(4096))
    res = heptagon("mlpf", "evaluate", str(run), "--data", str(mlpf["data"]))
    err = assert_user_error(res, str(run / "model.pt"))
    assert "weights_only" not in err
    assert not (run / "eval").exists()


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("truncated", None),
        ("empty", None),
        ("not_a_dict", None),
        ("wrong_keys", "options"),
        ("wrong_tensors", "state"),
        ("huge_width", "options.width"),
        ("bad_decoding", "decoding"),
    ],
)
def test_mlpf_corrupt_model(
    mlpf: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    key: str | None,
) -> None:
    run = _copy(mlpf["run"], tmp_path / "run")
    pt = run / "model.pt"
    saved = torch.load(pt, weights_only=True)
    if case == "truncated":
        _truncate(pt)
    elif case == "empty":
        pt.write_bytes(b"")
    elif case == "not_a_dict":
        torch.save([torch.zeros(3)], pt)
    elif case == "wrong_keys":
        torch.save({"model": saved["state"]}, pt)
    elif case == "wrong_tensors":
        state = dict(saved["state"])
        name = next(iter(state))
        state[name] = torch.zeros(3, 3, 3)
        torch.save({**saved, "state": state}, pt)
    elif case == "huge_width":
        torch.save({**saved, "options": {**saved["options"], "width": 10**9}}, pt)
    else:
        torch.save({**saved, "decoding": {"threshold": 2.0, "track_momentum": True}}, pt)
    res = run_main(monkeypatch, capsys, "mlpf", "export", str(run))
    err = assert_user_error(res, str(pt), *([key] if key else []))
    assert "weights_only" not in err
    assert not (run / "model.onnx").exists()


@pytest.mark.parametrize("case", ["truncated", "random_bytes", "missing_branch", "missing_shard"])
def test_mlpf_corrupt_shard(
    mlpf: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    data = _copy(mlpf["data"], tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    shard = data / manifest["files"][1]["file"]
    names: tuple[str, ...] = (str(shard),)
    if case == "truncated":
        _truncate(shard)
    elif case == "random_bytes":
        shard.write_bytes(os.urandom(4096))
    elif case == "missing_branch":
        import awkward as ak

        table = ak.from_parquet(shard)
        ak.to_parquet(table[[f for f in table.fields if f != "GenPart_class"]], shard)
        names += ("GenPart_class",)
    else:
        shard.unlink()
    if case == "random_bytes":
        res = heptagon("mlpf", "evaluate", str(mlpf["run"]), "--data", str(data))
        assert not (mlpf["run"] / "eval").exists()
    else:
        res = run_main(
            monkeypatch, capsys, "mlpf", "train", "--data", str(data), "--out", str(tmp_path / "r")
        )
        assert not (tmp_path / "r").exists()
    assert_user_error(res, *names)


def test_mlpf_missing_input_and_unwritable_output(
    mlpf: dict[str, Path],
    tmp_path: Path,
    unwritable_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nowhere"
    res = heptagon("mlpf", "train", "--data", str(mlpf["data"]), "--out", str(unwritable_dir),
                   "--epochs", "1", "--width", "8", "--layers", "1", "--bin-size", "8",
                   "--val-fraction", "0", "--threshold", "0.5", "--device", "cpu")  # fmt: skip
    assert_user_error(res, str(unwritable_dir))
    res = heptagon("mlpf", "generate", "gun", "--events", "2", "--out", str(unwritable_dir))
    assert_user_error(res, str(unwritable_dir))
    cases = [
        (("mlpf", "train", "--data", str(missing), "--out", str(tmp_path / "r")), str(missing)),
        (("mlpf", "evaluate", str(missing), "--data", str(mlpf["data"])), str(missing)),
        (("mlpf", "evaluate", str(mlpf["run"]), "--data", str(missing)), str(missing)),
        (("mlpf", "export", str(missing)), str(missing)),
    ]
    for args, name in cases:
        assert_user_error(run_main(monkeypatch, capsys, *args), name)
    assert not (tmp_path / "r").exists()
    assert not (mlpf["run"] / "eval").exists()
