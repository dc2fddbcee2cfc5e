"""The check every jagged model makes of a mask group it is handed.

A mask (``pf_mask``, ``sv_mask``) is made by the loader for each jagged group, or declared
by hand in the data config (a group of that name). A hand-declared one must be what the
model expects: ``(batch, 1, n)`` with the ``n`` slots of the groups it masks (the same
``length``). Anything else is a :class:`~heptagon.errors.ConfigError` naming the group,
raised before any layer runs (instead of an indexing error deep inside the model).
"""

from __future__ import annotations

import torch
from torch import Tensor

from heptagon.errors import ConfigError

__all__ = ["check_mask"]


def check_mask(model: str, name: str, mask: Tensor, **groups: Tensor) -> None:
    """Raise :class:`ConfigError` (key ``inputs.<name>``) unless ``mask`` is
    ``(batch, 1, n)`` with the batch size and ``n`` slots of each of ``groups``
    (``(batch, channels, n)`` tensors, by group name). Skipped while tracing for export,
    where the shapes are symbolic."""
    if torch.jit.is_tracing():
        return
    if mask.dim() != 3 or mask.shape[1] != 1:
        raise ConfigError(
            f"model '{model}': mask group '{name}' must be one jagged variable "
            f"(batch, 1, particles), got shape {tuple(mask.shape)}",
            key=f"inputs.{name}",
        )
    for group, x in groups.items():
        if x.dim() != 3 or x.shape[0] != mask.shape[0] or x.shape[2] != mask.shape[2]:
            raise ConfigError(
                f"model '{model}': mask group '{name}' has {mask.shape[2]} slots but "
                f"'{group}' has {x.shape[2] if x.dim() == 3 else 'no'} slots: give both "
                "the same length (or leave the mask out: the loader makes it)",
                key=f"inputs.{name}",
            )
