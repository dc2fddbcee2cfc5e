"""Optimizer and learning-rate schedule.

AdamW, with weight decay on weight matrices / kernels only (biases and normalisation
parameters, the 1-D parameters, are not decayed). The schedule is a pure function of the
optimizer step (:func:`lr_factor`), so resuming at a step gives the same learning rate:

- linear warm-up over ``warmup_steps``; then, with ``p`` the fraction of the remaining
  steps done,
- ``cosine``: ``min + (1 - min) * (1 + cos(pi p)) / 2``;
- ``flat+decay`` (weaver's): 1 until ``p = decay_start``, then exponential decay to
  ``min``;

where ``min`` is ``min_lr_ratio``, reached at the last step.

Weight averaging (``train.ema``, a recipe for small training sets): an exponential moving
average of the weights, updated after every optimizer step (:class:`WeightAverage`). The
averaged model is the one validated, kept as ``best.pt`` and so evaluated and exported.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

if TYPE_CHECKING:
    from heptagon.train.experiment import TrainOptions

__all__ = ["EMASpec", "WeightAverage", "build_optimizer", "build_scheduler", "lr_factor"]


class EMASpec(BaseModel):
    """``train.ema``: an exponential moving average of the weights::

        ema: {decay: 0.99, start_step: 100}

    After optimizer step ``t`` (1, 2, ...) the average is ``a_t = decay * a_(t-1) + (1 -
    decay) * w_t`` for ``t > start_step``, and ``a_t = w_t`` up to ``start_step`` (``a_0``
    is the initial weights). Its span is ~``1 / (1 - decay)`` steps: keep it below the
    run's steps (0.99 for a few hundred steps, 0.999 for thousands). BatchNorm running
    statistics are averaged alike; integer buffers (step counts) are copied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decay: float = Field(gt=0, lt=1, description="weight of the previous average per step")
    start_step: int = Field(
        default=0, ge=0, description="optimizer steps before averaging (the average is w)"
    )


class WeightAverage:
    """The exponential moving average of :class:`EMASpec` of a model's weights.

    ``module`` is a copy of the model (eval mode, no gradients) holding the average;
    :meth:`update` after each optimizer step reads the model's tensors in place (kept from
    the start: loading a state dict or an optimizer step changes them in place), in one
    ``foreach`` call. :meth:`state_dict` / :meth:`load_state_dict` for ``last.pt`` (exact
    resume)."""

    def __init__(self, model: nn.Module, spec: EMASpec) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.spec = spec
        averaged, current = self.module.state_dict(), model.state_dict()
        floating = [name for name, value in averaged.items() if value.is_floating_point()]
        self._averaged = [averaged[name] for name in floating]
        self._current = [current[name] for name in floating]
        self._copied = [(averaged[n], current[n]) for n in averaged if n not in set(floating)]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the model's weights after optimizer step ``step`` (1-based) into the
        average."""
        if step <= self.spec.start_step:
            torch._foreach_copy_(self._averaged, self._current)
        else:
            torch._foreach_lerp_(self._averaged, self._current, 1.0 - self.spec.decay)
        for value, new in self._copied:
            value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.module.load_state_dict(state)


def build_optimizer(model: nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (no decay on 1-D ones), in its fused form: one
    kernel for all parameters instead of a Python loop over them (the same maths; on a
    CPU the loop was up to a quarter of a ParT training step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": options.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=options.lr, fused=True)


def lr_factor(step: int, total: int, options: TrainOptions) -> float:
    """The learning rate at optimizer step ``step`` of ``total``, relative to ``lr``."""
    warmup = options.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = options.min_lr_ratio
    if options.schedule == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
    if p <= options.decay_start:
        return 1.0
    return float(floor ** ((p - options.decay_start) / (1.0 - options.decay_start)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, options: TrainOptions, total_steps: int
) -> LambdaLR:
    """A ``LambdaLR`` stepping :func:`lr_factor` once per optimizer step."""
    return LambdaLR(optimizer, partial(lr_factor, total=total_steps, options=options))
