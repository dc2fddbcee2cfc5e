"""The run directory written by ``heptagon train`` and read by evaluate / export / publish.

::

    RUN/
      config.yaml          the resolved experiment (RunConfig): data config inline, split
                           fractions and rule, model, every training option, files, versions
      model.json           enough to rebuild the model without the experiment schema
      preprocess.json      the standardisation (heptagon.data.Preprocess)
      history.jsonl        one object per validation (docs/design.md keys)
      checkpoints/last.pt  full training state (resume); torch models only
      checkpoints/best.pt  weights of the lowest validation loss (BDT: best.json)

Every file is written atomically (``*.tmp`` then ``os.replace``); checkpoints hold only
tensors and plain types, so they load with ``torch.load(weights_only=True)``.

``model.json``::

    {"schema_version": 1, "format": "heptagon-model", "name": "particlenet-lite",
     "options": {...every option...}, "input_dims": {"pf_points": 2, ...},
     "input_names": ["pf_points", "pf_features", "pf_mask"], "num_classes": 2,
     "class_names": ["QCD", "Tbqq"], "task": "classification",
     "weights": "checkpoints/best.pt", "network": null}

(:class:`heptagon.artifacts.run.ModelInfo`; ``network`` records a user's network file.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import nn

from heptagon.artifacts.run import ModelInfo, NetworkRecord
from heptagon.config import load_yaml
from heptagon.data.preprocess import Preprocess
from heptagon.errors import DataError, first_line
from heptagon.io import atomic_path, sha256sum
from heptagon.models import Model, build_model
from heptagon.train.experiment import RunConfig, validate_experiment
from heptagon.train.network import rebuild_network

__all__ = [
    "LoadedRun",
    "RunDir",
    "RunSummary",
    "load_checkpoint",
    "load_run",
    "model_info",
    "save_checkpoint",
    "write_yaml_atomic",
]

@dataclass(frozen=True)
class RunDir:
    """The paths of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        """``config.yaml``."""
        return self.root / "config.yaml"

    @property
    def model_json(self) -> Path:
        """``model.json``."""
        return self.root / "model.json"

    @property
    def preprocess(self) -> Path:
        """``preprocess.json``."""
        return self.root / "preprocess.json"

    @property
    def history(self) -> Path:
        """``history.jsonl``."""
        return self.root / "history.jsonl"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``."""
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        """``checkpoints/last.pt``: the full state to resume from."""
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        """``checkpoints/best.pt``: weights of the best validation loss."""
        return self.checkpoints / "best.pt"

    def make(self) -> None:
        """Create the directory and ``checkpoints/``."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def write_model_info(self, info: ModelInfo) -> None:
        """Write ``model.json`` (see :func:`model_info`)."""
        info.write(self.model_json)

    def write_history(self, records: list[dict[str, Any]]) -> None:
        """Rewrite ``history.jsonl`` with ``records`` (atomically)."""
        with atomic_path(self.history) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_yaml_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` (plain types) as block-style YAML, keys in insertion order, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` atomically (tensors and plain types only)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError("checkpoint not found", path) from None
    except OSError as err:
        raise DataError(f"cannot read the checkpoint: {err.strerror}", path) from None
    except Exception:  # torch's text about a bad file would advise unsafe loading
        raise DataError(
            "corrupt or truncated: not a checkpoint that loads as plain tensors", path
        ) from None
    if not isinstance(state, dict):
        raise DataError("not a heptagon checkpoint", path)
    return state


@dataclass(frozen=True)
class RunSummary:
    """What a training run did. ``model`` is the model at the end of training (the best
    weights are in the run dir: :func:`heptagon.train.load_run`)."""

    run_dir: Path
    model: Model
    steps: int
    epochs: int
    best_val_loss: float
    stopped_early: bool
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class LoadedRun:
    """A trained run, ready to evaluate or export.

    ``model``: the best weights, in eval mode (a torch module, or the BDT);
    ``info``: ``model.json``; ``config``: ``config.yaml``.
    """

    root: Path
    model: Model
    info: ModelInfo
    preprocess: Preprocess
    config: RunConfig

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class (or regression target) names, in output order."""
        return tuple(self.info.class_names)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's inputs, in ``forward`` (and ONNX) order."""
        return tuple(self.info.input_names)

    def checkpoint_sha256(self) -> str:
        """The sha256 of the checkpoint the weights come from (``model.json``'s ``weights``:
        the best checkpoint, or the BDT's model file): what an export or an evaluation
        records, so that a later step can tell whether it was made from these weights."""
        path = self.root / self.info.weights
        try:
            return sha256sum(path)
        except OSError as err:
            raise DataError(f"cannot read the checkpoint ({err})", path) from None


def model_info(
    name: str,
    options: dict[str, Any],
    input_names: Sequence[str],
    num_classes: int,
    input_dims: dict[str, int],
    class_names: list[str],
    task: Literal["classification", "regression", "anomaly"],
    weights: str,
    network: NetworkRecord | None = None,
) -> ModelInfo:
    """The ``model.json`` content (options made JSON-plain); ``network``: the record of the
    user's network file the model comes from."""
    return ModelInfo(
        name=name,
        options=json.loads(json.dumps(options)),
        input_dims=input_dims,
        input_names=list(input_names),
        num_classes=num_classes,
        class_names=class_names,
        task=task,
        weights=weights,
        network=network,
    )


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run dir: the model with its best weights (eval mode), ``model.json``,
    ``preprocess.json`` and ``config.yaml``. Raises :class:`DataError` naming the file."""
    run = RunDir(Path(run_dir))
    if not run.model_json.exists():
        raise DataError("not a run dir (no model.json)", run.model_json)
    info = ModelInfo.read(run.model_json)
    config = validate_experiment(load_yaml(run.config), str(run.config), RunConfig)
    model: Model
    if info.network is not None:  # a user's network file: only one the user named again
        model = rebuild_network(info.network.to_json(), config.data, info.options, run.root)
    else:
        model = build_model(info.name, info.input_dims, info.num_classes, **info.options)
    weights = run.root / info.weights
    if isinstance(model, nn.Module):
        state = load_checkpoint(weights)
        try:
            model.load_state_dict(state["model"])
        except (KeyError, TypeError, RuntimeError) as err:
            why = first_line(err)
            raise DataError(
                f"weights do not fit the model of model.json ({why})", weights
            ) from None
        model.eval()
    else:
        if not weights.exists():
            raise DataError("model weights not found", weights)
        model.load(weights)
    return LoadedRun(run.root, model, info, Preprocess.load(run.preprocess), config)
