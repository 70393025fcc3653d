"""Evaluation protocols for mixing laws (METHODS.md §1.3) and their metrics.

Protocols:
- extrapolate: for each run separately, fit on all its evaluations but the last K and predict those K
  (the BiMix paper's Table 1). Fixed-step laws cannot extrapolate in steps: reported as not applicable.
- unseen: fit on train runs, predict every evaluation of the test runs (the paper's Table 2).
- kfold: runs split into N folds; each fold is predicted by a law fitted on the others.
- horizon: one fit on the first `fit_fraction` of every run's evaluations (all runs at once), predicting the
  rest of every run: how far the law carries each loss curve, with every mixture's data pooled as a law
  that is fitted on a whole sweep pools it. Fixed-step laws: not applicable.
Metrics per eval domain over the predicted points: relative error % (mean |y − ŷ|/y·100), R² on log loss
over each test run's points (averaged over runs with ≥ 2 points), RMSE (nats), n_points, and Spearman ρ
between observed and predicted loss across test runs at each run's final predicted step (≥ 3 runs).
Law selection (`compare_laws`): every law through kfold on the same folds, fixed-step laws fitted at the
final step (the last evaluation step of the most runs), every law scored on the held-out runs' points at
that step: mean over domains of Spearman ρ of the final loss across runs, R² of log loss across runs, and
relative error; plus CPU seconds of a fit, per fold. Ranked by ρ (then R², then error); the top one is
recommended. Where the runs' schedule is known, a law with a schedule-aware step term (`step_term`) is
compared in both forms; each row's `label` tells them apart.
Summaries: mean / worst / best over domains ("worst" = largest error, smallest R² or ρ). Points where
the law's prediction is undefined (BiMix or the power law at a share of 0: an infinite loss, or 0 for
α < 0; any prediction that is not a finite positive loss) are left out of
the metrics and counted per domain as `n_undefined`; so are the points of a domain a fit had to leave out
(`Law.unfittable_domains`: e.g. BiMix in a run with a share of 0 of that domain, or training runs that all
have a share of 0), with the number of fits that left each domain out in `domains_left_out`.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mixlab.engine import Engine, map_where_it_pays
from mixlab.errors import BadInput
from mixlab.laws.base import LAWS, Law, get_law
from mixlab.laws.metrics import r2_log
from mixlab.laws.observations import Observations

PROTOCOLS = ("extrapolate", "unseen", "kfold", "horizon")
PREDICTION_COLUMNS = ("run", "step", "domain", "share", "observed", "predicted", "fold")


@dataclass
class Evaluation:
    """`metrics`: the JSON-ready metrics.json content; `predictions`: one row per predicted (point, domain)
    with columns PREDICTION_COLUMNS (empty when the protocol does not apply)."""

    metrics: dict[str, Any]
    predictions: pd.DataFrame


def evaluate_law(
    make_law: Callable[[], Law],
    obs: Observations,
    protocol: str,
    holdout_last: int = 1,
    test_runs: Sequence[str] | None = None,
    train_runs: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    fit_fraction: float = 0.5,
    engine: Engine | None = None,
) -> Evaluation:
    """Run one protocol; `make_law()` returns a fresh unfitted law (same hyper-parameters every call).

    engine: where the protocol's independent fits (one per run, or per fold) run where they pay for the
    workers' start-up (`map_where_it_pays`; default: here). The result is the same on every engine."""
    law = make_law()
    law.check_targets(obs)
    header = {"law": law.name, "hyper": law.get_params(), "protocol": protocol}
    if protocol in ("extrapolate", "horizon") and law.fixed_step:
        return Evaluation(
            {
                **header,
                "applicable": False,
                "reason": f"'{law.name}' is fitted at fixed steps and cannot extrapolate to later steps",
                "domains": {},
                "summary": None,
            },
            pd.DataFrame(columns=list(PREDICTION_COLUMNS)),
        )
    if protocol == "extrapolate":
        predictions, details = _extrapolate(make_law, obs, holdout_last, engine)
        header["holdout_last"] = holdout_last
    elif protocol == "horizon":
        predictions, details = _horizon(make_law, obs, fit_fraction)
        header["fit_fraction"] = fit_fraction
    elif protocol == "unseen":
        if not test_runs:
            raise BadInput("`protocol` unseen needs `test_runs` a,b,...")
        train = list(train_runs) if train_runs else [r for r in obs.runs if r not in set(test_runs)]
        overlap = sorted(set(train) & set(test_runs))
        if overlap:
            raise BadInput(f"run '{overlap[0]}' is in both `train_runs` and `test_runs`")
        obs.select_runs(test_runs)  # validates the names
        if not train:
            raise BadInput("no training runs left (every run is a test run)")
        law, unfit = _fit_fittable(make_law, obs.select_runs(train))
        predictions, details = _predict_fold(law, unfit, obs, list(test_runs), fold=0)
        header.update(train_runs=train, test_runs=list(test_runs))
    elif protocol == "kfold":
        splits = kfold_splits(obs, folds, seed)
        tasks = [(make_law, obs.select_runs(train)) for train, _ in splits]
        fits = map_where_it_pays(engine, _fit_task, tasks, f"{law.name} kfold")
        predictions, details = _kfold_predictions(obs, splits, fits)
        header.update(folds=folds, seed=seed)
    else:
        raise BadInput(f"unknown protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")
    domains, summary = compute_metrics(predictions, obs.eval_domains)
    return Evaluation(
        {**header, "applicable": True, **details, "domains": domains, "summary": summary}, predictions
    )


def _extrapolate(
    make_law: Callable[[], Law], obs: Observations, holdout_last: int, engine: Engine | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if holdout_last < 1:
        raise BadInput(f"`holdout_last` must be ≥ 1, got {holdout_last}")
    skipped, held_out, tasks = [], [], []
    for k, run in enumerate(obs.runs):
        in_run = obs.point_run == k
        run_steps = np.unique(obs.steps[in_run])
        if run_steps.size < holdout_last + 3:
            skipped.append(run)
            continue
        cutoff = run_steps[-holdout_last]
        tasks.append((make_law, obs.select_points(in_run & (obs.steps < cutoff))))
        held_out.append((k, in_run & (obs.steps >= cutoff)))
    parts, left_out = [], {}
    for (k, mask), fit in zip(
        held_out, map_where_it_pays(engine, _fit_task, tasks, "extrapolate per run"), strict=True
    ):
        law, unfit, _ = _fitted(fit)
        _count_left_out(left_out, dict.fromkeys(unfit, 1))
        parts.append(_predict_points(law, obs, mask, fold=k))
    if not parts:
        raise BadInput(
            f"extrapolate: no run has ≥ {holdout_last + 3} evaluation steps (need 3 to fit + {holdout_last} held out)"
        )
    details = {"skipped_runs": skipped, "skipped_points": 0, "domains_left_out": left_out}
    return pd.concat(parts, ignore_index=True), details


def _horizon(
    make_law: Callable[[], Law], obs: Observations, fit_fraction: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not (np.isfinite(fit_fraction) and 0 < fit_fraction < 1):
        raise BadInput(f"`fit_fraction` must be in (0, 1), got {fit_fraction}")
    early = np.zeros(obs.n_points, dtype=bool)
    late = np.zeros(obs.n_points, dtype=bool)
    skipped = []
    for k, run in enumerate(obs.runs):
        in_run = obs.point_run == k
        run_steps = np.unique(obs.steps[in_run])
        n_fit = int(np.floor(fit_fraction * run_steps.size))
        if n_fit < 3 or n_fit == run_steps.size:
            skipped.append(run)
            continue
        cutoff = run_steps[n_fit]
        early |= in_run & (obs.steps < cutoff)
        late |= in_run & (obs.steps >= cutoff)
    if not early.any():
        raise BadInput(
            f"horizon: no run has enough evaluations to fit on {fit_fraction:g} of them (need ≥ 3) and predict the rest"
        )
    law, unfit = _fit_fittable(make_law, obs.select_points(early))
    details = {"skipped_runs": skipped, "skipped_points": 0, "domains_left_out": dict.fromkeys(unfit, 1)}
    return _predict_points(law, obs, late, fold=0), details


def _fit_fittable(make_law: Callable[[], Law], train: Observations) -> tuple[Law | None, list[str]]:
    """A law fitted on the eval domains of `train` it can fit (None when it can fit none), and the others."""
    law = make_law()
    unfit = [d for d in train.eval_domains if d in law.unfittable_domains(train)]
    if len(unfit) == len(train.eval_domains):
        return None, unfit
    return law.fit(train.select_eval_domains([d for d in train.eval_domains if d not in unfit])), unfit


def _fit_task(task: tuple[Callable[[], Law], Observations]) -> tuple[Law | None, list[str], float] | BadInput:
    """A worker's fit: (`_fit_fittable`'s law and left-out domains, CPU seconds), or the BadInput it raised
    (handed back as a value, so that one law's failure does not cut short a map holding other laws' fits)."""
    make_law, train = task
    start = time.process_time()
    try:
        law, unfit = _fit_fittable(make_law, train)
    except BadInput as exc:
        return exc
    return law, unfit, time.process_time() - start


def _fitted(fit: tuple[Law | None, list[str], float] | BadInput) -> tuple[Law | None, list[str], float]:
    if isinstance(fit, BadInput):
        raise fit
    return fit


def kfold_splits(obs: Observations, folds: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """(train runs, test runs) of every fold: the runs permuted by `seed`, cut into `folds` parts."""
    if not 2 <= folds <= len(obs.runs):
        raise BadInput(f"`folds` must be between 2 and the number of runs ({len(obs.runs)}), got {folds}")
    order = np.random.default_rng(seed).permutation(len(obs.runs))
    splits = []
    for idx in np.array_split(order, folds):
        test = [obs.runs[i] for i in idx]
        splits.append(([r for r in obs.runs if r not in test], test))
    return splits


def _kfold_predictions(
    obs: Observations, splits: list[tuple[list[str], list[str]]], fits: list[Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    parts, details = [], {"skipped_points": 0, "domains_left_out": {}}
    for k, ((_, test), fit) in enumerate(zip(splits, fits, strict=True)):
        law, unfit, _ = _fitted(fit)
        frame, d = _predict_fold(law, unfit, obs, test, fold=k)
        parts.append(frame)
        details["skipped_points"] += d["skipped_points"]
        _count_left_out(details["domains_left_out"], d["domains_left_out"])
    return pd.concat(parts, ignore_index=True), details


def _count_left_out(counts: dict[str, int], more: dict[str, int]) -> None:
    for d, n in more.items():
        counts[d] = counts.get(d, 0) + n


def _predict_fold(
    law: Law | None, unfit: list[str], obs: Observations, test: list[str], fold: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    mask = np.isin(obs.point_run, [obs.runs.index(r) for r in test])
    skipped = 0
    if law is not None and law.fixed_step:
        fitted = np.isclose(obs.steps[:, None], law.fitted_steps[None, :]).any(axis=1)
        skipped = int((mask & ~fitted).sum())
        mask &= fitted
    details = {"skipped_points": skipped, "domains_left_out": dict.fromkeys(unfit, 1)}
    return _predict_points(law, obs, mask, fold), details


def _predict_points(law: Law | None, obs: Observations, mask: np.ndarray, fold: int) -> pd.DataFrame:
    """One row per observed (point, eval domain) of `mask`; NaN predicted for domains `law` was not fitted on."""
    r = obs.point_proportions[mask]
    pred = np.full((r.shape[0], len(obs.eval_domains)), np.nan)
    if law is not None:
        pred[:, [obs.eval_domains.index(d) for d in law.eval_domains_]] = law.predict(r, obs.steps[mask])
    share = np.full_like(pred, np.nan) if obs.has_targets else r[:, obs.eval_index]  # targets: no own share
    rows = []
    for p, point in enumerate(np.flatnonzero(mask)):
        for j, d in enumerate(obs.eval_domains):
            y = obs.losses[point, j]
            if np.isfinite(y):
                run = obs.runs[obs.point_run[point]]
                rows.append((run, obs.steps[point], d, share[p, j], y, pred[p, j], fold))
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ: Pearson correlation of average ranks (ties share their mean rank)."""
    ra = pd.Series(a).rank(method="average").to_numpy()
    rb = pd.Series(b).rank(method="average").to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def compute_metrics(
    predictions: pd.DataFrame, eval_domains: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-domain metrics and their mean / worst / best summaries (see module docstring)."""
    domains: dict[str, dict[str, Any]] = {}
    for d in eval_domains:
        sub = predictions[predictions["domain"] == d]
        if sub.empty:
            continue
        predicted = sub["predicted"].to_numpy()
        defined = np.isfinite(predicted) & (predicted > 0)
        n_undefined = int((~defined).sum())
        sub = sub[defined]
        if sub.empty:
            domains[d] = {"rel_error_pct": None, "r2_log": None, "rmse": None, "n_points": 0,
                          "spearman_final": None, "n_undefined": n_undefined}  # fmt: skip
            continue
        y, yhat = sub["observed"].to_numpy(), sub["predicted"].to_numpy()
        per_run = [r2_log(g["observed"].to_numpy(), g["predicted"].to_numpy()) for _, g in sub.groupby("run")]
        per_run = [v for v in per_run if v is not None]
        finals = sub.sort_values("step").groupby("run").tail(1)
        rho = None
        if len(finals) >= 3 and finals["observed"].nunique() > 1 and finals["predicted"].nunique() > 1:
            rho = spearman(finals["observed"].to_numpy(), finals["predicted"].to_numpy())
        domains[d] = {
            "rel_error_pct": float(np.mean(np.abs(y - yhat) / y) * 100),
            "r2_log": float(np.mean(per_run)) if per_run else None,
            "rmse": float(np.sqrt(np.mean((y - yhat) ** 2))),
            "n_points": int(y.size),
            "spearman_final": rho,
            "n_undefined": n_undefined,
        }
    summary = {
        "rel_error_pct": _summary([v["rel_error_pct"] for v in domains.values()], lower_is_better=True),
        "r2_log": _summary([v["r2_log"] for v in domains.values()], lower_is_better=False),
        "rmse": _summary([v["rmse"] for v in domains.values()], lower_is_better=True),
        "spearman_final": _summary([v["spearman_final"] for v in domains.values()], lower_is_better=False),
    }
    return domains, summary


def _summary(values: list[float | None], lower_is_better: bool) -> dict[str, float] | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None
    worst, best = (max(vals), min(vals)) if lower_is_better else (min(vals), max(vals))
    return {"mean": float(np.mean(vals)), "worst": float(worst), "best": float(best)}


@dataclass
class LawComparison:
    """`ranking`: one row per law that ran, best first ({law, hyper, spearman_final, r2_log, rel_error_pct,
    fit_seconds, n_points, n_undefined}, means over eval domains); `failed`: {law: why it could not run}."""

    step: float
    folds: int
    seed: int
    n_runs: int
    ranking: list[dict[str, Any]]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def recommended(self) -> dict[str, Any] | None:
        return self.ranking[0] if self.ranking and self.ranking[0]["spearman_final"] is not None else None

    @property
    def reason(self) -> str:
        best = self.recommended
        if best is None:
            return "no law could be scored (see `failed`)"
        text = (
            f"highest mean Spearman ρ of the final loss across held-out runs ({best['spearman_final']:.3f}) "
            f"in {self.folds}-fold cross-validation over {self.n_runs} runs at step {self.step:g}"
        )
        if len(self.ranking) > 1 and self.ranking[1]["spearman_final"] is not None:
            nxt = self.ranking[1]
            text += f"; next {nxt['label']} ({nxt['spearman_final']:.3f})"
        return text

    def to_dict(self) -> dict[str, Any]:
        best = self.recommended
        return {
            "protocol": "kfold",
            "folds": self.folds,
            "seed": self.seed,
            "step": self.step,
            "n_runs": self.n_runs,
            "ranking": self.ranking,
            "failed": self.failed,
            "recommended": None
            if best is None
            else {"law": best["law"], "label": best["label"], "hyper": best["hyper"]},
            "reason": self.reason,
        }


def final_step(obs: Observations) -> float:
    """The last evaluation step of the most runs (the later one on a tie)."""
    last = pd.Series(obs.steps).groupby(obs.point_run).max()
    counts = last.value_counts()
    return float(max(counts.index[counts == counts.max()]))


def compare_laws(
    obs: Observations,
    laws: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    step: float | None = None,
    engine: Engine | None = None,
) -> LawComparison:
    """Every law of `laws` (default: every registered law) through kfold on the same folds, scored at
    `step` (default `final_step(obs)`); see the module docstring. Every law's every fold is one fit of one
    map on `engine` (`map_where_it_pays`; default: here)."""
    names = sorted(LAWS) if laws is None else list(laws)
    unknown = [n for n in names if n not in LAWS]
    if unknown or not names:
        raise BadInput(
            f"`laws`: unknown law '{unknown[0] if unknown else ''}' (choose from {', '.join(sorted(LAWS))})"
        )
    at = final_step(obs) if step is None else float(step)
    if not np.any(np.isclose(obs.steps, at)):
        raise BadInput(f"`step` {at:g} is not an evaluation step of the runs")
    splits = kfold_splits(obs, folds, seed)
    trains = [obs.select_runs(train) for train, _ in splits]
    variants, failed = [], {}
    for name in names:
        params = inspect.signature(LAWS[name]).parameters
        hyper: dict[str, Any] = {"seed": seed} if "seed" in params else {}
        if LAWS[name].fixed_step:
            hyper["step"] = at
        forms = [hyper]
        if "step_term" in params and obs.schedule is not None:
            forms.append({**hyper, "step_term": "schedule"})
        for variant in forms:
            label = name + (" (step_term=schedule)" if variant.get("step_term") == "schedule" else "")
            make_law = functools.partial(get_law, name, **variant)
            try:
                make_law().check_targets(obs)
            except BadInput as exc:
                failed[label] = str(exc)
                continue
            variants.append((name, label, variant, make_law))
    tasks = [(make_law, train) for *_, make_law in variants for train in trains]
    fits = map_where_it_pays(engine, _fit_task, tasks, "laws x folds")
    rows = []
    for v, (name, label, variant, _) in enumerate(variants):
        mine = fits[v * folds : (v + 1) * folds]
        try:
            predictions, _ = _kfold_predictions(obs, splits, mine)
        except BadInput as exc:
            failed[label] = str(exc)
            continue
        seconds = float(np.mean([fit[2] for fit in mine]))
        scores = _final_step_scores(predictions, at)
        rows.append({"law": name, "label": label, "hyper": variant, **scores, "fit_seconds": seconds})
    rows.sort(key=_rank_key)
    return LawComparison(at, folds, seed, len(obs.runs), rows, failed)


def _final_step_scores(predictions: pd.DataFrame, step: float) -> dict[str, Any]:
    """Means over domains of ρ, R²(log) across runs and relative error %, on the points at `step`."""
    at = predictions[np.isclose(predictions["step"].to_numpy(float), step)]
    rho, r2, rel, n_points, n_undefined = [], [], [], 0, 0
    for _, sub in at.groupby("domain", sort=False):
        yhat = sub["predicted"].to_numpy()
        defined = np.isfinite(yhat) & (yhat > 0)
        n_undefined += int((~defined).sum())
        y, yhat = sub["observed"].to_numpy()[defined], yhat[defined]
        n_points += int(y.size)
        if y.size == 0:
            continue
        rel.append(float(np.mean(np.abs(y - yhat) / y) * 100))
        if y.size >= 3 and np.unique(y).size > 1 and np.unique(yhat).size > 1:
            rho.append(spearman(y, yhat))
        value = r2_log(y, yhat)
        if value is not None:
            r2.append(value)

    def mean(v: list[float]) -> float | None:
        return float(np.mean(v)) if v else None

    return {"spearman_final": mean(rho), "r2_log": mean(r2), "rel_error_pct": mean(rel),
            "n_points": n_points, "n_undefined": n_undefined}  # fmt: skip


def _rank_key(row: dict[str, Any]) -> tuple[float, float, float]:
    def value(key: str, sign: float) -> float:
        v = row[key]
        return np.inf if v is None else sign * v

    return (value("spearman_final", -1.0), value("r2_log", -1.0), value("rel_error_pct", 1.0))
