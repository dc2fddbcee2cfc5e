"""Boosted decision trees (XGBoost, ``hist`` method) on flat high-level features
(``jet_features``, e.g. m_SD, tau21, tau32, n constituents), behind the
:class:`~heptagon.models.base.FitPredictModel` protocol.

``predict`` returns logits like the torch models: for two classes ``[0, margin]`` (softmax
of which is the XGBoost probability), for more the per-class margins, for a regression
(``num_classes == 1``) the prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from heptagon.errors import DataError, ModelError
from heptagon.io import atomic_path
from heptagon.models.base import check_option, resolve_inputs
from heptagon.models.registry import register

__all__ = ["BDT"]


@register("bdt")
class BDT:
    """XGBoost on ``jet_features``; see :class:`~heptagon.models.base.FitPredictModel`.

    Options: ``n_estimators`` (maximum rounds), ``max_depth``, ``learning_rate``,
    ``subsample``, ``colsample_bytree``, ``min_child_weight``, ``early_stopping_rounds``
    (on the evaluation set, when given), ``n_jobs`` (None: all cores), ``seed``.

    ``booster`` is the trained ``xgboost.Booster`` (None before :meth:`fit` or :meth:`load`);
    after early stopping its ``best_iteration`` marks the rounds :meth:`predict` uses.
    """

    required_inputs = ("jet_features",)

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        n_estimators: int = 500,
        max_depth: int = 6,
        learning_rate: float = 0.1,
        subsample: float = 0.8,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        early_stopping_rounds: int = 20,
        n_jobs: int | None = None,
        seed: int = 0,
    ) -> None:
        self.input_names = resolve_inputs("bdt", input_dims, self.required_inputs)
        self.num_classes = num_classes
        check_option(n_estimators >= 1, "n_estimators", f"must be >= 1, got {n_estimators}")
        check_option(max_depth >= 1, "max_depth", f"must be >= 1, got {max_depth}")
        check_option(0 < learning_rate <= 1, "learning_rate", "must be in (0, 1]")
        check_option(0 < subsample <= 1, "subsample", "must be in (0, 1]")
        check_option(0 < colsample_bytree <= 1, "colsample_bytree", "must be in (0, 1]")
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.params: dict[str, Any] = {
            "tree_method": "hist",
            "max_depth": max_depth,
            "eta": learning_rate,
            "subsample": subsample,
            "colsample_bytree": colsample_bytree,
            "min_child_weight": min_child_weight,
            "seed": seed,
        }
        if n_jobs is not None:
            self.params["nthread"] = n_jobs
        if num_classes == 1:
            self.params["objective"] = "reg:squarederror"
        elif num_classes == 2:
            self.params["objective"] = "binary:logistic"
        else:
            self.params.update(objective="multi:softprob", num_class=num_classes)
        self.booster: xgb.Booster | None = None

    def _matrix(
        self,
        inputs: Mapping[str, npt.NDArray[np.floating]],
        labels: npt.NDArray[np.generic] | None = None,
        weights: npt.NDArray[np.floating] | None = None,
    ) -> xgb.DMatrix:
        return xgb.DMatrix(np.asarray(inputs["jet_features"]), label=labels, weight=weights)

    def fit(
        self,
        inputs: Mapping[str, npt.NDArray[np.floating]],
        labels: npt.NDArray[np.generic],
        weights: npt.NDArray[np.floating] | None = None,
        eval_inputs: Mapping[str, npt.NDArray[np.floating]] | None = None,
        eval_labels: npt.NDArray[np.generic] | None = None,
        eval_weights: npt.NDArray[np.floating] | None = None,
    ) -> BDT:
        """Train; with an evaluation set, stop after ``early_stopping_rounds`` rounds
        without improvement and keep the best iteration."""
        train = self._matrix(inputs, labels, weights)
        evals = []
        if eval_inputs is not None:
            evals.append((self._matrix(eval_inputs, eval_labels, eval_weights), "eval"))
        self.booster = xgb.train(
            self.params,
            train,
            num_boost_round=self.n_estimators,
            evals=evals,
            early_stopping_rounds=self.early_stopping_rounds if evals else None,
            verbose_eval=False,
        )
        return self

    def predict(self, inputs: Mapping[str, npt.NDArray[np.floating]]) -> npt.NDArray[np.float32]:
        """Logits ``(n, num_classes)`` (regression: ``(n, 1)`` predictions)."""
        if self.booster is None:
            raise ModelError("the BDT is not trained: call fit() or load() first")
        data = self._matrix(inputs)
        best = getattr(self.booster, "best_iteration", None)
        rounds = (0, best + 1) if best is not None else (0, 0)
        margin = self.booster.predict(data, output_margin=True, iteration_range=rounds)
        margin = np.asarray(margin, dtype=np.float32)
        if self.num_classes == 2:
            return np.stack([np.zeros_like(margin), margin], axis=1)
        return margin.reshape(len(margin), self.num_classes)

    def save(self, path: str | PathLike[str]) -> None:
        """Write the booster as XGBoost JSON, atomically."""
        if self.booster is None:
            raise ModelError("the BDT is not trained: nothing to save")
        with atomic_path(Path(path)) as tmp:
            tmp.write_bytes(self.booster.save_raw(raw_format="json"))

    def load(self, path: str | PathLike[str]) -> None:
        """Restore a booster written by :meth:`save`; :class:`DataError` naming the file if
        it is not one (corrupt, truncated)."""
        try:
            self.booster = xgb.Booster(model_file=path)
        except ValueError:  # XGBoostError, UnicodeDecodeError: their text is a C++ trace
            raise DataError("corrupt or truncated: not an XGBoost JSON model", Path(path)) from None
