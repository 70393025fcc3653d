"""Observations of proxy runs: `runs.csv` (long format) joined with `mixtures.csv`, validated, as arrays.

`runs.csv` columns: `run,step,tokens,domain,loss` — one row per (run, evaluation step, validation domain);
`tokens` may be empty. Parquet with the same columns is accepted wherever a CSV is. Loss is mean token
cross-entropy in nats. Every law consumes the in-memory `Observations` built here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mixlab.errors import BadInput
from mixlab.files import atomic_path
from mixlab.mixture import Mixture, read_mixtures

RUNS_COLUMNS = ("run", "step", "tokens", "domain", "loss")


@dataclass(frozen=True)
class Observations:
    """Per-domain losses of proxy runs at their evaluation steps.

    domains:       mixture domains, length m (column order of `proportions`)
    eval_domains:  domains with losses, a subset of `domains`, length e (column order of `losses`)
    runs:          run names, length n_runs
    proportions:   [n_runs, m] training proportions of each run (rows sum to 1)
    point_run:     [n_points] index into `runs` of each evaluation point
    steps:         [n_points] training step of each point (> 0 for the bivariate law)
    tokens:        [n_points] training tokens seen at the point, NaN when unknown
    losses:        [n_points, e] validation loss in nats; NaN where a domain was not evaluated
    source:        where the observations came from (the runs file), for error messages
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

    @property
    def n_points(self) -> int:
        return int(self.steps.shape[0])

    @property
    def eval_index(self) -> np.ndarray:
        """[e] column of each eval domain in `domains`/`proportions`."""
        return np.array([self.domains.index(d) for d in self.eval_domains], dtype=int)

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


def _step_value(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def read_runs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate `runs.csv` (or `.parquet`) into a frame with columns RUNS_COLUMNS plus `where`.

    Rejects (BadInput naming file, row and field): missing columns, non-numeric or negative steps,
    non-numeric, NaN or infinite losses, empty run/domain names and duplicate (run, step, domain) rows.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: runs file does not exist")
    parquet = path.suffix in (".parquet", ".pq")
    try:
        if parquet:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: undecodable bytes (invalid UTF-8 at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        raise BadInput(
            f"{path}: cannot parse ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("run", "step", "domain", "loss") if c not in frame.columns]
    if missing:
        raise BadInput(f"{path}: missing column '{missing[0]}' (need {','.join(RUNS_COLUMNS)})")
    if frame.empty:
        raise BadInput(f"{path}: no observations (only a header)")
    first_row = 1 if parquet else 2
    label = "record" if parquet else "row"
    where = [f"{path}: {label} {i + first_row}" for i in range(len(frame))]
    if "tokens" not in frame.columns:
        frame["tokens"] = ""
    out = pd.DataFrame(
        {"run": frame["run"].astype(str).str.strip(), "domain": frame["domain"].astype(str).str.strip()}
    )
    for field in ("step", "loss", "tokens"):
        raw = frame[field]
        text = raw.astype(str).str.strip()
        missing_token = (text.isna() | text.str.lower().isin(["", "nan", "none", "null"])).astype(bool)
        values = pd.to_numeric(text.where(~missing_token, None), errors="coerce").astype(float)
        not_number = values.isna() & ~missing_token
        if not_number.any():
            i = int(np.flatnonzero(not_number.to_numpy())[0])
            raise BadInput(f"{where[i]}: field '{field}' is not a number ({raw.iloc[i]!r})")
        v = values.to_numpy()
        bad = ~np.isfinite(v) if field != "tokens" else np.isinf(v)
        if field == "loss":
            bad |= v <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "finite and positive" if field == "loss" else "a finite number"
            raise BadInput(
                f"{where[i]}: field '{field}' is {str(raw.iloc[i]).strip() or 'empty'!r} (must be {need})"
            )
        if (v < 0).any():
            i = int(np.flatnonzero(v < 0)[0])
            raise BadInput(f"{where[i]}: field '{field}' is negative ({raw.iloc[i]!r})")
        out[field] = values
    for field in ("run", "domain"):
        empty = (out[field].isna() | out[field].str.lower().isin(["", "nan", "none"])).astype(bool)
        if empty.any():
            raise BadInput(f"{where[int(np.flatnonzero(empty.to_numpy())[0])]}: empty '{field}'")
    dup = out.duplicated(["run", "step", "domain"], keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = out.iloc[rows[0]]
        twin = next(
            r
            for r in rows[1:]
            if out.iloc[r][["run", "step", "domain"]].equals(first[["run", "step", "domain"]])
        )
        raise BadInput(
            f"{where[twin]}: duplicate (run, step, domain) = ({first['run']}, {_step_value(first['step'])}, "
            f"{first['domain']}), first at {label} {rows[0] + first_row}"
        )
    out["where"] = where
    return out[[*RUNS_COLUMNS, "where"]]


def build_observations(
    mixtures: Sequence[Mixture],
    runs: pd.DataFrame,
    mixtures_where: str = "mixtures",
    source: str = "observations",
) -> Observations:
    """Join validated runs (from `read_runs`) with their mixtures; `source` names the runs file.

    Every run must have a mixture of the same name; every loss domain must be a mixture domain.
    """
    by_name = {m.name: m for m in mixtures}
    domains = tuple(dict.fromkeys(d for m in mixtures for d in m.weights))
    for i, run in enumerate(runs["run"].to_numpy()):
        if run not in by_name:
            raise BadInput(f"{runs['where'].iloc[i]}: run '{run}' has no mixture in {mixtures_where}")
    for i, domain in enumerate(runs["domain"].to_numpy()):
        if domain not in domains:
            raise BadInput(
                f"{runs['where'].iloc[i]}: domain '{domain}' is not a column of {mixtures_where} "
                f"(domains: {', '.join(domains)})"
            )
    seen_domains, seen_runs = set(runs["domain"]), set(runs["run"])  # built once: the sweep may be large
    eval_domains = tuple(d for d in domains if d in seen_domains)
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
    )


def load_observations(
    mixtures_path: str | os.PathLike[str], runs_path: str | os.PathLike[str]
) -> Observations:
    """`mixtures.csv` + `runs.csv` (or parquet) → validated Observations."""
    return build_observations(
        read_mixtures(mixtures_path), read_runs(runs_path), str(mixtures_path), str(runs_path)
    )


def write_runs(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write observations in long format atomically (`.parquet` suffix → parquet, else CSV)."""
    path = Path(path)
    frame = frame[list(RUNS_COLUMNS)].copy()
    with atomic_path(path) as tmp:
        if path.suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame["step"] = [_step_value(s) for s in frame["step"]]
            frame["tokens"] = ["" if pd.isna(t) else _step_value(t) for t in frame["tokens"]]
            frame.to_csv(tmp, index=False, float_format="%.10g")
