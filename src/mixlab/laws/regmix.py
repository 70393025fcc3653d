"""RegMix (Liu et al. 2024): LightGBM regression from mixture weights to each domain's loss, per step.

Settings for small sweeps (~10–40 runs): shallow trees (`num_leaves` 7), `min_data_in_leaf` 2 and
`min_data_in_bin` 1 so splits exist at all, one thread and `deterministic` so a seed fixes the model.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np

from mixlab.laws.base import register_law
from mixlab.laws.fixed_step import FixedStepLaw
from mixlab.laws.observations import Observations


@register_law
class RegMixLaw(FixedStepLaw):
    """LightGBM per eval domain and step. Hyper-parameters: step, min_runs, n_estimators, num_leaves,
    learning_rate, min_data_in_leaf, seed."""

    name = "regmix"

    def __init__(
        self,
        step: float | None = None,
        min_runs: int = 4,
        n_estimators: int = 100,
        num_leaves: int = 7,
        learning_rate: float = 0.1,
        min_data_in_leaf: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(step, min_runs)
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_data_in_leaf = min_data_in_leaf
        self.seed = seed

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "regression",
            "num_leaves": int(self.num_leaves),
            "learning_rate": float(self.learning_rate),
            "min_data_in_leaf": int(self.min_data_in_leaf),
            "min_sum_hessian_in_leaf": 0.0,
            "seed": int(self.seed),
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }

    def _fit_one(self, r: np.ndarray, y: np.ndarray, j: int, obs: Observations) -> Any:
        import lightgbm as lgb  # imported on use: it pulls in scikit-learn (~1 s) for every CLI start

        data = lgb.Dataset(r, y, params={"min_data_in_bin": 1, "feature_pre_filter": False, "verbose": -1})
        return lgb.train(self._lgb_params(), data, num_boost_round=int(self.n_estimators))

    def _predict_one(self, model: Any, r: np.ndarray, j: int) -> np.ndarray:
        return model.predict(r, num_threads=1)

    def _state(self) -> dict[str, Any]:
        return {
            "steps": [float(s) for s in self.steps_],
            "models": [
                {d: _pack(b) for d, b in zip(self.eval_domains_, models, strict=True)}
                for models in self.models_
            ],
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.steps_ = np.array(state["steps"], dtype=float)
        self.models_ = [[_unpack(m[d]) for d in self.eval_domains_] for m in state["models"]]


def _pack(booster: Any) -> str:
    """A LightGBM model as zlib-compressed base64 text (model strings are ~100 kB of repetitive text)."""
    return base64.b64encode(zlib.compress(booster.model_to_string().encode(), 9)).decode("ascii")


def _unpack(text: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=zlib.decompress(base64.b64decode(text)).decode())
