"""Importers from other tools' observation layouts into mixtures + runs (mixlab's long format).

- olmix (AI2): `ratios.csv` (`run_id`, optional `name`, one column per domain) and `metrics.csv`
  (`run_id`, optional `name`, optional `step`, one column per metric) joined on `run_id`.
- RegMix (Liu et al.): a mixture CSV and a loss CSV joined on an index column (default `index`), e.g.
  `train_mixture_1m.csv` (`index,train_the_pile_arxiv,...`) with `train_pile_loss_1m.csv`
  (`index,metric/the_pile_arxiv_val_loss,...`).
Metric columns are matched to domains by a pattern with `{domain}` (e.g. `metric/the_pile_{domain}_val_loss`)
or, by default, after stripping the prefix and suffix all domain (resp. metric) columns share. Metric columns
that match no domain are skipped and reported; these layouts hold one evaluation per run unless a `step`
column exists, so `step` sets the step otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mixlab.errors import BadInput
from mixlab.mixture import Mixture

SEPARATORS = "_/.-: "


@dataclass
class Imported:
    mixtures: list[Mixture]
    runs: pd.DataFrame  # run, step, tokens, domain, loss
    skipped_columns: list[str]


def _read_csv(path: str | os.PathLike[str], key: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if key not in frame.columns:
        raise BadInput(f"{path}: missing join column '{key}' (columns: {', '.join(frame.columns[:8])})")
    dup = (
        frame[key].duplicated(keep=False) if "step" not in frame.columns else frame.duplicated([key, "step"])
    )
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[-1])
        raise BadInput(f"{path}: row {i + 2}: duplicate {key} '{frame[key].iloc[i]}'")
    return frame


def strip_common_affixes(names: list[str]) -> list[str]:
    """Names without the prefix/suffix they all share, cut at a separator (`train_the_pile_arxiv` →
    `arxiv` among `train_the_pile_*`); unchanged for fewer than 2 names or if a name would become empty."""
    if len(names) < 2:
        return list(names)

    def cut(common: str) -> int:
        pos = max(common.rfind(c) for c in SEPARATORS)
        return pos + 1 if pos >= 0 else 0

    pre = cut(os.path.commonprefix(names))
    rev = [n[::-1] for n in names]
    common_suffix = os.path.commonprefix(rev)[::-1]
    suf = 0
    if common_suffix:
        first = min((common_suffix.find(c) for c in SEPARATORS if c in common_suffix), default=-1)
        suf = len(common_suffix) - first if first >= 0 else 0
    out = [n[pre : len(n) - suf] for n in names]
    return out if all(out) else list(names)


def _match_metrics(metric_cols: list[str], domains: list[str], pattern: str | None) -> dict[str, str]:
    if pattern:
        if "{domain}" not in pattern:
            raise BadInput(f"metric pattern '{pattern}' must contain {{domain}}")
        regex = re.compile("^" + re.escape(pattern).replace(re.escape("{domain}"), "(.+)") + "$")
        found = {c: m.group(1) for c in metric_cols if (m := regex.match(c))}
        return {c: d for c, d in found.items() if d in domains}
    by_name = {c: c for c in metric_cols if c in domains}
    stripped = dict(zip(metric_cols, strip_common_affixes(metric_cols), strict=True))
    return {**{c: s for c, s in stripped.items() if s in domains}, **by_name}


def _to_observations(
    weights: pd.DataFrame,
    metrics: pd.DataFrame,
    key: str,
    domain_cols: list[str],
    where: tuple[str, str],
    pattern: str | None,
    step: float,
    name_col: str | None,
) -> Imported:
    domains = strip_common_affixes(domain_cols)
    mixtures, names = [], {}
    for i, row in enumerate(weights.itertuples(index=False)):
        values = dict(zip(weights.columns, row, strict=True))
        name = (
            str(values[name_col]).strip() if name_col and str(values[name_col]).strip() else str(values[key])
        )
        raw = {}
        for col, d in zip(domain_cols, domains, strict=True):
            try:
                raw[d] = float(values[col]) if str(values[col]).strip() else 0.0
            except ValueError:
                raise BadInput(
                    f"{where[0]}: row {i + 2}: field '{col}' is not a number ({values[col]!r})"
                ) from None
        mixtures.append(Mixture.from_weights(name, raw, where=f"{where[0]}: row {i + 2}"))
        names[str(values[key])] = name
    metric_cols = [c for c in metrics.columns if c not in (key, "name", "step")]
    mapping = _match_metrics(metric_cols, domains, pattern)
    if not mapping:
        raise BadInput(
            f"{where[1]}: no metric column matches a domain ({', '.join(domains[:6])} ...); "
            f"give `metric_pattern` like 'eval/{{domain}}/loss'"
        )
    rows = []
    for i, row in enumerate(metrics.itertuples(index=False)):
        values = dict(zip(metrics.columns, row, strict=True))
        run_key = str(values[key])
        if run_key not in names:
            raise BadInput(f"{where[1]}: row {i + 2}: {key} '{run_key}' has no mixture in {where[0]}")
        at = step
        if "step" in values:
            try:
                at = float(values["step"])
            except ValueError:
                raise BadInput(
                    f"{where[1]}: row {i + 2}: field 'step' is not a number ({values['step']!r})"
                ) from None
        for col, d in mapping.items():
            cell = str(values[col]).strip()
            if not cell:
                continue
            try:
                loss = float(cell)
            except ValueError:
                raise BadInput(f"{where[1]}: row {i + 2}: field '{col}' is not a number ({cell!r})") from None
            if not np.isfinite(loss) or loss <= 0:
                raise BadInput(
                    f"{where[1]}: row {i + 2}: field '{col}' is {cell} (must be finite and positive)"
                )
            rows.append((names[run_key], at, np.nan, d, loss))
    runs = pd.DataFrame(rows, columns=["run", "step", "tokens", "domain", "loss"])
    used = {names[k] for k in metrics[key].astype(str)}
    return Imported(
        [m for m in mixtures if m.name in used], runs, [c for c in metric_cols if c not in mapping]
    )


def import_olmix(
    ratios: str | os.PathLike[str],
    metrics: str | os.PathLike[str],
    step: float = 1.0,
    metric_pattern: str | None = None,
) -> Imported:
    """olmix `ratios.csv` + `metrics.csv` (joined on `run_id`) → mixtures and long-format runs."""
    w = _read_csv(ratios, "run_id")
    m = _read_csv(metrics, "run_id")
    domain_cols = [c for c in w.columns if c not in ("run_id", "name")]
    name_col = "name" if "name" in w.columns else None
    return _to_observations(
        w, m, "run_id", domain_cols, (str(ratios), str(metrics)), metric_pattern, step, name_col
    )


def import_regmix(
    mixtures: str | os.PathLike[str],
    losses: str | os.PathLike[str],
    index_column: str = "index",
    step: float = 1.0,
    metric_pattern: str | None = None,
) -> Imported:
    """RegMix mixture CSV + loss CSV (joined on `index_column`) → mixtures (named by the index) and runs."""
    w = _read_csv(mixtures, index_column)
    m = _read_csv(losses, index_column)
    domain_cols = [c for c in w.columns if c != index_column]
    return _to_observations(
        w, m, index_column, domain_cols, (str(mixtures), str(losses)), metric_pattern, step, None
    )
