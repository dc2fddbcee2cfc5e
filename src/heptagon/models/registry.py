"""The model registry: names -> builders.

A family registers its model class (or any builder with the signature
``builder(input_dims, num_classes, **options)``) under one or more names, each with its own
default options::

    @register("particlenet-lite", k=7, ...)
    @register("particlenet")
    class ParticleNet(TorchModel): ...

The package ``heptagon.models`` imports every module in it, so a new family file is found
without a change anywhere else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

from torch import nn

from heptagon.errors import ConfigError, ModelError
from heptagon.models.base import FitPredictModel

__all__ = ["Model", "available_models", "build_model", "model_options", "register"]

#: What :func:`build_model` returns: a torch module or a fit/predict model (the BDT).
Model: TypeAlias = nn.Module | FitPredictModel

_Builder = TypeVar("_Builder", bound=Callable[..., Model])

_REGISTRY: dict[str, tuple[Callable[..., Model], dict[str, Any]]] = {}


def register(name: str, **defaults: Any) -> Callable[[_Builder], _Builder]:
    """Register ``builder(input_dims, num_classes, **options)`` under ``name``.

    ``defaults`` override the builder's own keyword defaults for this name (this is how a
    "lite" variant shares its family's class). Returns the builder unchanged.
    """

    def decorator(builder: _Builder) -> _Builder:
        if name in _REGISTRY:
            raise ModelError(f"model name '{name}' is registered twice")
        unknown = set(defaults) - set(_option_defaults(builder))
        if unknown:
            raise ModelError(f"model '{name}': unknown default option(s) {sorted(unknown)}")
        _REGISTRY[name] = (builder, dict(defaults))
        return builder

    return decorator


def available_models() -> tuple[str, ...]:
    """The registered model names, sorted."""
    return tuple(sorted(_REGISTRY))


def model_options(name: str) -> dict[str, Any]:
    """The options of model ``name`` with their defaults (what ``build_model`` accepts)."""
    builder, defaults = _lookup(name)
    return {**_option_defaults(builder), **defaults}


def build_model(
    name: str, input_dims: Mapping[str, int], num_classes: int, **options: Any
) -> Model:
    """Build model ``name`` for inputs with ``input_dims`` variables per group.

    Raises :class:`ModelError` for an unknown name (listing the known ones) and
    :class:`ConfigError` for an unknown option (key ``options.<name>``), a missing input
    group or one with the wrong width (key ``inputs.<group>``), or a bad ``num_classes``.
    """
    builder, defaults = _lookup(name)
    known = _option_defaults(builder)
    for option in options:
        if option not in known:
            raise ConfigError(
                f"model '{name}' has no option '{option}'; its options are: "
                + ", ".join(sorted(known)),
                key=f"options.{option}",
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"must be a positive integer, got {num_classes!r}", key="num_classes")
    return builder(dict(input_dims), num_classes, **{**defaults, **options})


def _lookup(name: str) -> tuple[Callable[..., Model], dict[str, Any]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model '{name}'; available models: {', '.join(available_models())}"
        ) from None


def _option_defaults(builder: Callable[..., Model]) -> dict[str, Any]:
    """Keyword-only parameters of a builder and their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
