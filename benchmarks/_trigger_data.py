"""Samples of the trigger benchmarks: the five classes of the hls4ml jet-tagging benchmark
(g, q, W, Z, t) as R = 0.8 jets at ~1 TeV, generated once and cached, for the nominal
detector (through ``heptagon.generate``) or a modified one, with their 16 high-level
features (``heptagon.apps.trigger.features``) cached beside the shards.

A modified detector is ``heptagon generate``'s ``--detector-set FIELD=VALUE``
(``GenerateOptions.detector_set``; :func:`detector_set` writes a condition's items), on the
same classes, window and seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heptagon.apps.trigger.features import high_level_features
from heptagon.generate.run import GenerateOptions, generate
from heptagon.io import atomic_path

#: label -> catalogue class: gluon and light-quark jets recoiling against Z -> nu nu,
#: W -> qq' and Z -> qq in V + jet, hadronic top from ttbar
CLASSES = {"g": "g", "q": "q", "W": "Wqq", "Z": "Zqq", "t": "Tbqq"}
PT_MIN, PT_MAX, RADIUS = 800.0, 1200.0, 0.8
BRANCHES = ["part_px", "part_py", "part_pz", "part_energy"]


def _options(
    cls: str, jets: int, seed: int, out: Path, jobs: int, shards: int, knobs: dict[str, Any]
) -> GenerateOptions:
    return GenerateOptions(
        sample=cls,
        jets=jets,
        seed=seed,
        out=out,
        jobs=jobs,
        pt_min=PT_MIN,
        pt_max=PT_MAX,
        radius=RADIUS,
        shard_size=max(1, -(-jets // shards)),
        detector_set=detector_set(knobs) or None,
    )


def detector_set(knobs: dict[str, Any]) -> list[str]:
    """The ``--detector-set`` items of a condition's detector parameters (values as JSON,
    which the option reads as YAML)."""
    return [
        f"{name}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for name, v in knobs.items()
    ]


def nominal(out: Path, jets: int, seed: int, jobs: int) -> dict[str, list[Path]]:
    """Generate (or reuse) ``jets`` per class with the default detector, two shards per
    class; files per label."""
    return _generate(out, jets, seed, jobs, shards=2, knobs={})


def modified(
    out: Path, jets: int, seed: int, jobs: int, knobs: dict[str, Any]
) -> dict[str, list[Path]]:
    """Generate (or reuse) ``jets`` per class with the detector parameters ``knobs`` (a
    :data:`CONDITIONS` entry), one shard per class; files per label."""
    return _generate(out, jets, seed, jobs, shards=1, knobs=knobs)


def _generate(
    out: Path, jets: int, seed: int, jobs: int, shards: int, knobs: dict[str, Any]
) -> dict[str, list[Path]]:
    files = {}
    for label, cls in CLASSES.items():
        generate(_options(cls, jets, seed, out / cls, jobs, shards, knobs))
        files[label] = sorted((out / cls / "shards").glob("*.parquet"))
    return files


def features(files: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """The 16 features ``(n, 16)`` and integer labels (order of :data:`CLASSES`) of every
    jet of ``files``; each file's features are cached beside it (``.<stem>.hlf.npy``)."""
    xs, ys = [], []
    for k, label in enumerate(CLASSES):
        for path in files[label]:
            cache = path.with_name(f".{path.stem}.hlf.npy")
            if cache.exists():
                x = np.load(cache)
            else:
                jets = ak.from_parquet(path, columns=BRANCHES)
                x = high_level_features(*(jets[b] for b in BRANCHES), radius=RADIUS)
                with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                    np.save(f, x)
            xs.append(x)
            ys.append(np.full(len(x), k))
    return np.concatenate(xs), np.concatenate(ys)


#: the continual-learning conditions, successively degraded (each adds to the one before),
#: as ``DetectorConfig`` fields: tracker inefficiency (charged-hadron track efficiency down
#: by 0.2), then worse calorimeter resolution (stochastic and constant terms of ECAL and HCAL
#: up), then HCAL towers twice as coarse and track pT resolution three times worse
_TRACKER = {"hadron_eff_barrel": (0.50, 0.75), "hadron_eff_endcap": (0.40, 0.65)}
_CALO = {"hcal_s": 2.5, "hcal_c": 0.10, "ecal_s": 0.20, "ecal_c": 0.016}
_COARSE = {
    "hcal_cell": 0.174,
    "track_res_a": (0.018, 0.030, 0.075),
    "track_res_b": (3.9e-4, 5.1e-4, 9.3e-4),
}
CONDITIONS: dict[str, dict[str, Any]] = {
    "nominal": {},
    "tracker_ineff": _TRACKER,
    "calo_resolution": {**_TRACKER, **_CALO},
    "coarse_hcal": {**_TRACKER, **_CALO, **_COARSE},
}
