"""Samples of the trigger benchmarks: the five classes of the hls4ml jet-tagging benchmark
(g, q, W, Z, t) as R = 0.8 jets at ~1 TeV, generated once and cached, for the nominal
detector (through ``heptagon.generate``) or a modified one, with their 16 high-level
features (``heptagon.apps.trigger.features``) cached beside the shards.

``GenerateOptions`` has no field for detector parameters (only default / none), so a
modified detector runs generate's own shards (``ShardSpec`` with the detector's
parameters, ``run_shard``) on the same classes, window and seeds.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import awkward as ak
import numpy as np

from heptagon.apps.trigger.features import high_level_features
from heptagon.generate.detector import DetectorConfig
from heptagon.generate.processes import get_process
from heptagon.generate.run import (
    GenerateOptions,
    ShardSpec,
    generate,
    pythia_settings,
    run_shard,
)
from heptagon.generate.shards import shard_seed
from heptagon.io import atomic_path

#: label -> catalogue class: gluon and light-quark jets recoiling against Z -> nu nu,
#: W -> qq' and Z -> qq in V + jet, hadronic top from ttbar
CLASSES = {"g": "g", "q": "q", "W": "Wqq", "Z": "Zqq", "t": "Tbqq"}
PT_MIN, PT_MAX, RADIUS = 800.0, 1200.0, 0.8
BRANCHES = ["part_px", "part_py", "part_pz", "part_energy"]


def _options(cls: str, jets: int, seed: int, out: Path, jobs: int, shards: int) -> GenerateOptions:
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
    )


def nominal(out: Path, jets: int, seed: int, jobs: int) -> dict[str, list[Path]]:
    """Generate (or reuse) ``jets`` per class with the default detector, two shards per
    class; files per label."""
    files = {}
    for label, cls in CLASSES.items():
        opts = _options(cls, jets, seed, out / cls, jobs, shards=2)
        generate(opts)
        files[label] = sorted((out / cls / "shards").glob("*.parquet"))
    return files


def modified(
    out: Path, jets: int, seed: int, jobs: int, detector: DetectorConfig
) -> dict[str, list[Path]]:
    """Generate (or reuse) ``jets`` per class with ``detector``, one shard per class;
    files per label."""
    specs = []
    for cls in CLASSES.values():
        opts = _options(cls, jets, seed, out / cls, jobs, shards=1)
        (out / cls).mkdir(parents=True, exist_ok=True)
        for i in range(-(-jets // opts.shard_size)):
            s = shard_seed(seed, cls, i)
            specs.append(
                ShardSpec(
                    cls=cls,
                    label=cls,
                    labels=(cls,),
                    index=i,
                    n_jets=min(opts.shard_size, jets - i * opts.shard_size),
                    seed=s,
                    settings=tuple(pythia_settings(get_process(cls), PT_MIN, opts.use_mpi(), s)),
                    selection=opts.selection(),
                    detector=detector.model_dump(),
                    path=str(out / cls / f"{cls}_{i:04d}.parquet"),
                    format="parquet",
                )
            )
    todo = [s for s in specs if not Path(s.path).exists()]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run_shard, todo))
    return {label: sorted((out / cls).glob("*.parquet")) for label, cls in CLASSES.items()}


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


#: the continual-learning conditions, successively degraded (each adds to the one before):
#: tracker inefficiency (charged-hadron track efficiency down by 0.2), then worse
#: calorimeter resolution (stochastic and constant terms of ECAL and HCAL up), then HCAL
#: towers twice as coarse and track pT resolution three times worse
_TRACKER = {"hadron_eff_barrel": (0.50, 0.75), "hadron_eff_endcap": (0.40, 0.65)}
_CALO = {"hcal_s": 2.5, "hcal_c": 0.10, "ecal_s": 0.20, "ecal_c": 0.016}
_COARSE = {
    "hcal_cell": 0.174,
    "track_res_a": (0.018, 0.030, 0.075),
    "track_res_b": (3.9e-4, 5.1e-4, 9.3e-4),
}
CONDITIONS = {
    "nominal": DetectorConfig(),
    "tracker_ineff": DetectorConfig(**_TRACKER),
    "calo_resolution": DetectorConfig(**_TRACKER, **_CALO),
    "coarse_hcal": DetectorConfig(**_TRACKER, **_CALO, **_COARSE),
}
