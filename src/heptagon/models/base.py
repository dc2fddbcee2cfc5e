"""What every heptagon model declares: its input groups, and the fit/predict protocol of
models that are not ``torch.nn.Module`` (the BDT).

Input groups follow weaver-core's channels-first layout:

- jagged groups ``(batch, n_vars, n_particles)`` float32, e.g. ``pf_points`` (deta, dphi),
  ``pf_features``, ``pf_vectors`` (px, py, pz, energy), ``sv_features``;
- masks ``(batch, 1, n_particles)`` with 1.0 for real particles and 0.0 for padding
  (``pf_mask``, ``sv_mask``); padded slots hold zeros;
- flat groups ``(batch, n_vars)``, e.g. ``jet_features``.

A model's ``input_names`` is the order its ``forward`` (or ``predict``) takes the groups,
which is also the ONNX input order: call it as ``model(*(batch[n] for n in model.input_names))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from torch import nn

from heptagon.errors import ConfigError

__all__ = ["GROUP_DIMS", "FitPredictModel", "TorchModel", "check_option", "resolve_inputs"]

#: Groups whose number of variables is fixed by the convention.
GROUP_DIMS: Mapping[str, int] = {"pf_mask": 1, "sv_mask": 1, "pf_vectors": 4}


def resolve_inputs(
    model: str,
    input_dims: Mapping[str, int],
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Check ``input_dims`` against a model's groups and return the groups it will use.

    Every group in ``required`` must be present; the groups of ``optional`` are used when
    present. The result keeps the declared order (required first, then optional), which is
    the order of the model's ``forward``. Groups in ``input_dims`` that the model does not
    use are ignored. Raises :class:`ConfigError` (key ``inputs.<group>``) for a missing
    group or a group with the wrong number of variables.
    """
    for group in required:
        if group not in input_dims:
            have = ", ".join(sorted(input_dims)) or "none"
            raise ConfigError(
                f"model '{model}' needs input group '{group}' (it takes "
                f"{', '.join(required + optional)}); the inputs provide: {have}",
                key=f"inputs.{group}",
            )
    used = tuple(g for g in required + optional if g in input_dims)
    for group in used:
        dim = input_dims[group]
        expected = GROUP_DIMS.get(group)
        if (expected is not None and dim != expected) or dim < 1:
            want = expected if expected is not None else ">= 1"
            raise ConfigError(
                f"model '{model}': input group '{group}' has {dim} variables, expected {want}",
                key=f"inputs.{group}",
            )
    return used


class TorchModel(nn.Module):
    """Base of heptagon's torch models.

    Subclasses set ``required_inputs`` (and ``optional_inputs``, trailing arguments of
    ``forward`` that default to ``None``) and assign ``self.input_names`` from
    :func:`resolve_inputs`. ``forward`` returns ``(batch, num_classes)`` logits (one column
    for a regression), except for the autoencoder, which returns its reconstruction.
    """

    required_inputs: ClassVar[tuple[str, ...]]
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    input_names: tuple[str, ...]
    num_classes: int


@runtime_checkable
class FitPredictModel(Protocol):
    """A model trained by its own ``fit`` rather than by gradient steps (e.g. the BDT).

    Inputs are mappings from group name to ``numpy`` arrays in the same layout as for the
    torch models (only the groups of ``input_names`` are read). ``predict`` returns
    ``(n, num_classes)`` float32 logits, so a trainer or evaluator treats its output like a
    torch model's: softmax (or sigmoid) gives probabilities.
    """

    input_names: tuple[str, ...]
    num_classes: int

    def fit(
        self,
        inputs: Mapping[str, npt.NDArray[np.floating]],
        labels: npt.NDArray[np.generic],
        weights: npt.NDArray[np.floating] | None = None,
        eval_inputs: Mapping[str, npt.NDArray[np.floating]] | None = None,
        eval_labels: npt.NDArray[np.generic] | None = None,
        eval_weights: npt.NDArray[np.floating] | None = None,
    ) -> FitPredictModel:
        """Train on integer class labels (float targets for a regression); returns self.

        With an evaluation set, training stops early when its loss stops improving.
        """
        ...

    def predict(self, inputs: Mapping[str, npt.NDArray[np.floating]]) -> npt.NDArray[np.float32]:
        """Return ``(n, num_classes)`` logits (regression: ``(n, 1)`` predictions)."""
        ...

    def save(self, path: str | PathLike[str]) -> None:
        """Write the trained model to ``path`` (restored by :meth:`load`)."""
        ...

    def load(self, path: str | PathLike[str]) -> None:
        """Restore a model written by :meth:`save` into this (identically built) model."""
        ...


def check_option(condition: bool, option: str, message: str) -> None:
    """Raise :class:`ConfigError` with key ``options.<option>`` unless ``condition``."""
    if not condition:
        raise ConfigError(message, key=f"options.{option}")
