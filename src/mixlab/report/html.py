"""The self-contained HTML report: one page, inline CSS, plots as base64 PNG, no external assets."""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.files import write_text
from mixlab.mixture import Mixture
from mixlab.report import plots
from mixlab.report.artefacts import Artefacts, collect
from mixlab.report.summary import comparison_table, mean_curves, reading, verdict

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1150px;color:#222;
line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em;margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.86em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
.scroll{overflow-x:auto;max-width:100%}
td:first-child,th:first-child{text-align:left}
tr.best td{background:#e8f5e9;font-weight:600}
img{max-width:100%;display:block;margin:8px 0}
.note{color:#666;font-style:italic}.src{color:#888;font-size:.8em}
.reading{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 14px}
nav a{margin-right:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        x = float(x)
        if not math.isfinite(x):
            return str(x)
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** -(digits - 1)):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}f}"
    return _e(x)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], best_row: int | None = None) -> str:
    out = ['<div class="scroll"><table><tr>', *(f"<th>{_e(h)}</th>" for h in header), "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == best_row else ""
        cells = "".join(f"<td>{c if isinstance(c, Markup) else _fmt(c)}</td>" for c in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table></div>")
    return "".join(out)


class Markup(str):
    """Cell content that is already HTML."""


def img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def src(paths: Iterable[Path], root: Path | None) -> str:
    names = []
    for p in paths:
        try:
            names.append(str(p.relative_to(root)) if root else str(p))
        except ValueError:
            names.append(str(p))
    return f'<p class="src">from {_e(", ".join(names))}</p>'


# ---------------------------------------------------------------- sections


def _corpus(a: Artefacts, root: Path | None) -> str | None:
    if not a.corpus_stats:
        return None
    path, stats = a.corpus_stats[0]
    rows = []
    for d, v in stats["domains"].items():
        rows.append(
            [
                d,
                v.get("documents"),
                (v.get("bytes") or 0) / 1e6,
                v.get("tokens"),
                v.get("token_share"),
                v.get("byte_share"),
            ]
        )
    t = stats.get("total", {})
    rows.append(["total", t.get("documents"), (t.get("bytes") or 0) / 1e6, t.get("tokens"), 1.0, 1.0])
    tok = stats.get("tokenizer")
    return (
        f"<p>Tokenizer: {_e(tok)}. The token share is the <em>natural</em> mixture.</p>"
        + table(["domain", "documents", "MB", "tokens", "token share", "byte share"], rows)
        + src([path], root)
    )


ENTROPY_COLUMNS = ("tokens", "documents", "se", "ce", "je", "vne")


def _per_domain_numbers(obj: Mapping[str, Any]) -> dict[str, dict[str, float | int]] | None:
    """The {domain: {name: number}} table inside an entropy.json, wherever it sits (counts stay integers)."""
    candidates = [obj.get("domains"), obj.get("entropy"), obj]
    for c in candidates:
        if isinstance(c, dict) and c and all(isinstance(v, dict) for v in c.values()):
            table_ = {
                str(d): {
                    k: x if isinstance(x, int) else float(x)
                    for k, x in v.items()
                    if isinstance(x, int | float) and not isinstance(x, bool)
                }
                for d, v in c.items()
            }
            if any(table_.values()):
                return table_
    return None


def _entropy(a: Artefacts, root: Path | None) -> str | None:
    if not a.entropy:
        return None
    path, obj = a.entropy[0]
    per = _per_domain_numbers(obj)
    if per is None:
        raise BadInput(f"{path}: expected per-domain entropies under 'domains'")
    present = list(dict.fromkeys(k for v in per.values() for k in v))
    cols = [c for c in ENTROPY_COLUMNS if c in present] or present
    body = table(["domain", *cols], [[d, *(v.get(c) for c in cols)] for d, v in per.items()])
    return (
        "<p>Entropies in nats of each domain's token stream (SE unigram, CE next-token given previous, JE token "
        "pairs, VNE of document embeddings). Each entropy mixture is a softmax of one column.</p>"
        + body
        + src([path], root)
    )


def all_mixtures(a: Artefacts) -> dict[str, Mixture]:
    """Every mixture found, mixtures.csv rows first; a later file with the same name does not override."""
    out: dict[str, Mixture] = {}
    for _, ms in a.mixtures:
        for m in ms:
            out.setdefault(m.name, m)
    for path, m in a.single_mixtures:
        same = out.get(m.name)
        if same is not None and np.allclose(same.vector(m.domains), m.vector(m.domains), atol=1e-9):
            continue
        out.setdefault(m.name if same is None else f"{m.name} ({path.parent.name})", m)
    return out


def _domains_of(a: Artefacts, mixtures: Mapping[str, Mixture]) -> list[str]:
    if a.corpus_stats:
        return list(a.corpus_stats[0][1]["domains"])
    return list(dict.fromkeys(d for m in mixtures.values() for d in m.weights))


def _mixtures(a: Artefacts, root: Path | None) -> str | None:
    mixtures = all_mixtures(a)
    if not mixtures:
        return None
    domains = _domains_of(a, mixtures)
    names = list(mixtures)
    rows = [[d, *(mixtures[n].weights.get(d, 0.0) for n in names)] for d in domains]
    chart = plots.grouped_bars(
        {n: mixtures[n].vector(domains) for n in names}, domains, "proportion", "Mixtures side by side"
    )
    files = [p for p, _ in a.mixtures] + [p for p, _ in a.single_mixtures]
    return table(["domain", *names], rows) + img(chart, "mixtures bar chart") + src(files, root)


def _sweep(a: Artefacts, root: Path | None) -> str | None:
    if not a.runs:
        return None
    parts = []
    for path, runs in a.runs:
        n_runs = runs["run"].nunique()
        final = runs[runs["step"] == runs.groupby("run")["step"].transform("max")]
        avg = final.groupby("run")["loss"].mean().sort_values()
        parts.append(
            f"<p>{n_runs} runs, {runs['step'].nunique()} evaluation steps, {runs['domain'].nunique()} validation "
            f"domains.</p>"
            + img(
                plots.learning_curves(runs, f"Proxy learning curves ({path.parent.name})"), "learning curves"
            )
            + "<h3>Final average validation loss per run</h3>"
            + table(
                ["run", "final step", "mean loss over domains"],
                [[r, int(runs.loc[runs["run"] == r, "step"].max()), v] for r, v in avg.items()],
            )
            + src([path], root)
        )
    return "".join(parts)


def _flat_params(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The per-domain numeric coefficients {domain: {name: value}} of a law.json, wherever they sit."""
    for key in ("params", "coefficients", "domains"):
        c = obj.get(key)
        if not isinstance(c, dict):
            continue
        per = {
            d: {k: x for k, x in v.items() if isinstance(x, int | float) and not isinstance(x, bool)}
            for d, v in c.items()
            if isinstance(v, dict)
        }
        per = {d: v for d, v in per.items() if v}
        if per:
            shared = {k: x for k, x in c.items() if isinstance(x, int | float) and not isinstance(x, bool)}
            return {d: {**shared, **v} for d, v in per.items()}
    return None


def _laws(a: Artefacts, root: Path | None) -> str | None:
    if not a.laws:
        return None
    parts = []
    for path, obj in a.laws:
        params = _flat_params(obj)
        parts.append(f"<h3>{_e(obj.get('law'))}</h3>")
        if params:
            cols = list(dict.fromkeys(k for v in params.values() for k in v))
            parts.append(
                table(["domain", *cols], [[d, *(v.get(c) for c in cols)] for d, v in params.items()])
            )
        else:
            parts.append('<p class="note">No per-domain coefficients in this file.</p>')
        parts.append(src([path], root))
    return "".join(parts)


def _mean(x: Any) -> Any:
    return x.get("mean") if isinstance(x, dict) else x


def _metrics(a: Artefacts, root: Path | None) -> str | None:
    if not a.metrics:
        return None
    rows, not_applicable = [], []
    for _, m in sorted(a.metrics, key=lambda pm: (pm[1]["protocol"], pm[1]["law"])):
        if not m.get("applicable", True):
            not_applicable.append(f"<li>{_e(m['law'])} / {_e(m['protocol'])}: {_e(m.get('reason', ''))}</li>")
            continue
        s = m["summary"]
        rel, r2 = s.get("rel_error_pct") or {}, s.get("r2_log") or {}
        rows.append([m["law"], m["protocol"], rel.get("mean"), rel.get("worst"), rel.get("best"),
                     r2.get("mean"), r2.get("worst"), r2.get("best"), _mean(s.get("spearman_final"))])  # fmt: skip
    out = [
        "<p>Extrapolation: fit each run on all evaluations but the last, predict the last (relative error, %). "
        "Unseen mixtures: fit on the training runs (in the demo: the entropy mixtures and half of the random ones), "
        "predict the held-out runs' curves (R² of log loss over each held-out run's curve, averaged over runs; "
        "negative = worse than predicting the curve's mean). Spearman: rank correlation of predicted and "
        "observed final losses across held-out runs.</p>",
        table(
            [
                "law",
                "protocol",
                "rel. err. % mean",
                "worst",
                "best",
                "R² log mean",
                "worst",
                "best",
                "Spearman final",
            ],
            rows,
        ),  # fmt: skip
    ]
    if not_applicable:
        out.append("<p>Not applicable:</p><ul>" + "".join(not_applicable) + "</ul>")
    for path, m in a.metrics:
        doms = m.get("domains") or {}
        if not doms:
            continue
        cols = list(dict.fromkeys(k for v in doms.values() for k in v))
        out.append(
            f"<details><summary>{_e(m['law'])} / {_e(m['protocol'])} per domain</summary>"
            + table(["domain", *cols], [[d, *(v.get(c) for c in cols)] for d, v in doms.items()])
            + src([path], root)
            + "</details>"
        )
    return "".join(out)


def _law_selection(a: Artefacts, root: Path | None) -> str | None:
    if not a.law_comparisons:
        return None
    out = []
    for path, c in a.law_comparisons:
        recommended = c.get("recommended") or {}
        best = recommended.get("label", recommended.get("law"))
        rows = [[k, r.get("label", r["law"]), r.get("spearman_final"), r.get("r2_log"), r.get("rel_error_pct"),
                 r.get("fit_seconds"), r.get("n_points")] for k, r in enumerate(c["ranking"], 1)]  # fmt: skip
        out.append(
            f"<p>Every law through {_e(c.get('folds'))}-fold cross-validation over the {_e(c.get('n_runs'))} runs, "
            f"scored on the held-out runs at step {float(c.get('step', 0)):g}: Spearman ρ and R² of log loss across "
            "runs and the relative error of the final losses, means over domains; CPU seconds of a fit, per fold. Ranked by "
            "Spearman, then R²(log), then relative error.</p>"
        )
        out.append(
            table(
                ["rank", "law", "Spearman final", "R² log", "rel. err. %", "fit CPU s/fold", "points"],
                rows,
                next((i for i, r in enumerate(c["ranking"]) if r.get("label", r["law"]) == best), None),
            )
        )
        out.append(
            f'<div class="reading"><p><b>Recommended law: {_e(best)}</b> — {_e(c.get("reason", ""))}</p></div>'
            if best
            else f'<p class="note">No recommendation: {_e(c.get("reason", ""))}</p>'
        )
        failed = c.get("failed") or {}
        if failed:
            out.append(
                "<p>Not compared:</p><ul>"
                + "".join(f"<li>{_e(law)}: {_e(why)}</li>" for law, why in failed.items())
                + "</ul>"
            )
        out.append(src([path], root))
    return "".join(out)


def intervals(meta: Mapping[str, Any], domains: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Bootstrap interval (lower, upper) of a mixture's proportions, each shape [len(domains)], if present.

    Reads `mixlab optimize --bootstrap` output: meta["bootstrap"]["optimal_weights"][domain] = {"lo", "hi"}
    (a [lo, hi] pair is accepted too)."""
    boot = meta.get("bootstrap")
    ci = boot.get("optimal_weights") if isinstance(boot, dict) else None
    if not isinstance(ci, dict) or not all(d in ci for d in domains):
        return None

    def bounds(v: Any) -> tuple[float, float]:
        return (float(v["lo"]), float(v["hi"])) if isinstance(v, dict) else (float(v[0]), float(v[1]))

    pairs = np.array([bounds(ci[d]) for d in domains])
    return pairs[:, 0], pairs[:, 1]


def _optimum(a: Artefacts, root: Path | None) -> str | None:
    with_ci = [(path, m, intervals(m.meta, m.domains)) for path, m in a.single_mixtures]
    with_ci = [t for t in with_ci if t[2] is not None]
    if not with_ci:
        return None
    out = []
    for path, m, (lo, hi) in with_ci:
        meta = m.meta
        domains = m.domains
        w = m.vector(domains)
        boot = meta["bootstrap"]
        out.append(f"<h3>{_e(m.name)}</h3><p>")
        facts = [f"law: {_e(meta.get('law', '?'))}", f"target step: {_fmt(meta.get('step'))}",
                 f"solver: {_e(meta.get('method', '?'))}", f"predicted objective: {_fmt(meta.get('objective'))}",
                 f"bootstrap: {_fmt(boot.get('replicates'))} replicates over runs"
                 + (f" ({_fmt(boot['failed'])} failed)" if boot.get("failed") else "")
                 + f", {int(100 * float(boot.get('level', 0.95)))}% percentile intervals"]  # fmt: skip
        out.append("; ".join(facts) + "</p>")
        caps = meta.get("bounds") or {}
        pred = meta.get("predicted_loss") or {}
        epochs = meta.get("epochs") or {}
        out.append(table(
            ["domain", "proportion", "bootstrap low", "bootstrap high", "bounds", "epochs at target", "predicted loss"],
            [[d, w[i], lo[i], hi[i], Markup(_e(" – ".join(_fmt(x, 3) for x in caps.get(d, [])))), epochs.get(d),
              pred.get(d)] for i, d in enumerate(domains)],
        ))  # fmt: skip
        refs = meta.get("references") or {}
        if refs:
            rows = [[m.name, meta.get("objective")]] + [[k, v.get("objective")] for k, v in refs.items()]
            out.append(
                "<p>Predicted objective (sum of the domains' predicted losses at the target step) against the references:"
                "</p>"
            )
            out.append(table(["mixture", "predicted objective"], rows, best_row=0))
        out.append(img(plots.grouped_bars({m.name: w}, domains, "proportion", "Optimum with bootstrap interval",
                                          errors={m.name: (lo, hi)}), "optimum"))  # fmt: skip
        out.append(src([path], root))
    return "".join(out)


def _samplemix(a: Artefacts, root: Path | None) -> str | None:
    if not a.scores and not a.samples:
        return None
    out = []
    for path, df in a.scores:
        cols = [c for c in ("quality", "diversity", "weight") if c in df.columns]
        out.append(f"<h3>Document scores ({len(df):,} documents)</h3>")
        if cols:
            out.append(
                img(plots.distributions(df, cols, "Score distributions per domain"), "score distributions")
            )
            agg = df.groupby("domain")[cols].mean()
            out.append(
                table(
                    ["domain", *(f"mean {c}" for c in cols)],
                    [[d, *row] for d, row in zip(agg.index, agg.to_numpy().tolist(), strict=True)],
                )
            )
        out.append(src([path], root))
    for path, summary in a.samples:
        title = path.parent.name
        out.append(f"<h3>Sample: {_e(title)}</h3>")
        facts = {
            k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)
        }
        if facts:
            out.append("<p>" + "; ".join(f"{_e(k)}: {_fmt(v)}" for k, v in facts.items()) + "</p>")
        per = summary.get("domains") or {}
        if per:
            domains = list(per)
            b = np.array([float(per[d].get("before", 0.0)) for d in domains])
            f = np.array([float(per[d].get("after", 0.0)) for d in domains])
            out.append(table(["domain", "token share before", "after", "sampled tokens", "budget tokens"],
                             [[d, b[i], f[i], per[d].get("sampled_tokens"), per[d].get("budget_tokens")]
                              for i, d in enumerate(domains)]))  # fmt: skip
            out.append(img(plots.grouped_bars({"before": b, "after": f}, domains, "token share",
                                              "Domain mix before and after sampling"), "domain mix"))  # fmt: skip
        repeats = summary.get("repeats_histogram") or {}
        if repeats:
            out.append(img(plots.histogram_bars(repeats, "copies of a document in the sample", "documents",
                                                "Repeats histogram"), "repeats"))  # fmt: skip
        out.append(src([path], root))
    return "".join(out)


def _comparison(a: Artefacts, root: Path | None) -> str | None:
    if not a.comparisons:
        return None
    path, obj = a.comparisons[0]
    comp = obj["comparison"]
    domains = list(comp["domains"])
    rows = comparison_table(comp)
    if not rows:
        return '<p class="note">No evaluation model finished yet.</p>'

    def cell(mean: float, std: float, n: int) -> Markup:
        return Markup(f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 else ""))

    body = [
        [
            r["method"],
            r["n_seeds"],
            cell(r["avg_mean"], r["avg_std"], r["n_seeds"]),
            *(cell(*r["domains"][d], r["n_seeds"]) for d in domains),
        ]
        for r in rows
    ]
    scale = comp.get("scale") or {}
    out = [
        "<p>One evaluation model per method: same model, token budget and seeds; per-domain held-out validation "
        "loss (nats/token) after the last step, mean ± standard deviation over seeds; best average highlighted.</p>",
    ]
    if scale:
        out.append(
            "<p>" + "; ".join(f"{_e(k.replace('_', ' '))}: {_fmt(v)}" for k, v in scale.items()) + "</p>"
        )
    out.append(table(["method", "seeds", "average", *domains], body, best_row=0))
    curves = mean_curves(comp)
    if curves:
        out.append(
            img(
                plots.method_curves(curves, "training tokens", "Evaluation models: average validation loss"),
                "comparison curves",
            )
        )
    skipped = obj.get("skipped") or {}
    if skipped:
        out.append(
            '<p class="note">Not run: ' + "; ".join(f"{_e(k)} ({_e(v)})" for k, v in skipped.items()) + "</p>"
        )
    return "".join(out) + src([path], root)


def demo_verdict(a: Artefacts) -> dict[str, Any] | None:
    """The decision and paired verdict of a demo's comparison, from the artefacts it was derived from."""
    if not a.comparisons or not a.comparisons[0][1]["comparison"].get("methods"):
        return None
    optimum = next((m for _, m in a.single_mixtures if m.name == "bimix-opt"), None)
    entropy = a.entropy[0][1] if a.entropy else None
    return verdict(a.comparisons[0][1]["comparison"], [m for _, m in a.metrics], optimum, entropy)


def _decision(a: Artefacts, root: Path | None) -> str | None:
    v = demo_verdict(a)
    if v is None:
        return None
    out = [f'<div class="reading"><p><b>{_e(v["decision"])}</b></p>']
    trust = list(v["trust"])
    for _, c in a.law_comparisons[:1]:
        best = c.get("recommended")
        trust.append(
            f"law selection on this sweep: {best.get('label', best['law'])} ranks first ({c.get('reason', '')}; see Law selection)"
            if best
            else f"law selection on this sweep: no law could be scored ({c.get('reason', '')})"
        )
    if trust:
        out.append("<p>How far to trust it:</p><ul>" + "".join(f"<li>{_e(t)}</li>" for t in trust) + "</ul>")
    out.append("</div>")
    level = int(round(100 * v["level"]))
    out.append(
        f"<p>Each method against {_e(v['reference'])}, paired on the same seeds and the same validation documents: "
        f"per seed, the method's average validation loss minus {_e(v['reference'])}'s (negative = better), mean and "
        f"{level}% Student-t interval over seeds.</p>"
    )
    rows = [[r["method"], len(r["seeds"]), r["difference"]["mean"], r["difference"]["lo"], r["difference"]["hi"],
             r["verdict"]] for r in v["paired"]]  # fmt: skip
    best = next((i for i, r in enumerate(v["paired"]) if r["method"] == v["recommended"]), None)
    out.append(
        table(
            ["method", "seeds", "mean difference", f"{level}% low", f"{level}% high", "verdict"], rows, best
        )
    )
    out.append("".join(f"<p>{_e(line)}</p>" for line in v["sentences"]))
    return "".join(out) + src([a.comparisons[0][0]], root)


SECTIONS = [
    ("decision", "Decision", _decision, "results.json with a comparison (mixlab demo)"),
    ("corpus", "Corpus", _corpus, "corpus stats JSON (mixlab corpus stats --json)"),
    ("entropy", "Entropy proxies", _entropy, "entropy.json (mixlab entropy)"),
    ("mixtures", "Mixtures", _mixtures, "mixtures.csv / mixture.json"),
    ("sweep", "Proxy sweep: learning curves", _sweep, "runs.csv (mixlab sweep)"),
    ("laws", "Law fits", _laws, "law.json (mixlab fit)"),
    ("metrics", "Mixing laws: evaluation protocols", _metrics, "metrics.json (mixlab evaluate)"),
    ("law-selection", "Law selection", _law_selection, "a law comparison (mixlab evaluate --law all)"),
    (
        "optimum",
        "Optimised mixture",
        _optimum,
        "mixture.json with bootstrap intervals (mixlab optimize --bootstrap)",
    ),
    (
        "samplemix",
        "SampleMix diagnostics",
        _samplemix,
        "scores.parquet / sample summary.json (mixlab score, sample)",
    ),
    ("comparison", "Comparison of methods", _comparison, "results.json with a comparison (mixlab demo)"),
]


def render(a: Artefacts, title: str = "mixlab report", root: Path | None = None) -> str:
    """The whole page as a string. Sections whose artefacts are absent are listed in a note instead."""
    if a.empty():
        raise BadInput("no mixlab artefacts found in the given directories")
    body, missing, nav = [], [], []
    for anchor, heading, fn, needs in SECTIONS:
        content = fn(a, root)
        if content is None:
            missing.append(f"<li>{_e(heading)}: needs {_e(needs)}</li>")
            continue
        nav.append(f'<a href="#{anchor}">{_e(heading)}</a>')
        body.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>{content}</section>')
    comparison = a.comparisons[0][1]["comparison"] if a.comparisons else None
    lines = reading(comparison, [m for _, m in a.metrics])
    body.append(
        '<section id="reading"><h2>What these numbers show</h2><div class="reading">'
        + "".join(f"<p>{_e(line)}</p>" for line in lines)
        + "</div></section>"
    )
    nav.append('<a href="#reading">Reading</a>')
    if missing:
        body.append(
            '<section id="missing"><h2>Not in this run</h2><ul class="note">'
            + "".join(missing)
            + "</ul></section>"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="src">generated {stamp}</p><nav>{"".join(nav)}</nav>'
        + "".join(body)
        + "</body></html>\n"
    )


def write_report(
    paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], title: str = "mixlab report"
) -> Artefacts:
    """Collect the artefacts under `paths` and write the page to `out` atomically."""
    found = collect(paths)
    root = Path(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else None
    write_text(out, render(found, title, root))
    return found
