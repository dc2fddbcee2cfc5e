"""Start from pre-trained weights: load them into a model, freeze parameters by name.

The experiment's ``init`` section (``heptagon train --load-model-weights PATH
[--no-strict] [--freeze PATTERN]...``)::

    init:
      weights: runs/pretrained        # a run dir (its best checkpoint) or a checkpoint .pt
      strict: true                    # every tensor must match by name and shape
      freeze: ["embed.*"]             # fnmatch patterns on parameter names

A checkpoint is read with ``torch.load(weights_only=True)``
(:func:`heptagon.train.rundir.load_checkpoint`): heptagon's ``best.pt`` / ``last.pt``
(weights under ``"model"``) or a bare state dict (what weaver-core saves). Strict loading
needs every tensor of the model in the checkpoint and nothing else, shapes included.
Non-strict loading takes the tensors whose name and shape match and skips the others: a
new head for another number of classes keeps its fresh initialisation. Either way one log
line reports what was loaded, skipped (shape), missing and unexpected, and how many
parameters were frozen. Frozen parameters get no gradient and the optimizer leaves them
alone; BatchNorm running statistics still update in training mode, as in weaver-core.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from heptagon.errors import ConfigError, DataError
from heptagon.io import read_json
from heptagon.logs import get_logger
from heptagon.train.experiment import InitSpec
from heptagon.train.rundir import RunDir, load_checkpoint

__all__ = ["InitReport", "freeze", "initialise", "load_weights", "pretrained_state"]

_log = get_logger("train")


@dataclass(frozen=True)
class InitReport:
    """What :func:`initialise` did: tensor names loaded, skipped for their shape, missing
    from the checkpoint, unexpected (in the checkpoint, not in the model), and the number
    of parameter tensors and weights frozen."""

    source: Path
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    frozen_tensors: int
    frozen_weights: int
    total_weights: int

    def line(self) -> str:
        """The one-line report."""
        skipped = f" ({', '.join(self.skipped)})" if self.skipped else ""
        return (
            f"initialised from {self.source}: {len(self.loaded)} tensors loaded, "
            f"{len(self.skipped)} skipped (shape){skipped}, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected; frozen {self.frozen_tensors} parameter "
            f"tensors ({self.frozen_weights} of {self.total_weights} weights)"
        )


def pretrained_state(path: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """The checkpoint file and its model tensors: ``path`` is a run dir (its
    ``model.json``'s weights) or a checkpoint. Raises :class:`DataError` naming the file."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        if not run.model_json.exists():
            raise DataError("neither a checkpoint nor a run dir (no model.json)", path)
        path = run.root / str(read_json(run.model_json, "model description").get("weights"))
    checkpoint = load_checkpoint(path)
    state = checkpoint.get("model", checkpoint)
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise DataError("holds no model weights (a state dict of tensors)", path, "model")
    return path, state


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], strict: bool
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Copy the tensors of ``state`` that match ``model``'s by name and shape into it.

    Returns the names loaded, skipped (shape), missing and unexpected. With ``strict``
    anything but a full match raises :class:`ConfigError` (key ``init.strict``) and
    nothing is loaded; without, no tensor loaded at all does (key ``init.weights``).
    """
    own = model.state_dict()
    loaded = tuple(k for k in own if k in state and state[k].shape == own[k].shape)
    skipped = tuple(k for k in own if k in state and state[k].shape != own[k].shape)
    missing = tuple(k for k in own if k not in state)
    unexpected = tuple(k for k in state if k not in own)
    if strict and (skipped or missing or unexpected):
        parts = [
            f"{what}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
            for what, names in (
                ("other shape", skipped),
                ("missing", missing),
                ("unexpected", unexpected),
            )
            if names
        ]
        raise ConfigError(
            "the weights do not match the model (" + "; ".join(parts) + "): pass --no-strict "
            "to load the matching tensors only",
            "init.strict",
        )
    if not loaded:
        raise ConfigError("no tensor of the weights matches the model", "init.weights")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return loaded, skipped, missing, unexpected


def freeze(model: nn.Module, patterns: list[str]) -> tuple[int, int]:
    """Freeze the parameters whose name matches one of the fnmatch ``patterns``; returns
    (tensors, weights) frozen. A pattern matching nothing is a :class:`ConfigError` (key
    ``init.freeze``)."""
    named = list(model.named_parameters())
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name, _ in named):
            raise ConfigError(
                f"'{pattern}' matches no parameter of the model (e.g. {named[0][0]})"
                if named
                else "the model has no parameters",
                "init.freeze",
            )
    tensors = weights = 0
    for name, param in named:
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            param.requires_grad_(False)
            tensors, weights = tensors + 1, weights + param.numel()
    return tensors, weights


def initialise(model: nn.Module, spec: InitSpec, resumed: bool = False) -> InitReport:
    """Load ``spec.weights`` into ``model`` (not when ``resumed``: the run's checkpoint
    has them) and freeze ``spec.freeze``; logs and returns the report."""
    source = Path(spec.weights)
    loaded: tuple[str, ...] = ()
    skipped = missing = unexpected = loaded
    if not resumed:
        source, state = pretrained_state(spec.weights)
        loaded, skipped, missing, unexpected = load_weights(model, state, spec.strict)
    frozen_tensors, frozen_weights = freeze(model, list(spec.freeze))
    total = sum(p.numel() for p in model.parameters())
    report = InitReport(
        source, loaded, skipped, missing, unexpected, frozen_tensors, frozen_weights, total
    )
    _log.info(report.line())
    return report
