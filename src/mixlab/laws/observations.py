"""Observations of proxy runs: `runs.csv` (long format, see `mixlab.runs`) joined with `mixtures.csv`,
validated, as arrays. Every law consumes the in-memory `Observations` built here.

The `domain` of a runs.csv row is either a mixture domain (a per-domain loss) or, for every row of the file,
a name that is no mixture domain: a TARGET metric (a downstream task's BPB, say) of the whole mixture. Laws of
the whole mixture (dml, regmix, transfer's target form) fit targets; laws of each domain's own share (bimix,
powerlaw) refuse them (`Law.check_targets`, called by every fit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mixlab.errors import BadInput
from mixlab.mixture import Mixture, read_mixtures
from mixlab.proxy.config import read_sweep_schedule
from mixlab.proxy.schedule import LRSchedule
from mixlab.runs import RUNS_COLUMNS, read_runs


@dataclass(frozen=True)
class Observations:
    """Per-domain losses of proxy runs at their evaluation steps.

    domains:       mixture domains, length m (column order of `proportions`)
    eval_domains:  domains with losses, a subset of `domains`, or target names none of which is a domain,
                   length e (column order of `losses`)
    runs:          run names, length n_runs
    proportions:   [n_runs, m] training proportions of each run (rows sum to 1)
    point_run:     [n_points] index into `runs` of each evaluation point
    steps:         [n_points] training step of each point (> 0 for the bivariate law)
    tokens:        [n_points] training tokens seen at the point, NaN when unknown
    losses:        [n_points, e] validation loss in nats (or target value); NaN where not evaluated
    source:        where the observations came from (the runs file), for error messages
    schedule:      the learning-rate schedule every run trained under, where known (a mixlab sweep records it
                   in `sweep.json`); schedule-aware step terms need it
    Points are sorted by run, then step.
    """

    domains: tuple[str, ...]
    eval_domains: tuple[str, ...]
    runs: tuple[str, ...]
    proportions: np.ndarray
    point_run: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    losses: np.ndarray
    source: str = "observations"
    schedule: LRSchedule | None = None

    @property
    def n_points(self) -> int:
        return int(self.steps.shape[0])

    @property
    def has_targets(self) -> bool:
        """True when the eval columns are target metrics rather than per-domain losses."""
        return not set(self.eval_domains) <= set(self.domains)

    @property
    def eval_index(self) -> np.ndarray:
        """[e] column of each eval domain in `domains`/`proportions`, −1 for a target metric (no own share)."""
        return np.array(
            [self.domains.index(d) if d in self.domains else -1 for d in self.eval_domains], dtype=int
        )

    @property
    def point_proportions(self) -> np.ndarray:
        """[n_points, m] the proportions of the run each point belongs to."""
        return self.proportions[self.point_run]

    @property
    def distinct_steps(self) -> np.ndarray:
        return np.unique(self.steps)

    def mixtures(self) -> list[Mixture]:
        return [
            Mixture(run, {d: float(w) for d, w in zip(self.domains, row, strict=True)})
            for run, row in zip(self.runs, self.proportions, strict=True)
        ]

    def select_points(self, mask: np.ndarray) -> Observations:
        """The observations restricted to points where `mask` [n_points] is true (runs left empty dropped)."""
        mask = np.asarray(mask, dtype=bool)
        keep_runs = np.unique(self.point_run[mask])
        remap = np.full(len(self.runs), -1, dtype=int)
        remap[keep_runs] = np.arange(len(keep_runs))
        return Observations(
            self.domains,
            self.eval_domains,
            tuple(self.runs[i] for i in keep_runs),
            self.proportions[keep_runs],
            remap[self.point_run[mask]],
            self.steps[mask],
            self.tokens[mask],
            self.losses[mask],
            self.source,
            self.schedule,
        )

    def select_eval_domains(self, names: Sequence[str]) -> Observations:
        """Only the losses of the eval domains named (kept in `eval_domains` order); every point stays."""
        keep = [j for j, d in enumerate(self.eval_domains) if d in set(names)]
        return replace(
            self, eval_domains=tuple(self.eval_domains[j] for j in keep), losses=self.losses[:, keep]
        )

    def select_runs(self, names: Sequence[str]) -> Observations:
        """Only the runs named (each must exist; order of `names` is not kept)."""
        unknown = [n for n in names if n not in self.runs]
        if unknown:
            raise BadInput(f"run '{unknown[0]}' is not in the observations (runs: {', '.join(self.runs)})")
        wanted = {self.runs.index(n) for n in names}
        return self.select_points(np.isin(self.point_run, sorted(wanted)))

    def resample_runs(self, picks: Sequence[int]) -> Observations:
        """A bootstrap sample: run `picks[k]` copied as run k (copies renamed `name#k` so they stay distinct)."""
        runs, props, point_run, steps, tokens, losses = [], [], [], [], [], []
        for k, i in enumerate(picks):
            sel = self.point_run == i
            runs.append(f"{self.runs[i]}#{k}")
            props.append(self.proportions[i])
            point_run.append(np.full(int(sel.sum()), k, dtype=int))
            steps.append(self.steps[sel])
            tokens.append(self.tokens[sel])
            losses.append(self.losses[sel])
        return Observations(
            self.domains,
            self.eval_domains,
            tuple(runs),
            np.array(props),
            np.concatenate(point_run),
            np.concatenate(steps),
            np.concatenate(tokens),
            np.concatenate(losses),
            self.source,
            self.schedule,
        )

    def to_frame(self) -> pd.DataFrame:
        """Long format `run,step,tokens,domain,loss` (NaN losses = not evaluated are left out)."""
        rows = []
        for p in range(self.n_points):
            for j, d in enumerate(self.eval_domains):
                if np.isfinite(self.losses[p, j]):
                    rows.append(
                        (self.runs[self.point_run[p]], self.steps[p], self.tokens[p], d, self.losses[p, j])
                    )
        return pd.DataFrame(rows, columns=list(RUNS_COLUMNS))


def build_observations(
    mixtures: Sequence[Mixture],
    runs: pd.DataFrame,
    mixtures_where: str = "mixtures",
    source: str = "observations",
    schedule: LRSchedule | None = None,
) -> Observations:
    """Join validated runs (from `read_runs`) with their mixtures; `source` names the runs file; `schedule`
    is the runs' learning-rate schedule where known.

    Every run must have a mixture of the same name; the loss domains must all be mixture domains, or none
    (then they are target metrics, kept in the order they first appear).
    """
    by_name = {m.name: m for m in mixtures}
    domains = tuple(dict.fromkeys(d for m in mixtures for d in m.weights))
    for i, run in enumerate(runs["run"].to_numpy()):
        if run not in by_name:
            raise BadInput(f"{runs['where'].iloc[i]}: run '{run}' has no mixture in {mixtures_where}")
    is_domain = runs["domain"].isin(domains).to_numpy()
    if is_domain.any() and not is_domain.all():
        i = int(np.flatnonzero(~is_domain)[0])
        raise BadInput(
            f"{runs['where'].iloc[i]}: domain '{runs['domain'].iloc[i]}' is not a column of {mixtures_where} "
            f"(domains: {', '.join(domains)}; a runs file holds per-domain losses or only targets, not both)"
        )
    seen_domains, seen_runs = set(runs["domain"]), set(runs["run"])  # built once: the sweep may be large
    if is_domain.any():
        eval_domains = tuple(d for d in domains if d in seen_domains)
    else:
        eval_domains = tuple(dict.fromkeys(runs["domain"]))
    run_names = tuple(m.name for m in mixtures if m.name in seen_runs)
    run_pos = {r: k for k, r in enumerate(run_names)}
    points = runs[["run", "step"]].drop_duplicates()
    points = points.assign(k=points["run"].map(run_pos)).sort_values(["k", "step"], kind="stable")
    point_key = {(r, s): p for p, (r, s) in enumerate(zip(points["run"], points["step"], strict=True))}
    losses = np.full((len(points), len(eval_domains)), np.nan)
    tokens = np.full(len(points), np.nan)
    dom_pos = {d: j for j, d in enumerate(eval_domains)}
    for r, s, t, d, loss in zip(
        runs["run"], runs["step"], runs["tokens"], runs["domain"], runs["loss"], strict=True
    ):
        p = point_key[(r, s)]
        losses[p, dom_pos[d]] = loss
        if np.isfinite(t):
            tokens[p] = t
    proportions = np.array([by_name[r].vector(domains) for r in run_names])
    return Observations(
        domains,
        eval_domains,
        run_names,
        proportions,
        points["k"].to_numpy(dtype=int),
        points["step"].to_numpy(dtype=float),
        tokens,
        losses,
        source,
        schedule,
    )


def load_observations(
    mixtures_path: str | os.PathLike[str], runs_path: str | os.PathLike[str]
) -> Observations:
    """`mixtures.csv` + `runs.csv` (or parquet) → validated Observations; the schedule is read from the
    `sweep.json` beside the runs file where there is one (a mixlab sweep directory)."""
    return build_observations(
        read_mixtures(mixtures_path),
        read_runs(runs_path),
        str(mixtures_path),
        str(runs_path),
        read_sweep_schedule(Path(runs_path).parent / "sweep.json"),
    )
