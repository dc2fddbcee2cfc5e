"""Training the certification methods on simulated runs, and certifying runs with them.

:func:`fit` trains every method on a :class:`~heptagon.apps.dqm.simulate.DQMData`: the
histogram methods on the good runs' LS, calibrated at LS level and at run level (the
run's summed histograms) on good runs held out from the fit (``calibration_fraction``;
the JetMET study took the training runs themselves, where an autoencoder that overfits
sets far too low thresholds); with labelled bad runs also the supervised part (feature
ranking, then KNN / GNB / SVM on the top ``n_features`` summaries of each run).
:func:`score` scores LS and runs; :func:`certify_dir` writes the verdicts and the report.

A run's score under aggregate ``max_ls`` is the largest score of its LS (the JetMET rule:
a run is bad if its highest reconstruction error exceeds the highest one seen on good
training data); under ``run`` it is the score of the run's summed histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.pipeline import Pipeline

from heptagon.apps.dqm.methods import (
    CLASSIFIERS,
    ERROR_NAMES,
    Calibration,
    HistogramMethod,
    Samples,
    build_network,
    classifier_scores,
    fit_classifiers,
    fit_histogram_method,
    rank_features,
)
from heptagon.apps.dqm.observables import histogram_shapes, histogram_slices, summary_features
from heptagon.apps.dqm.simulate import DQMData, load_data, read_arrays
from heptagon.artifacts.dqm import DqmMethod, DqmModelFile, DqmRuns, FeatureImportance
from heptagon.config import validate_in_file
from heptagon.errors import ConfigError, DataError
from heptagon.io import atomic_path, make_dir, write_json_atomic

__all__ = [
    "AGGREGATES",
    "SCHEMA_VERSION",
    "CertifyResult",
    "DQMModel",
    "Scores",
    "TrainConfig",
    "certify_dir",
    "fit",
    "load_model",
    "score",
    "train_dir",
]

AGGREGATES: tuple[str, ...] = ("max_ls", "run")
MethodName = Literal["chi2", "beta_binomial", "pca", "autoencoder", "conv_autoencoder"]


class TrainConfig(BaseModel):
    """What ``heptagon dqm train`` fits and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: tuple[MethodName, ...] = (
        "chi2",
        "beta_binomial",
        "pca",
        "autoencoder",
        "conv_autoencoder",
    )
    quantile: float = Field(1.0, gt=0, le=1, description="threshold quantile of good scores")
    calibration_fraction: float = Field(
        0.3, ge=0, lt=1, description="good runs held out to set the thresholds (0: the fit runs)"
    )
    top_bins: int | None = Field(4, gt=0, description="bins per histogram error (None: all)")
    pca_components: int = Field(10, gt=0)
    ae_hidden: tuple[int, ...] = (128, 32)
    ae_latent: int = Field(8, gt=0)
    ae_epochs: int = Field(30, gt=0, description="epochs of both autoencoders")
    ae_lr: float = Field(1e-3, gt=0)
    conv_channels: int = Field(8, gt=0, description="conv autoencoder: first feature maps")
    conv_latent: int = Field(4, gt=0, description="conv autoencoder: bottleneck per histogram")
    batch_size: int = Field(64, gt=0)
    classifiers: bool = True
    n_features: int = Field(10, gt=0, description="top-ranked summaries the classifiers use")
    rank_epochs: int = Field(200, gt=0)
    seed: int = 0


#: the layout of ``model.json`` and ``model.npz``; a model of another version is refused
#: the version of model.json this heptagon writes and reads
SCHEMA_VERSION = DqmModelFile.SCHEMA_VERSION
_LEVELS = ("max_ls", "run")


@dataclass
class DQMModel:
    """Everything :func:`fit` learned. ``classifier_data``: the selected summaries ``x``
    ``(n_runs, len(features))`` and labels ``y`` the classifiers were fitted on (a saved
    model keeps them and refits the classifiers, which is deterministic)."""

    config: TrainConfig
    methods: dict[str, HistogramMethod]
    calibration: dict[str, dict[str, Calibration]]
    ranking: list[tuple[str, float]]
    features: list[str]
    classifiers: dict[str, Pipeline]
    n_runs: dict[str, int]
    classifier_data: tuple[np.ndarray, np.ndarray] | None = None

    def save(self, out: Path) -> None:
        """``model.npz`` (every fitted array: references, standardisations, PCA axes, the
        networks' weights, typical errors, the classifiers' training data) and
        ``model.json`` (the rest, readable), atomically. Both are data: loading them
        executes nothing."""
        make_dir(out)
        arrays: dict[str, np.ndarray] = {}
        for name, m in self.methods.items():
            arrays |= {f"{name}/ref/{h}": v for h, v in m.ref.items()}
            for key in ("mean", "std", "pca_mean", "pca_axes"):
                value = getattr(m, key)
                if value is not None:
                    arrays[f"{name}/{key}"] = value
            if m.net is not None:
                state = m.net.state_dict().items()
                arrays |= {f"{name}/net/{k}": v.detach().cpu().numpy() for k, v in state}
            for level, c in self.calibration[name].items():
                arrays[f"{name}/typical/{level}"] = c.typical
        if self.classifier_data is not None:
            arrays["classifiers/x"], arrays["classifiers/y"] = self.classifier_data
        with atomic_path(out / "model.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        self.summary().write(out / "model.json")

    def summary(self) -> DqmModelFile:
        """The content of ``model.json``."""
        return DqmModelFile(
            histograms=list(ERROR_NAMES),
            config=self.config.model_dump(mode="json"),
            runs=DqmRuns.model_validate(self.n_runs),
            methods={
                m: DqmMethod(ref_rate=h.ref_rate, top_bins=h.top_bins)
                for m, h in self.methods.items()
            },
            thresholds={
                m: {level: c.threshold for level, c in cal.items()}
                for m, cal in self.calibration.items()
            },
            feature_ranking=[FeatureImportance(feature=n, importance=v) for n, v in self.ranking],
            classifier_features=self.features,
        )


class _ModelFiles:
    """Reads a saved model's ``model.json`` and ``model.npz``, checking every value: a
    missing key, a wrong type or shape is a :class:`DataError` naming the file and key."""

    def __init__(self, path: Path) -> None:
        self.json_file, self.npz_file = path / "model.json", path / "model.npz"
        for f in (self.json_file, self.npz_file):
            if not f.is_file():
                old = " (model.pkl, an older heptagon's pickle, is never read)"
                why = old if (path / "model.pkl").exists() else ""
                raise DataError(f"no trained DQM model{why}: run `heptagon dqm train`", file=f)
        self.meta = DqmModelFile.read(self.json_file)
        self.arrays = read_arrays(self.npz_file)

    def method(self, name: str) -> DqmMethod:
        """``model.json``'s entry of method ``name``."""
        if name not in self.meta.methods:
            raise DataError("missing", file=self.json_file, key=f"methods.{name}")
        return self.meta.methods[name]

    def threshold(self, name: str, level: str) -> float:
        """``model.json``'s alarm threshold of method ``name`` at ``level``."""
        value = self.meta.thresholds.get(name, {}).get(level)
        if value is None:
            raise DataError("missing", file=self.json_file, key=f"thresholds.{name}.{level}")
        return value

    def array(self, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """``model.npz``'s array ``key`` of ``shape`` (None: any length on that axis)."""
        if key not in self.arrays:
            raise DataError("array missing", file=self.npz_file, key=key)
        a = self.arrays[key]
        wrong = len(a.shape) != len(shape) or any(
            n is not None and n != m for n, m in zip(shape, a.shape, strict=False)
        )
        if wrong or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            want = "x".join("n" if n is None else str(n) for n in shape)
            raise DataError(
                f"expected a numeric array of shape ({want}), got {a.dtype} {a.shape}",
                file=self.npz_file,
                key=key,
            )
        return a


def _summary_names() -> list[str]:
    """The names of every run summary :func:`summary_features` computes."""
    empty = {h: np.zeros((1, *shape)) for h, shape in histogram_shapes().items()}
    return summary_features(empty, np.ones(1))[1]


def _load_method(files: _ModelFiles, name: str, cfg: TrainConfig) -> HistogramMethod:
    shapes = histogram_shapes()
    width = histogram_slices()["rate"].stop
    m = HistogramMethod(
        name,
        ref={h: files.array(f"{name}/ref/{h}", s) for h, s in shapes.items()},
        ref_rate=files.method(name).ref_rate,
        top_bins=files.method(name).top_bins,
    )
    if name in ("chi2", "beta_binomial"):
        return m
    m.mean = files.array(f"{name}/mean", (width,))
    m.std = files.array(f"{name}/std", (width,))
    if name == "pca":
        m.pca_mean = files.array(f"{name}/pca_mean", (width,))
        m.pca_axes = files.array(f"{name}/pca_axes", (None, width))
        return m
    net = build_network(
        name,
        width,
        ae_hidden=cfg.ae_hidden,
        ae_latent=cfg.ae_latent,
        conv_channels=cfg.conv_channels,
        conv_latent=cfg.conv_latent,
    )
    state = net.state_dict()
    for k, v in state.items():
        state[k] = torch.from_numpy(files.array(f"{name}/net/{k}", tuple(v.shape))).to(v.dtype)
    net.load_state_dict(state)
    m.net = net.eval()
    return m


def load_model(path: Path) -> DQMModel:
    """Read a model written by :meth:`DQMModel.save`. The files may come from anyone:
    they are read as JSON and plain arrays only, and every value is checked."""
    files = _ModelFiles(Path(path))
    cfg = validate_in_file(TrainConfig, files.meta.config, files.json_file, "config")
    methods: dict[str, HistogramMethod] = {}
    calibration: dict[str, dict[str, Calibration]] = {}
    for name in cfg.methods:
        methods[name] = _load_method(files, name, cfg)
        calibration[name] = {
            level: Calibration(
                files.array(f"{name}/typical/{level}", (len(ERROR_NAMES),)),
                files.threshold(name, level),
            )
            for level in _LEVELS
        }
    if files.meta.histograms != list(ERROR_NAMES):
        raise DataError(
            "the model monitors other histograms than this heptagon", files.json_file, "histograms"
        )
    ranking = [(f.feature, f.importance) for f in files.meta.feature_ranking]
    features = files.meta.classifier_features
    known = set(_summary_names())
    if not all(f in known for f in features):
        raise DataError("names an unknown summary", files.json_file, "classifier_features")
    classifiers: dict[str, Pipeline] = {}
    data = None
    if features:
        x = files.array("classifiers/x", (None, len(features)))
        y = files.array("classifiers/y", (len(x),))
        if sorted(set(y.tolist())) != [0, 1]:
            raise DataError(
                "labels must be 0 (good) and 1 (bad), both", files.npz_file, "classifiers/y"
            )
        data = (x, y)
        classifiers = fit_classifiers(x, y, seed=cfg.seed)
    n_runs = files.meta.runs.model_dump()
    return DQMModel(cfg, methods, calibration, ranking, features, classifiers, n_runs, data)


def _ls_samples(data: DQMData) -> Samples:
    return Samples(data.counts, data.ls["n_events"], data.ls["lumi"])


def _run_samples(data: DQMData) -> Samples:
    index = np.searchsorted(data.run_numbers, data.ls["run"])
    n = len(data.runs)
    return Samples(
        data.run_counts(),
        np.bincount(index, data.ls["n_events"], minlength=n),
        np.bincount(index, data.ls["lumi"], minlength=n),
    )


def fit(data: DQMData, cfg: TrainConfig) -> DQMModel:
    """Train and calibrate every configured method on ``data`` (see the module doc)."""
    good_runs = data.run_numbers[~data.run_bad]
    n_cal = round(cfg.calibration_fraction * len(good_runs))
    if len(good_runs) - n_cal < 2 or (cfg.calibration_fraction > 0 and n_cal < 1):
        raise DataError(
            f"{len(good_runs)} good runs are too few to fit on at least 2 and calibrate on "
            f"a fraction {cfg.calibration_fraction} of them"
        )
    shuffled = np.random.default_rng(cfg.seed).permutation(good_runs)
    good = data.select(shuffled[n_cal:])
    held_out = data.select(shuffled[:n_cal]) if n_cal else good
    ls_good = _ls_samples(good)
    ls_cal, run_cal = _ls_samples(held_out), _run_samples(held_out)
    methods: dict[str, HistogramMethod] = {}
    calibration: dict[str, dict[str, Calibration]] = {}
    for name in cfg.methods:
        m = fit_histogram_method(
            name,
            ls_good,
            top_bins=cfg.top_bins,
            pca_components=cfg.pca_components,
            ae_hidden=cfg.ae_hidden,
            ae_latent=cfg.ae_latent,
            ae_epochs=cfg.ae_epochs,
            ae_lr=cfg.ae_lr,
            conv_channels=cfg.conv_channels,
            conv_latent=cfg.conv_latent,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
        )
        methods[name] = m
        calibration[name] = {
            "max_ls": m.calibrate(m.errors(ls_cal), cfg.quantile),
            "run": m.calibrate(m.errors(run_cal), cfg.quantile),
        }
    ranking: list[tuple[str, float]] = []
    features: list[str] = []
    classifiers: dict[str, Pipeline] = {}
    classifier_data = None
    y = data.run_bad.astype(int)
    if cfg.classifiers and 0 < y.sum() < len(y):
        x, names = summary_features(data.run_counts(), data.run_rate())
        ranking = rank_features(x, y, names, epochs=cfg.rank_epochs, seed=cfg.seed)
        features = [n for n, _ in ranking[: cfg.n_features]]
        classifier_data = (x[:, [names.index(f) for f in features]], y)
        classifiers = fit_classifiers(*classifier_data, seed=cfg.seed)
    n_runs = {"fit": len(good.runs), "calibration": n_cal, "bad": int(y.sum())}
    return DQMModel(
        cfg, methods, calibration, ranking, features, classifiers, n_runs, classifier_data
    )


@dataclass
class Scores:
    """Scores of a :class:`DQMData` under a model.

    ``ls_errors[m]`` ``(n_ls, H)`` and ``run_errors[m]`` ``(n_runs, H)``: per-histogram
    errors; ``ls[m]``: LS scores; ``run[f"{m}:{aggregate}"]``: run scores of each histogram
    method and aggregate; ``run[c]``: the classifiers' run scores.
    """

    ls_errors: dict[str, np.ndarray]
    run_errors: dict[str, np.ndarray]
    ls: dict[str, np.ndarray]
    run: dict[str, np.ndarray]


def score(model: DQMModel, data: DQMData) -> Scores:
    """Score every LS and run of ``data`` with every method of ``model``."""
    ls_s, run_s = _ls_samples(data), _run_samples(data)
    index = np.searchsorted(data.run_numbers, data.ls["run"])
    ls_errors, run_errors, ls_scores, run_scores = {}, {}, {}, {}
    for name, m in model.methods.items():
        ls_errors[name] = m.errors(ls_s)
        run_errors[name] = m.errors(run_s)
        ls_scores[name] = model.calibration[name]["max_ls"].score(ls_errors[name])
        worst = np.full(len(data.runs), -np.inf)
        np.maximum.at(worst, index, ls_scores[name])
        run_scores[f"{name}:max_ls"] = worst
        run_scores[f"{name}:run"] = model.calibration[name]["run"].score(run_errors[name])
    if model.classifiers:
        x, names = summary_features(data.run_counts(), data.run_rate())
        cols = [names.index(f) for f in model.features]
        run_scores |= classifier_scores(model.classifiers, x[:, cols])
    return Scores(ls_errors, run_errors, ls_scores, run_scores)


@dataclass(frozen=True)
class CertifyResult:
    """What :func:`certify_dir` wrote and found."""

    out: Path
    n_runs: int
    bad_runs: list[int]
    n_bad_ls: int
    n_ls: int


def train_dir(data_dir: Path, out: Path, cfg: TrainConfig) -> DQMModel:
    """``heptagon dqm train``: fit on the runs in ``data_dir`` and save into ``out``."""
    model = fit(load_data(data_dir), cfg)
    model.save(out)
    return model


def _drivers(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"histogram": h, "error_over_typical": round(r, 3)} for h, r in pairs]


def certify_dir(
    data_dir: Path,
    model_dir: Path,
    out: Path,
    *,
    method: str = "autoencoder",
    aggregate: str = "max_ls",
    top: int = 3,
    plots: bool = True,
) -> CertifyResult:
    """``heptagon dqm certify``: per-run and per-LS verdicts of ``method`` with the
    histograms that drove them, into ``out/verdicts.json``, and ``out/report.md`` with
    its plots (score vs run, the worst histograms over the reference)."""
    from heptagon.apps.dqm.report import write_report

    model = load_model(model_dir)
    if method not in model.methods:
        known = ", ".join(model.methods) or "none"
        raise ConfigError(f"the model has no method '{method}' (trained: {known})", key="method")
    if aggregate not in AGGREGATES:
        raise ConfigError(f"must be one of {', '.join(AGGREGATES)}", key="aggregate")
    data = load_data(data_dir)
    scores = score(model, data)
    cal_ls = model.calibration[method]["max_ls"]
    cal_run = model.calibration[method][aggregate]
    ls_drivers = cal_ls.drivers(scores.ls_errors[method], top)
    run_scores = scores.run[f"{method}:{aggregate}"]
    if aggregate == "run":
        run_drivers = cal_run.drivers(scores.run_errors[method], top)
    else:
        run_drivers = []
        for r in data.run_numbers:
            rows = np.flatnonzero(data.ls["run"] == r)
            run_drivers.append(ls_drivers[rows[np.argmax(scores.ls[method][rows])]])
    lumisections = [
        {
            "run": int(data.ls["run"][i]),
            "ls": int(data.ls["ls"][i]),
            "verdict": "bad" if scores.ls[method][i] > cal_ls.threshold else "good",
            "score": float(scores.ls[method][i]),
            "drivers": _drivers(ls_drivers[i]),
            "truth": {"fault": str(data.ls["fault"][i]), "size": float(data.ls["size"][i])},
        }
        for i in range(len(data.ls["run"]))
    ]
    runs = []
    for i, rec in enumerate(data.runs):
        runs.append(
            {
                "run": rec["run"],
                "verdict": "bad" if run_scores[i] > cal_run.threshold else "good",
                "score": float(run_scores[i]),
                "drivers": _drivers(run_drivers[i]),
                "bad_ls": [
                    x["ls"]
                    for x in lumisections
                    if x["run"] == rec["run"] and x["verdict"] == "bad"
                ],
                "classifier_scores": {
                    c: float(scores.run[c][i]) for c in CLASSIFIERS if c in scores.run
                },
                "truth": {"bad": rec["bad"], "fault": rec["fault"]},
            }
        )
    make_dir(out)
    verdicts = {
        "method": method,
        "aggregate": aggregate,
        "threshold": {"ls": cal_ls.threshold, "run": cal_run.threshold},
        "quantile": model.config.quantile,
        "runs": runs,
        "lumisections": lumisections,
    }
    write_json_atomic(out / "verdicts.json", verdicts)
    write_report(out, data, model, verdicts, plots=plots)
    bad_runs = [r["run"] for r in runs if r["verdict"] == "bad"]
    n_bad_ls = sum(x["verdict"] == "bad" for x in lumisections)
    return CertifyResult(out, len(runs), bad_runs, n_bad_ls, len(lumisections))
