"""runs.csv: one row per (run, evaluation step, validation domain) of proxy runs — its one definition.

Columns `run,step,tokens,domain,loss` (`tokens` may be empty; loss: mean token cross-entropy in nats).
Parquet with the same columns is accepted wherever a CSV is. `read_runs` validates, `write_runs` writes a
frame (losses as `%.10g`), `RunsAppender` is how a sweep writes it while its runs train (losses as `%.6f`,
a row set per evaluation, flushed as it comes).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import pandas as pd

from mixlab.errors import BadInput
from mixlab.files import atomic_path

RUNS_COLUMNS = ("run", "step", "tokens", "domain", "loss")


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


def history_rows(run: str, history: Sequence[dict[str, Any]]) -> list[tuple[str, int, int, str, str]]:
    """runs.csv rows of one run's eval history, domains in the history's order; loss to 6 decimals."""
    return [
        (run, rec["step"], rec["tokens"], domain, f"{loss:.6f}")
        for rec in history
        for domain, loss in rec["losses"].items()
    ]


class RunsAppender:
    """runs.csv rewritten atomically with `histories` ({run: eval history} of runs trained so far), then
    open for `append(run, record)` of each new evaluation (flushed, so a kill loses at most a torn line)."""

    def __init__(self, path: str | os.PathLike[str], histories: dict[str, Sequence[dict[str, Any]]]) -> None:
        self.path = Path(path)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(RUNS_COLUMNS)
            for run, history in histories.items():
                writer.writerows(history_rows(run, history))
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunsAppender:
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        return self

    def append(self, run: str, record: dict[str, Any]) -> None:
        self._writer.writerows(history_rows(run, [record]))
        self._fh.flush()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._fh.close()
