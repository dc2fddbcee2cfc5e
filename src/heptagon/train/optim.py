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
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from heptagon.train.experiment import TrainOptions

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


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
