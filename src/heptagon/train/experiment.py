"""The experiment YAML: data config, model and training options, in one typed spec.

::

    data: data/top_kinematic.yaml        # a data config file (relative to this file) or a mapping
    split: {train: 0.7, val: 0.15, test: 0.15}
    model:
      name: particlenet-lite
      options: {}                        # heptagon.models.model_options(name) lists them
      # network: my_net.py               # or a weaver-style network file (trusted user code)
    # init: {weights: runs/pre, strict: false, freeze: ["embed.*"]}   # fine-tuning
    train:
      epochs: 20
      batch_size: 256
      lr: 1.0e-3
      schedule: cosine                   # or flat+decay
      loss: ce                           # or {name: focal, gamma: 2.0}
      # task: anomaly                    # autoencoder / vae (docs/anomaly.md), trained on
      # background: [ttbar, dy]          # these classes; loss {name: reconstruction, beta: 1}
      val_every: epoch                   # or a number of steps
      patience: 5                        # early stopping on the validation loss

``--set key=value`` overrides any dotted key (``train.lr=3e-4``,
``model.options.k=8``, ``data.inputs.pf_features.length=64``); the value is read as YAML
and coerced by the schema. Every problem is a :class:`ConfigError` naming its dotted key.

The run dir's ``config.yaml`` is a :class:`RunConfig`: the experiment fully resolved (the
data config inline, every option with its value) plus the files, the split rule and the
versions used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heptagon.config import load_yaml, validate, yaml_value
from heptagon.data.augment import AugmentSpec
from heptagon.data.config import DataConfig, load_config
from heptagon.errors import ConfigError
from heptagon.train.device import DeviceChoice
from heptagon.train.losses import CrossEntropySpec, LossSpec, RegulariserSpec
from heptagon.train.optim import EMASpec

__all__ = [
    "ExperimentConfig",
    "InitSpec",
    "ModelFlags",
    "ModelSpec",
    "RunConfig",
    "SplitSpec",
    "TrainOptions",
    "load_experiment",
    "parse_overrides",
    "validate_experiment",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Model):
    """Train / validation / test fractions of docs/design.md's deterministic split."""

    train: float = Field(default=0.7, gt=0, lt=1)
    val: float = Field(default=0.15, gt=0, lt=1)
    test: float = Field(default=0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        if abs(self.train + self.val + self.test - 1.0) > 1e-9:
            raise ValueError("train + val + test must be 1")
        return self

    @property
    def fractions(self) -> tuple[float, float, float]:
        """``(train, val, test)``."""
        return (self.train, self.val, self.test)


class ModelSpec(_Model):
    """A registered model and its options (``heptagon.models.model_options(name)``), or,
    with ``network``, a user's network file in weaver-core's convention
    (:mod:`heptagon.train.network`): then ``name`` only names the model and ``options``
    go to the file's ``get_model``."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    network: str | None = Field(
        default=None,
        description="a network file (trusted user code), relative to the experiment file",
    )


class InitSpec(_Model):
    """Pre-trained weights to start from (:mod:`heptagon.train.finetune`)."""

    weights: str = Field(description="a run dir or a checkpoint, relative to the experiment")
    strict: bool = Field(
        default=True, description="every tensor must match; false: load the matching ones"
    )
    freeze: list[str] = Field(
        default_factory=list, description="fnmatch patterns of parameter names not trained"
    )


@dataclass(frozen=True)
class ModelFlags:
    """The ``train`` command's model flags, which replace the experiment's keys:
    ``network`` (``--network-config``) the whole ``model`` section (name: the file's stem;
    options from ``--set model.options.KEY=VALUE``), ``weights`` / ``strict`` / ``freeze``
    (``--load-model-weights`` / ``--strict/--no-strict`` / ``--freeze``) ``init``'s keys.
    Paths are relative to the working directory."""

    network: str | Path | None = None
    weights: str | Path | None = None
    strict: bool | None = None
    freeze: tuple[str, ...] = ()


class TrainOptions(_Model):
    """How the model is trained. Steps are optimizer steps (one batch per process)."""

    task: Literal["classification", "regression", "anomaly"] = Field(
        default="classification",
        description="anomaly: an autoencoder (autoencoder, vae) learns to reconstruct the "
        "'background' classes (loss: reconstruction, the default then)",
    )
    background: list[str] = Field(
        default_factory=list,
        description="anomaly: the classes of data.labels trained on; the others are "
        "held-out signals (weight 0 in the loss, scored by evaluate)",
    )
    epochs: int = Field(default=20, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps")
    steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="for the lr schedule only; default: the files' entries x the train "
        "fraction / (batch size x processes), before the selection",
    )
    batch_size: int = Field(default=256, ge=1)
    optimizer: Literal["adamw"] = "adamw"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    schedule: Literal["cosine", "flat+decay"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    decay_start: float = Field(
        default=0.7, ge=0, le=1, description="flat+decay: fraction of the steps kept flat"
    )
    min_lr_ratio: float = Field(default=0.01, ge=0, le=1, description="final lr / lr")
    grad_clip: float | None = Field(default=None, gt=0, description="max gradient norm")
    ema: EMASpec | None = Field(
        default=None,
        description="weight averaging: the moving average of the weights is validated, "
        "kept as best.pt, evaluated and exported ({decay: 0.99})",
    )
    augment: AugmentSpec | None = Field(
        default=None,
        description="physics augmentation of the training jets, a new draw each epoch "
        "(heptagon.data.augment; docs/small-data.md)",
    )
    loss: LossSpec = Field(default_factory=CrossEntropySpec)
    regularisers: list[RegulariserSpec] = Field(
        default_factory=list,
        description="terms added to the loss that see an observer (disco, adversary)",
    )
    patience: int | None = Field(
        default=None, ge=1, description="stop after this many validations without improvement"
    )
    val_every: int | Literal["epoch"] = "epoch"
    checkpoint_every: int = Field(default=500, ge=1, description="steps between last.pt")
    seed: int = 0
    num_workers: int = Field(default=0, ge=0)
    bucketing: bool = True
    buffer_size: int = Field(default=50_000, ge=1)
    device: DeviceChoice = "auto"
    amp: bool = Field(default=True, description="mixed precision (on CUDA only)")
    progress: bool = Field(default=True, description="progress bar (on a terminal only)")
    tensorboard: bool = Field(
        default=False,
        description="TensorBoard event files in RUN/tensorboard/ from the validation records "
        "(the 'tensorboard' extra)",
    )

    @model_validator(mode="before")
    @classmethod
    def _anomaly_loss(cls, data: Any) -> Any:
        """``task: anomaly`` without a ``loss``: the reconstruction loss."""
        if isinstance(data, dict) and data.get("task") == "anomaly" and "loss" not in data:
            return {**data, "loss": {"name": "reconstruction"}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainOptions:
        if self.task not in self.loss.tasks:
            raise ValueError(f"loss '{self.loss.name}' is not a {self.task} loss")
        if (self.task == "anomaly") != bool(self.background):
            raise ValueError("train.background (the classes trained on) goes with task anomaly")
        if self.regularisers and self.task != "classification":
            raise ValueError("train.regularisers need a classification")
        if isinstance(self.val_every, int) and self.val_every < 1:
            raise ValueError("val_every must be 'epoch' or a number of steps >= 1")
        if self.buffer_size < self.batch_size:
            raise ValueError("buffer_size must be at least batch_size")
        return self


class ExperimentConfig(_Model):
    """An experiment: data config (inline once resolved), split, model, training."""

    data: DataConfig
    split: SplitSpec = Field(default_factory=SplitSpec)
    model: ModelSpec
    init: InitSpec | None = None
    train: TrainOptions = Field(default_factory=TrainOptions)

    @model_validator(mode="after")
    def _task_matches_labels(self) -> ExperimentConfig:
        labels = self.data.labels
        if labels is None:
            raise ValueError("training needs labels in the data config (data.labels)")
        if (labels.type == "custom") != (self.train.task == "regression"):
            kind = "regression targets" if labels.type == "custom" else "class labels"
            raise ValueError(f"train.task '{self.train.task}' does not fit the {kind} of data")
        n_classes = len(labels.names)
        unknown = set(self.train.background) - set(labels.names)
        if unknown:
            raise ConfigError(
                f"{sorted(unknown)} not in data.labels ({', '.join(labels.names)})",
                "train.background",
            )
        if self.train.loss.name == "llp" and n_classes != 2:
            raise ConfigError("llp needs two labels: the two mixed samples", "train.loss")
        for i, reg in enumerate(self.train.regularisers):
            where = f"train.regularisers.{i}"
            if reg.observable not in self.data.observers:
                raise ConfigError(
                    f"'{reg.observable}' is not in data.observers", f"{where}.observable"
                )
            if max(reg.signal, *reg.background) >= n_classes:
                raise ConfigError(f"class indices must be below {n_classes}", where)
        return self


class RunConfig(ExperimentConfig):
    """``config.yaml`` of a run dir: the resolved experiment and what it ran on."""

    files: list[str]
    #: explicit validation and test files (``--data-val``, ``--data-test`` by group name);
    #: None for the hash split of ``files``
    files_val: list[str] | None = None
    files_test: dict[str, list[str]] | None = None
    split_rule: str
    versions: dict[str, str]


E = TypeVar("E", bound=ExperimentConfig)


def parse_overrides(overrides: Sequence[str]) -> list[tuple[list[str], Any]]:
    """``["train.lr=1e-3", ...]`` -> ``[(["train", "lr"], 0.001), ...]``; values as YAML."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
            raise ConfigError(f"--set needs key=value with a dotted key, got '{item}'", "--set")
        parsed.append((key.strip().split("."), yaml_value(text)))
    return parsed


def _apply(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                "is not a mapping, cannot set a key below it", ".".join(path[: i + 1])
            )
        node = child
    node[path[-1]] = value


def validate_experiment(
    data: dict[str, Any],
    source: str,
    schema: type[E] = ExperimentConfig,  # type: ignore[assignment]
) -> E:
    """Validate a resolved experiment mapping into ``schema``; the first problem becomes a
    :class:`ConfigError` naming its dotted key (and ``source``, the file)."""
    return validate(schema, data, source=source)


def load_experiment(
    path: str | Path, overrides: Sequence[str] = (), flags: ModelFlags | None = None
) -> ExperimentConfig:
    """Read an experiment YAML, inline its data config, apply the command's model ``flags``
    and the ``--set`` overrides, validate.

    Relative ``data``, ``model.network`` and ``init.weights`` paths are resolved against
    the experiment file's folder (``model.network`` and ``init.weights`` are stored
    absolute).
    """
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"an experiment must be a mapping (in {path})")
    data = json.loads(json.dumps(raw))  # a deep, plain copy
    if isinstance(data.get("data"), str):
        try:
            data["data"] = load_yaml(path.parent / data["data"])
        except ConfigError as err:
            raise ConfigError(str(err), "data") from None
    _apply_flags(data, flags or ModelFlags())
    for keys, value in parse_overrides(overrides):
        _apply(data, keys, value)
    for section, key in (("model", "network"), ("init", "weights")):
        node = data.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = str((path.parent / node[key]).absolute())
    if isinstance(data.get("data"), dict):  # data-config problems, with the data stage's keys
        try:
            load_config(data["data"])
        except ConfigError as err:
            message = str(err).removeprefix(f"{err.key}: ")
            raise ConfigError(
                f"{message} (in {path})", f"data.{err.key}" if err.key else "data"
            ) from None
    return validate_experiment(data, str(path))


def _apply_flags(data: dict[str, Any], flags: ModelFlags) -> None:
    """Put the command's model flags into the raw experiment (see :class:`ModelFlags`)."""
    if flags.network is not None:
        network = Path(flags.network).absolute()
        data["model"] = {"name": network.stem, "network": str(network)}
    if flags.weights is not None:
        init = data.get("init")
        weights = str(Path(flags.weights).absolute())
        data["init"] = {**(init if isinstance(init, dict) else {}), "weights": weights}
    if flags.strict is None and not flags.freeze:
        return
    if not isinstance(data.get("init"), dict):
        raise ConfigError(
            "--strict / --no-strict / --freeze need pre-trained weights (--load-model-weights "
            "or the experiment's init.weights)",
            "--load-model-weights",
        )
    if flags.strict is not None:
        data["init"]["strict"] = flags.strict
    if flags.freeze:
        data["init"]["freeze"] = list(flags.freeze)
