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


# ---------------------------------------------------------------- the paired verdict against natural

LEVEL = 0.95
REFERENCE = "natural"
# [choice] an entropy estimate is unsettled when the last doubling of its sample still moved it by over 1 %
UNSETTLED_REL_CHANGE = 0.01
# [choice] below this unseen-mixture R²(log) the fitted law does not rank mixtures it has not seen
GOOD_UNSEEN_R2 = 0.8


def paired_interval(differences: Sequence[float], level: float = LEVEL) -> dict[str, float | int | None]:
    """Mean of paired differences with its two-sided `level` Student-t interval over the pairs.

    differences: one value per pair (here: per seed, a method's loss minus the reference's on the same
    validation documents). With one pair the spread is unknown: std, lo and hi are None."""
    from scipy.stats import t as student_t

    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError("`differences` must be a non-empty 1-d array of finite numbers")
    n, mean = int(d.size), float(d.mean())
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "lo": None, "hi": None}
    std = float(d.std(ddof=1))
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * std / np.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "lo": mean - half, "hi": mean + half}


def _average_loss_by_seed(entry: Mapping[str, Any], domains: Sequence[str]) -> dict[int, float]:
    return {
        int(r["seed"]): float(np.mean([r["val_loss"][d] for d in domains])) for r in entry.get("runs") or []
    }


def paired_against_reference(
    comparison: Mapping[str, Any], reference: str = REFERENCE
) -> list[dict[str, Any]]:
    """Each method against `reference` on the seeds both ran: per-seed differences of the average validation
    loss (method - reference; negative = better) and their paired interval. Sorted by mean difference.

    verdict: "better" / "worse" when the interval excludes 0, "not resolved" when it contains 0, "one seed"
    when only one shared seed exists (no interval)."""
    methods = comparison["methods"]
    if reference not in methods:
        return []
    domains = list(comparison["domains"])
    ref = _average_loss_by_seed(methods[reference], domains)
    rows = []
    for method, entry in methods.items():
        if method == reference:
            continue
        own = _average_loss_by_seed(entry, domains)
        seeds = sorted(set(own) & set(ref))
        if not seeds:
            continue
        ci = paired_interval([own[s] - ref[s] for s in seeds])
        if ci["lo"] is None:
            verdict = "one seed"
        elif ci["hi"] < 0:
            verdict = "better"
        elif ci["lo"] > 0:
            verdict = "worse"
        else:
            verdict = "not resolved"
        rows.append({"method": method, "seeds": seeds, "difference": ci, "verdict": verdict})
    return sorted(rows, key=lambda r: r["difference"]["mean"])


def _unseen_r2(metrics: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    out = {}
    for m in metrics:
        s = m.get("summary") or {}
        r2 = (s.get("r2_log") or {}).get("mean") if m.get("protocol") == "unseen" else None
        if r2 is not None:
            out[str(m["law"])] = float(r2)
    return out


def _r2_spread(metrics: Sequence[Mapping[str, Any]], law: str) -> str:
    """'; median over domains M, worst D at W' for a law's unseen R²(log) when its metrics carry domains: the
    mean is a mean of per-run R² over each domain's curve, so one domain whose curve barely moves (tiny
    variance) can drag it far below what the other domains show."""
    for m in metrics:
        if m.get("law") == law and m.get("protocol") == "unseen":
            values = {
                d: v["r2_log"] for d, v in (m.get("domains") or {}).items() if v.get("r2_log") is not None
            }
            if len(values) > 1:
                worst = min(values, key=values.get)
                return (
                    f"; median over domains {float(np.median(list(values.values()))):.3f}, worst {worst} "
                    f"{values[worst]:.3f}"
                )
    return ""


def unsettled_entropies(entropy: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """{measure: [domains]} whose estimate moved by more than UNSETTLED_REL_CHANGE over the last doubling of
    its sample (entropy.json's convergence table)."""
    out: dict[str, list[str]] = {}
    for domain, entry in ((entropy or {}).get("domains") or {}).items():
        change = (entry.get("convergence") or {}).get("last_step_change") or {}
        for measure, delta in change.items():
            value = entry.get(measure)
            if value and abs(float(delta)) > UNSETTLED_REL_CHANGE * abs(float(value)):
                out.setdefault(measure, []).append(domain)
    return out


def shares_at_floor(optimum: Any) -> list[str]:
    """Domains whose share in an optimised mixture sits on its lower bound (the optimiser wanted less)."""
    if optimum is None:
        return []
    bounds = optimum.meta.get("bounds") or {}
    return [
        d for d, w in optimum.weights.items() if d in bounds and abs(float(w) - float(bounds[d][0])) <= 1e-6
    ]


def budget_sentence(comparison: Mapping[str, Any]) -> str:
    """Whether every evaluation model trained the same number of tokens (the SampleMix samples included)."""
    trained = {m: {r.get("tokens") for r in e.get("runs") or []} for m, e in comparison["methods"].items()}
    budgets = set().union(*trained.values()) if trained else set()
    samples = {m: e["sample"] for m, e in comparison["methods"].items() if e.get("sample")}
    drawn = "; ".join(
        f"{m}'s sample was drawn to a budget of {s['budget_tokens']:,.0f} tokens ({s['realised_tokens']:,} drawn)"
        for m, s in samples.items()
        if s.get("budget_tokens") is not None and s.get("realised_tokens") is not None
    )
    if len(budgets) == 1 and None not in budgets:
        text = f"Every evaluation model trained the same {next(iter(budgets)):,} tokens"
        text += ", SampleMix and the hybrid included" if samples else ""
    else:
        text = "The evaluation models did not all train the same number of tokens: " + ", ".join(
            f"{m} {sorted(t, key=str)}" for m, t in trained.items()
        )
    return text + (f" ({drawn})." if drawn else ".")


def _pm(ci: Mapping[str, Any]) -> str:
    if ci["lo"] is None:
        return f"{ci['mean']:+.4f} nats (one seed, no interval)"
    return f"{ci['mean']:+.4f} nats (95% interval {ci['lo']:+.4f} to {ci['hi']:+.4f}, {ci['n']} seeds)"


def verdict(
    comparison: Mapping[str, Any],
    metrics: Sequence[Mapping[str, Any]],
    optimum: Any = None,
    entropy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo's decision and verdict, derived from the numbers: which methods beat natural beyond seed noise
    (paired over seeds, same validation documents), what the laws fitted on the demo's sweep achieve on unseen
    mixtures, the recommended mixture with its gain, and how far to trust it.

    optimum: the BiMix-optimised Mixture (its meta's bounds), entropy: entropy.json's content (both optional)."""
    paired = paired_against_reference(comparison)
    methods = comparison["methods"]
    better = [r for r in paired if r["verdict"] == "better"]
    worse = [r["method"] for r in paired if r["verdict"] == "worse"]
    unresolved = [r["method"] for r in paired if r["verdict"] in ("not resolved", "one seed")]
    r2 = _unseen_r2(metrics)
    sentences = []
    if better:
        sentences.append(
            "Beat natural beyond seed noise (95% paired interval below 0): "
            + "; ".join(f"{r['method']} {_pm(r['difference'])}" for r in better)
            + "."
        )
    else:
        sentences.append("No method beat natural beyond seed noise (no 95% paired interval lies below 0).")
    if unresolved:
        sentences.append("Not distinguishable from natural: " + ", ".join(unresolved) + ".")
    if worse:
        sentences.append("Worse than natural beyond seed noise: " + ", ".join(worse) + ".")
    if r2:
        sentences.append(
            "Laws fitted on this demo's own sweep, R² of log loss on its unseen (random) mixtures: "
            + ", ".join(f"{law} {v:.3f}" for law, v in r2.items())
            + "."
        )

    sentences.append(budget_sentence(comparison))

    best = better[0] if better else None
    recommended = best["method"] if best else REFERENCE
    trust = []
    ref = methods.get(REFERENCE)
    if ref:
        losses = list(_average_loss_by_seed(ref, comparison["domains"]).values())
        if len(losses) > 1:
            trust.append(
                f"seed noise: natural's average loss varies by {np.std(losses, ddof=1):.4f} nats (std) over "
                f"{len(losses)} seeds"
            )
        else:
            trust.append("seed noise: unknown, only one seed was trained")
    if "bimix" in r2:
        quality = (
            "ranks unseen mixtures well"
            if r2["bimix"] >= GOOD_UNSEEN_R2
            else "does not rank unseen mixtures reliably"
        )
        trust.append(
            f"law fit: BiMix unseen R²(log) {r2['bimix']:.3f}, it {quality} (aim ≥ {GOOD_UNSEEN_R2})"
            + _r2_spread(metrics, "bimix")
        )
    for measure, domains in unsettled_entropies(entropy).items():
        trust.append(
            f"entropy: the {measure} estimate is not settled in {', '.join(domains)} (moved > "
            f"{UNSETTLED_REL_CHANGE:.0%} over the last doubling of its sample)"
        )
    floor = shares_at_floor(optimum)
    if floor:
        trust.append(
            f"optimum: bimix-opt holds {', '.join(floor)} at the share floor (the law pushed them to 0)"
        )
    if best:
        decision = (
            f"mixlab recommends {recommended} for this corpus: average validation loss "
            f"{_pm(best['difference'])} against natural."
        )
    else:
        closest = paired[0] if paired else None
        decision = "mixlab recommends keeping the natural mixture: no method beat it beyond seed noise" + (
            f" (closest: {closest['method']} {_pm(closest['difference'])})." if closest else "."
        )
    return {
        "reference": REFERENCE,
        "level": LEVEL,
        "paired": paired,
        "better": [r["method"] for r in better],
        "not_resolved": unresolved,
        "worse": worse,
        "unseen_r2_log": r2,
        "recommended": recommended,
        "recommended_mixture": (methods.get(recommended) or {}).get("mixture"),
        "decision": decision,
        "trust": trust,
        "sentences": sentences,
    }
