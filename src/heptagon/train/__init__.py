"""The train stage: experiment YAML + data -> run directory.

>>> from heptagon.train import train, load_run
>>> summary = train("configs/top_particlenet_lite.yaml", "data/top", "runs/pnl")  # doctest: +SKIP
>>> run = load_run("runs/pnl")          # best weights, eval mode  # doctest: +SKIP

See :mod:`heptagon.train.experiment` for the experiment schema and
:mod:`heptagon.train.rundir` for the run directory.
"""

from heptagon.train.experiment import (
    ExperimentConfig,
    ModelSpec,
    RunConfig,
    SplitSpec,
    TrainOptions,
    load_experiment,
)
from heptagon.train.losses import LossSpec, WeightedLoss
from heptagon.train.run import input_dims, train
from heptagon.train.rundir import LoadedRun, RunDir, RunSummary, load_run

__all__ = [
    "ExperimentConfig",
    "LoadedRun",
    "LossSpec",
    "ModelSpec",
    "RunConfig",
    "RunDir",
    "RunSummary",
    "SplitSpec",
    "TrainOptions",
    "WeightedLoss",
    "input_dims",
    "load_experiment",
    "load_run",
    "train",
]
