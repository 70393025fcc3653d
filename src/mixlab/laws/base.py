"""The interface every mixing law implements, and the registry that names them.

A law is a scikit-learn-style estimator: hyper-parameters stored unchanged by `__init__` (`get_params()`
reads them back from the signature), checked in `fit`; learned state, set by `fit`, ends in `_`.
`predict(mixtures, steps)` returns losses [n, e] for the e eval domains it was fitted on.
Fixed-step laws (`fixed_step = True`) predict only at the steps they were fitted on.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from mixlab.errors import BadInput, NotFittedError
from mixlab.files import read_json
from mixlab.laws.observations import Observations
from mixlab.mixture import Mixture
from mixlab.proxy.schedule import LRSchedule


class Law:
    """Base class. Subclasses set `name`, `fixed_step`, `solver`, implement `_fit`, `_predict`, `_state`,
    `_load`; their `__init__` stores each keyword as the attribute of the same name."""

    name: ClassVar[str] = ""
    fixed_step: ClassVar[bool] = False
    # how `laws.optimize` finds the optimum: "power" (the law has `separable_power(step)`), "dml" (it has
    # `coefficients_at(step)`), "coupled" (smooth in the whole mixture; `loss_gradient(r, step)` [e, m] if
    # it has one) or "simulation" (only `predict`)
    solver: ClassVar[str] = "simulation"
    own_share: ClassVar[bool] = False  # each domain's loss is a function of its own share (no targets)
    domains_: tuple[str, ...]
    eval_domains_: tuple[str, ...]
    fit_report_: dict[str, Any]

    # --- the estimator API ---------------------------------------------------------------------------
    def fit(self, obs: Observations) -> Law:
        self.check_params()
        if obs.n_points == 0 or not obs.eval_domains:
            raise BadInput(f"{self.name}: no observations to fit")
        self.check_targets(obs)
        self.domains_ = obs.domains
        self.eval_domains_ = obs.eval_domains
        # least squares on [runs, coefficients] matrices: BLAS threads only contend (one DML domain of
        # RegMix's 512-run sweep: 3.9 s with OpenBLAS threads on 2 loaded cores, 0.46 s with one)
        with threadpool_limits(1, user_api="blas"):
            self._fit(obs)
        return self

    def predict(
        self, mixtures: Sequence[Mixture] | np.ndarray, steps: float | Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Predicted loss [n, e] of `mixtures` (Mixtures or [n, m] proportions in `self.domains_` order)
        at `steps` (a scalar or [n]; one mixture with [n] steps gives its curve)."""
        check_is_fitted(self)
        r = self.proportions_matrix(mixtures)
        s = np.atleast_1d(np.asarray(steps, dtype=float))
        if r.shape[0] == 1 and s.size > 1:
            r = np.repeat(r, s.size, axis=0)
        if s.size not in (1, r.shape[0]):
            raise BadInput(f"law '{self.name}': {r.shape[0]} mixtures but {s.size} steps")
        s = np.broadcast_to(s, (r.shape[0],)).copy()
        if self.fixed_step:
            self.check_steps(s)
        return self._predict(r, s)

    @property
    def params(self) -> dict[str, Any]:
        """Learned coefficients (JSON-ready)."""
        check_is_fitted(self)
        return self._state()

    def get_params(self) -> dict[str, Any]:
        """The `__init__` keywords as given (scikit-learn's rule: read back from the signature)."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def check_params(self) -> None:
        """Raise BadInput on a hyper-parameter no fit can use (`fit` calls it; `get_law` too, early)."""

    def check_targets(self, obs: Observations) -> None:
        """Raise BadInput if `obs` has targets (eval names that are not mixture domains) and this law
        predicts each loss from its own domain's share (`own_share`), which a target does not have."""
        targets = [d for d in obs.eval_domains if d not in obs.domains]
        if targets and self.own_share:
            raise BadInput(
                f"{obs.source}: target '{targets[0]}' is not a mixture domain: `law` '{self.name}' predicts each "
                f"domain's loss from its own share, so '{targets[0]}' is a target it cannot fit (use a "
                "whole-mixture law: dml, regmix, transfer)"
            )

    def unfittable_domains(self, obs: Observations) -> dict[str, str]:
        """Eval domains of `obs` this law cannot fit, each with the reason (e.g. too few points with a
        positive share where the law is undefined at share 0). Evaluation protocols fit the other domains
        and count the left-out domain's points as undefined; `fit` raises on them."""
        return {}

    def coefficients(self) -> dict[str, float]:
        """Flat named numeric coefficients (for bootstrap intervals); empty for non-parametric laws."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self)
        return {
            "law": self.name,
            "hyper": self.get_params(),
            "domains": list(self.domains_),
            "eval_domains": list(self.eval_domains_),
            "params": self._state(),
            "fit_report": self.fit_report_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Law:
        law = cls(**d.get("hyper", {}))
        law.check_params()
        law.domains_ = tuple(d["domains"])
        law.eval_domains_ = tuple(d["eval_domains"])
        law.fit_report_ = d.get("fit_report", {})
        law._load(d["params"])
        return law

    # --- shared helpers ------------------------------------------------------------------------------
    @property
    def fitted_steps(self) -> np.ndarray:
        """Steps a fixed-step law can predict at (empty for laws continuous in steps)."""
        return np.array([], dtype=float)

    def check_steps(self, steps: np.ndarray) -> None:
        known = self.fitted_steps
        for s in np.unique(steps):
            if not np.any(np.isclose(known, s, rtol=1e-9, atol=1e-9)):
                shown = ", ".join(f"{k:g}" for k in known[:12]) + (" ..." if len(known) > 12 else "")
                raise BadInput(
                    f"law '{self.name}' is a fixed-step law fitted at steps [{shown}]; it cannot predict "
                    f"step {s:g} (pick one of those steps, or use bimix to extrapolate in steps)"
                )

    def step_index(self, step: float) -> int:
        self.check_steps(np.array([step]))
        return int(np.argmin(np.abs(self.fitted_steps - step)))

    def proportions_matrix(self, mixtures: Sequence[Mixture] | np.ndarray) -> np.ndarray:
        if isinstance(mixtures, np.ndarray):
            r = np.atleast_2d(np.asarray(mixtures, dtype=float))
            if r.shape[1] != len(self.domains_):
                raise BadInput(
                    f"law '{self.name}': proportions have {r.shape[1]} columns, law has {len(self.domains_)} domains"
                )
            return r
        rows = []
        for m in mixtures:
            extra = [d for d, w in m.weights.items() if w > 0 and d not in self.domains_]
            if extra:
                raise BadInput(
                    f"mixture '{m.name}': domain '{extra[0]}' was not among the law's domains ({', '.join(self.domains_)})"
                )
            rows.append(m.vector(self.domains_))
        if not rows:
            raise BadInput(f"law '{self.name}': no mixtures to predict")
        return np.array(rows)

    # --- subclass hooks ------------------------------------------------------------------------------
    def _fit(self, obs: Observations) -> None:
        raise NotImplementedError

    def _predict(self, r: np.ndarray, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


STEP_TERMS = ("plain", "schedule")


class ScheduleAwareStep:
    """For a law with the `step_term` hyper-parameter ("plain" | "schedule"): the runs' learning-rate schedule
    it was fitted under (`schedule_`, None for the plain term), kept in law.json as `params.schedule`."""

    name: ClassVar[str]
    step_term: str
    schedule_: LRSchedule | None

    def check_step_term(self) -> None:
        if self.step_term not in STEP_TERMS:
            raise BadInput(
                f"{self.name}: step_term must be one of {', '.join(STEP_TERMS)} (got '{self.step_term}')"
            )

    def fit_schedule(self, obs: Observations) -> None:
        if self.step_term == "schedule" and obs.schedule is None:
            raise BadInput(
                f"{obs.source}: {self.name}: step_term 'schedule' needs the runs' learning-rate schedule, and "
                "none is known (a mixlab sweep records it in sweep.json beside runs.csv)"
            )
        self.schedule_ = obs.schedule if self.step_term == "schedule" else None

    def schedule_state(self) -> dict[str, Any]:
        return {} if self.schedule_ is None else {"schedule": self.schedule_.to_dict()}

    def load_schedule(self, state: dict[str, Any]) -> None:
        self.schedule_ = LRSchedule.from_dict(state["schedule"]) if self.step_term == "schedule" else None

    def anneal(self, steps: np.ndarray) -> np.ndarray | None:
        """1 − η(s) at each step for the schedule-aware term; None for the plain one."""
        return None if self.schedule_ is None else 1.0 - self.schedule_.multipliers(steps)


def anneal_free(steps: np.ndarray, anneal: np.ndarray | None) -> bool:
    """Whether a fit can identify D: the schedule changes over the fitted steps, and there are ≥ 3 of them."""
    return anneal is not None and np.unique(steps).size >= 3 and float(np.ptp(anneal)) > 1e-9


def check_is_fitted(law: Law) -> None:
    """Raise NotFittedError unless `law` was fitted (or loaded from a law file)."""
    if not hasattr(law, "eval_domains_"):
        raise NotFittedError(f"law '{law.name}' is not fitted")


LAWS: dict[str, type[Law]] = {}


def register_law(cls: type[Law]) -> type[Law]:
    LAWS[cls.name] = cls
    return cls


def get_law(name: str, **hyper: Any) -> Law:
    """A fresh, unfitted law by name (`bimix`, `dml`, `regmix`, `powerlaw`) with hyper-parameters."""
    if name not in LAWS:
        raise BadInput(f"unknown law '{name}' (choose from {', '.join(sorted(LAWS))})")
    try:
        law = LAWS[name](**hyper)
    except TypeError as exc:
        raise BadInput(f"law '{name}': bad hyper-parameter ({exc})") from None
    law.check_params()
    return law


def law_from_dict(d: dict[str, Any], where: str = "law") -> Law:
    if not isinstance(d, dict) or d.get("law") not in LAWS:
        raise BadInput(
            f"{where}: not a mixlab law file (field 'law' must be one of {', '.join(sorted(LAWS))})"
        )
    try:
        return LAWS[d["law"]].from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{where}: malformed law file ({type(exc).__name__}: {exc})") from None


def load_law(path: str | os.PathLike[str]) -> Law:
    path = Path(path)
    return law_from_dict(read_json(path, "law"), str(path))
