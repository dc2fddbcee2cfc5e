"""The model zoo: one registry, one module per family.

>>> from heptagon.models import build_model
>>> model = build_model("particlenet", {"pf_points": 2, "pf_features": 7, "pf_mask": 1}, 2)
>>> logits = model(*(batch[name] for name in model.input_names))  # doctest: +SKIP

Every module of this package is imported here, so a family registers itself just by
being a file in ``heptagon/models/``.
"""

import importlib
import pkgutil

from heptagon.models.base import FitPredictModel, TorchModel
from heptagon.models.registry import Model, available_models, build_model, model_options, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "FitPredictModel",
    "Model",
    "TorchModel",
    "available_models",
    "build_model",
    "model_options",
    "register",
]
