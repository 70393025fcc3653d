"""Importers from other tools' observation layouts into mixtures + runs (mixlab's long format).

- olmix (AI2): `ratios.csv` (`run` or `run_id`, optional `name`, one column per domain, each row summing to 1
  within 0.01) and `metrics.csv` (the same key, optional `name`, optional `step`, one column per metric)
  joined on the key; pandas' `Unnamed: *` index column and an `index` column are not data (olmix's own
  loader drops them too).
- RegMix (Liu et al.): a mixture CSV and a loss CSV joined on an index column (default `index`), e.g.
  `train_mixture_1m.csv` (`index,train_the_pile_arxiv,...`) with `train_pile_loss_1m.csv`
  (`index,metric/the_pile_arxiv_val_loss,...`).
Metric columns are matched to domains by a pattern with `{domain}` (e.g. `metric/the_pile_{domain}_val_loss`)
or, by default, after stripping the prefix and suffix all domain (resp. metric) columns share. Metric columns
that match no domain are skipped and reported; these layouts hold one evaluation per run unless a `step`
column exists, so `step` sets the step otherwise.
When no metric column matches a domain (and no pattern was given, and no column has a domain as a `/`-separated
part, which is a per-domain layout whose pattern was not found), every metric column is a TARGET: a metric of
the whole mixture (olmix swarms' downstream-task BPB), written to runs.csv under its own name (see
`mixlab.laws.observations`).
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


OLMIX_KEYS = ("run", "run_id")
OLMIX_NOT_DATA = ("name", "index", "step")


@dataclass
class Imported:
    mixtures: list[Mixture]
    runs: pd.DataFrame  # run, step, tokens, domain, loss
    skipped_columns: list[str]
    targets: bool = False  # the metric columns are targets, not per-domain losses


def _read_csv(path: str | os.PathLike[str], keys: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """The CSV as strings and the first of `keys` it has (the join column)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    key = next((k for k in keys if k in frame.columns), None)
    if key is None:
        raise BadInput(
            f"{path}: missing join column {' or '.join(map(repr, keys))} (columns: {', '.join(frame.columns[:8])})"
        )
    dup = (
        frame[key].duplicated(keep=False) if "step" not in frame.columns else frame.duplicated([key, "step"])
    )
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[-1])
        raise BadInput(f"{path}: row {i + 2}: duplicate {key} '{frame[key].iloc[i]}'")
    return frame, key


def _olmix_data_columns(frame: pd.DataFrame, key: str) -> list[str]:
    return [c for c in frame.columns if c not in (key, *OLMIX_NOT_DATA) and not c.startswith("Unnamed:")]


def _names_a_domain(metric_cols: list[str], domains: list[str]) -> bool:
    """Whether a metric column has a domain as a `/`-separated part (`eval/dclm/CE loss`)."""
    return any(part in domains for c in metric_cols for part in c.split("/"))


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
    metric_cols: list[str],
    sums_to_one: bool = False,
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
        total = sum(raw.values())
        if sums_to_one and abs(total - 1.0) > 0.01:
            raise BadInput(f"{where[0]}: row {i + 2}: ratios sum to {total:.4g}, not 1 (±0.01)")
        mixtures.append(Mixture.from_weights(name, raw, where=f"{where[0]}: row {i + 2}"))
        names[str(values[key])] = name
    mapping = _match_metrics(metric_cols, domains, pattern)
    targets = not mapping and not pattern and not _names_a_domain(metric_cols, domains)
    if targets:
        mapping = {c: c for c in metric_cols}
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
        [m for m in mixtures if m.name in used], runs, [c for c in metric_cols if c not in mapping], targets
    )


def import_olmix(
    ratios: str | os.PathLike[str],
    metrics: str | os.PathLike[str],
    step: float = 1.0,
    metric_pattern: str | None = None,
) -> Imported:
    """olmix `ratios.csv` + `metrics.csv` (joined on `run` or `run_id`) → mixtures and long-format runs."""
    w, key = _read_csv(ratios, OLMIX_KEYS)
    m, metrics_key = _read_csv(metrics, OLMIX_KEYS)
    if metrics_key != key:
        raise BadInput(f"{metrics}: join column is '{metrics_key}' but {ratios} has '{key}'")
    name_col = "name" if "name" in w.columns else None
    return _to_observations(
        w,
        m,
        key,
        _olmix_data_columns(w, key),
        (str(ratios), str(metrics)),
        metric_pattern,
        step,
        name_col,
        _olmix_data_columns(m, key),
        sums_to_one=True,
    )


def import_regmix(
    mixtures: str | os.PathLike[str],
    losses: str | os.PathLike[str],
    index_column: str = "index",
    step: float = 1.0,
    metric_pattern: str | None = None,
) -> Imported:
    """RegMix mixture CSV + loss CSV (joined on `index_column`) → mixtures (named by the index) and runs."""
    w, _ = _read_csv(mixtures, (index_column,))
    m, _ = _read_csv(losses, (index_column,))
    domain_cols = [c for c in w.columns if c != index_column]
    metric_cols = [c for c in m.columns if c not in (index_column, "name", "step")]
    return _to_observations(
        w, m, index_column, domain_cols, (str(mixtures), str(losses)), metric_pattern, step, None, metric_cols
    )
