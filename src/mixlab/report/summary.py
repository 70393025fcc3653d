"""Numbers the report and `mixlab demo` share: the comparison table and the plain-words reading of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def comparison_table(comparison: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per method, sorted by mean average loss: per-domain mean and std over seeds, and the average.

    `comparison["methods"][m]["runs"]` = [{"seed", "val_loss": {domain: nats}, ...}]; a method's average is the
    unweighted mean over `comparison["domains"]` (the papers' objective). Returns
    [{"method", "n_seeds", "avg_mean", "avg_std", "domains": {d: (mean, std)}}]."""
    domains = list(comparison["domains"])
    rows = []
    for method, entry in comparison["methods"].items():
        runs = entry.get("runs") or []
        if not runs:
            continue
        per_domain = {d: _mean_std([r["val_loss"][d] for r in runs]) for d in domains}
        avg_mean, avg_std = _mean_std([float(np.mean([r["val_loss"][d] for d in domains])) for r in runs])
        rows.append(
            {
                "method": method,
                "n_seeds": len(runs),
                "avg_mean": avg_mean,
                "avg_std": avg_std,
                "domains": per_domain,
            }
        )
    return sorted(rows, key=lambda r: r["avg_mean"])


def mean_curves(comparison: Mapping[str, Any]) -> dict[str, list[tuple[float, float, float]]]:
    """Per method, the average-over-domains validation loss against tokens: [(tokens, mean, std over seeds)].

    Each run's `curve` is [[step, tokens, avg_loss], ...]; seeds are aligned on the evaluation index."""
    out = {}
    for method, entry in comparison["methods"].items():
        curves = [np.asarray(r["curve"], dtype=float) for r in entry.get("runs") or [] if r.get("curve")]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])
        std = stack[:, :, 2].std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(n)
        out[method] = [
            (float(x), float(m), float(s))
            for x, m, s in zip(stack[0, :, 1], stack[:, :, 2].mean(0), std, strict=True)
        ]
    return out


PAPER_BIMIX = {"extrapolate_rel_error_pct": (0.16, 0.18), "unseen_r2_log": (0.9744, 0.9945)}


def reading(comparison: Mapping[str, Any] | None, metrics: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences on what the numbers do and do not show at this scale (derived from the numbers)."""
    lines: list[str] = []
    if comparison:
        rows = comparison_table(comparison)
        scale = comparison.get("scale", {})
        scale_txt = ", ".join(
            f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
            for k, v in scale.items()
        )
        if len(rows) >= 2:
            best, second = rows[0], rows[1]
            gap = second["avg_mean"] - best["avg_mean"]
            spreads = [r["avg_std"] for r in rows if r["n_seeds"] > 1]
            if spreads:
                spread = float(np.mean(spreads))
                verdict = "larger than" if gap > 2 * spread else "within about twice"
                lines.append(
                    f"Lowest mean validation loss: {best['method']} ({best['avg_mean']:.4f} nats), "
                    f"{gap:.4f} nats ahead of {second['method']}; that gap is {verdict} the typical seed-to-seed "
                    f"spread ({spread:.4f} nats over {rows[0]['n_seeds']} seeds), so "
                    + (
                        "the ranking of the top two is likely real at this scale."
                        if gap > 2 * spread
                        else "the top of the ranking is not resolved at this scale."
                    )
                )
            else:
                lines.append(
                    f"Lowest mean validation loss: {best['method']} ({best['avg_mean']:.4f} nats), {gap:.4f} nats ahead "
                    f"of {second['method']}, from a single seed: without repeats the spread is unknown, so small gaps "
                    "may be noise."
                )
        lines.append(
            "Validation loss is averaged over domains without weights (the BiMix objective); a mixture that favours "
            "the domains with high loss wins on this average even if it loses on the others."
            + (f" Scale of every evaluation model: {scale_txt}." if scale_txt else "")
        )
    for m in metrics:
        if m.get("law") != "bimix":
            continue
        s = m.get("summary") or {}
        if m.get("protocol") == "extrapolate" and (s.get("rel_error_pct") or {}).get("mean") is not None:
            lo, hi = PAPER_BIMIX["extrapolate_rel_error_pct"]
            lines.append(
                f"BiMix extrapolation to the last evaluation: mean relative error {s['rel_error_pct']['mean']:.2f}% "
                f"(papers: {lo}-{hi}% on The Pile/SlimPajama with 20 evaluations of 100B-token runs)."
            )
        if m.get("protocol") == "unseen" and (s.get("r2_log") or {}).get("mean") is not None:
            lo, hi = PAPER_BIMIX["unseen_r2_log"]
            lines.append(
                f"BiMix on unseen mixtures: mean R² of log loss {s['r2_log']['mean']:.3f} (papers: {lo}-{hi})."
            )
    lines.append(
        "What this does not show: downstream task accuracy, behaviour at the papers' 1B-8B parameter scale, or the "
        "papers' step-savings claims; these are minutes-long CPU runs of a tiny model on a few MB of text, useful to "
        "check that the pipeline and the laws behave, not to settle which method is better for large models."
    )
    return lines
