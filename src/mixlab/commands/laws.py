"""`mixlab fit | evaluate | predict | optimize`: mixing laws from proxy runs to a mixture."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from mixlab.commands.common import engine, key_values, out_console, settings
from mixlab.commands.options import check_number, either, fraction, integer, number, renamed
from mixlab.errors import BadInput
from mixlab.files import read_json, write_json
from mixlab.mixture import (
    Mixture,
    read_mixture_set,
    read_mixtures,
    write_mixture_json,
)
from mixlab.progress import log, status, warn

if TYPE_CHECKING:
    from mixlab.laws import Law

# The law modules (scipy, pandas, LightGBM) are imported inside the verbs: `mixlab --help` and every other
# verb start without them.

MixturesOpt = Annotated[Path, typer.Option("--mixtures", "-m", help="mixtures.csv (name,<domain>...).")]
RunsOpt = Annotated[
    Path, typer.Option("--runs", "-r", help="runs.csv or .parquet (run,step,tokens,domain,loss).")
]
LawOpt = Annotated[str, typer.Option(help="Mixing law: bimix, dml, powerlaw, regmix or transfer.")]
HyperOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--hyper", help="Law hyper-parameters KEY=VALUE,KEY=VALUE (values JSON), e.g. residual=relative."
    ),
]
EvalStepOpt = Annotated[
    float | None,
    typer.Option(
        help="Fixed-step laws (dml, regmix, powerlaw): fit only the evaluations at this step of runs.csv.",
        callback=number(),
    ),
]
OldStepOpt = Annotated[
    float | None, typer.Option("--step", hidden=True, callback=renamed("--eval-step", number()))
]
BootstrapOpt = Annotated[
    int, typer.Option(help="Resample runs N times for intervals (0 = off).", callback=integer(0, 10_000))
]
# The simulation holds samples × domains floats: 10 M samples of 13 domains are ~1 GB.
MAX_SAMPLES = 10_000_000


def _parse_hyper(items: list[str] | None, step: float | None, law: str) -> dict[str, Any]:
    from mixlab.laws import LAWS

    hyper: dict[str, Any] = {}
    for key, value in key_values(items, "--hyper", example="residual=relative"):
        try:
            hyper[key] = json.loads(value)
        except json.JSONDecodeError:
            hyper[key] = value
    if step is not None:
        if law not in LAWS or not LAWS[law].fixed_step:
            raise BadInput(f"--eval-step applies to fixed-step laws (dml, regmix, powerlaw), not '{law}'")
        hyper["step"] = step
    return hyper


def _law_factory(ctx: typer.Context, law: str, hyper: dict[str, Any]) -> functools.partial[Law]:
    from mixlab.laws import LAWS, get_law

    if law in LAWS and "seed" in inspect.signature(LAWS[law]).parameters and "seed" not in hyper:
        hyper = {**hyper, "seed": settings(ctx).seed}
    get_law(law, **hyper)  # validates name and hyper-parameters before any work
    return functools.partial(get_law, law, **hyper)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _per_domain(path: Path, what: str, domains: tuple[str, ...], default: float | None) -> np.ndarray:
    """A JSON {domain: number} (or corpus-stats JSON with domains.<d>.tokens) → vector over `domains`."""
    obj = read_json(path, what)
    if isinstance(obj, dict) and isinstance(obj.get("domains"), dict):
        obj = {d: v.get("tokens") if isinstance(v, dict) else v for d, v in obj["domains"].items()}
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: expected a JSON object {{domain: number}}")
    out = []
    for d in domains:
        if d not in obj:
            if default is None:
                raise BadInput(f"{path}: no value for domain '{d}'")
            out.append(default)
            continue
        v = obj[d]
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
            raise BadInput(f"{path}: field '{d}' must be a non-negative number (got {v!r})")
        out.append(float(v))
    extra = sorted(set(obj) - set(domains))
    if extra and default is not None:
        raise BadInput(f"{path}: domain '{extra[0]}' is not a domain of the law ({', '.join(domains)})")
    return np.array(out)


def _steps(text: str) -> list[float]:
    try:
        steps = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BadInput(f"--steps '{text}': expected numbers separated by commas") from None
    if not steps:
        raise BadInput(f"--steps '{text}': expected positive numbers")
    return [check_number(s, "--steps") for s in steps]


def fit(
    ctx: typer.Context,
    mixtures: MixturesOpt,
    runs: RunsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write law.json.")],
    law: LawOpt = "bimix",
    hyper: HyperOpt = None,
    eval_step: EvalStepOpt = None,
    step: OldStepOpt = None,
    bootstrap: BootstrapOpt = 0,
) -> None:
    """Fit a mixing law to proxy-run observations and save it as JSON.

    Example: mixlab fit --mixtures mixtures.csv --runs runs.csv --law bimix --out law.json
    """
    from mixlab.laws import load_observations
    from mixlab.laws.bootstrap import bootstrap_laws, bootstrap_summary

    step = either(eval_step, step, "--eval-step", "--step")
    make = _law_factory(ctx, law, _parse_hyper(hyper, step, law))
    obs = load_observations(mixtures, runs)
    with status(f"fitting {law} on {len(obs.runs)} runs"):
        fitted = make().fit(obs)
    doc = fitted.to_dict()
    if bootstrap:
        with engine(ctx) as eng:
            laws, failed = bootstrap_laws(make, obs, bootstrap, settings(ctx).seed, eng)
        doc["bootstrap"] = bootstrap_summary(laws, failed)
    write_json(out, doc)
    table = Table(title=f"{law} fitted on {len(obs.runs)} runs, {obs.n_points} evaluation points → {out}")
    report = fitted.fit_report_.get("domains", {})
    coef = fitted.params if law == "bimix" else {}
    cols = [
        "domain",
        *(("alpha", "beta", "B", "C") if coef else ()),
        "points",
        "mean rel err %",
        "max rel err %",
        "R² log",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c == "domain" else "right")
    for d in fitted.eval_domains_:
        rep = report.get(d, {})
        row = [d, *(_fmt(coef[d][k]) for k in ("alpha", "beta", "B", "C"))] if coef else [d]
        row += [
            _fmt(rep.get("n_points")),
            _fmt(rep.get("mean_rel_error_pct"), 3),
            _fmt(rep.get("max_rel_error_pct"), 3),
            _fmt(rep.get("r2_log"), 5),
        ]
        table.add_row(*row)
    out_console.print(table)
    for d, rep in report.items():
        if rep.get("alpha_identified") is False:
            warn(f"{d}: every run has the same share of this domain, so α is not identifiable (fixed to 0)")
        if rep.get("excluded_zero_share"):
            log(
                f"{d}: {rep['excluded_zero_share']} tuples with share 0 excluded (loss undefined under BiMix)"
            )
        if rep.get("at_bound"):
            warn(
                f"{d}: the fit ended on the bound of {', '.join(rep['at_bound'])}; treat these coefficients as unreliable"
            )
        if rep.get("n_undefined"):
            log(
                f"{d}: {rep['n_undefined']} points with share 0 have no prediction under {law} (left out of the residuals)"
            )


def evaluate(
    ctx: typer.Context,
    mixtures: MixturesOpt,
    runs: RunsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write metrics.json.")],
    law: Annotated[
        str,
        typer.Option(
            help="Mixing law: bimix, dml, powerlaw, regmix, transfer, or `all` to rank every law (kfold)."
        ),
    ] = "bimix",
    protocol: Annotated[
        str | None,
        typer.Option(
            help="extrapolate | unseen | kfold | horizon (default: extrapolate; kfold with --law all)."
        ),
    ] = None,
    holdout_last: Annotated[
        int, typer.Option(help="extrapolate: evaluations held out at the end of each run.")
    ] = 1,
    fit_fraction: Annotated[
        float,
        typer.Option(
            help="horizon: one fit on this fraction of every run's first evaluations; the rest are predicted.",
            callback=fraction(),
        ),
    ] = 0.5,
    test_runs: Annotated[str | None, typer.Option(help="unseen: comma-separated test runs.")] = None,
    train_runs: Annotated[
        str | None, typer.Option(help="unseen: training runs (default: all others).")
    ] = None,
    folds: Annotated[int, typer.Option(help="kfold: number of folds over runs.")] = 5,
    plots: Annotated[Path | None, typer.Option(help="Directory for one PNG per domain.")] = None,
    hyper: HyperOpt = None,
    eval_step: EvalStepOpt = None,
    step: OldStepOpt = None,
) -> None:
    """Evaluate a law the BiMix paper's way: extrapolation in steps, unseen mixtures, or k-fold over runs;
    or horizon: one fit on the first half of every run, predicting the rest.

    Example: mixlab evaluate --mixtures mixtures.csv --runs runs.csv --law bimix --protocol unseen --test-runs ce,vne --out metrics.json --plots plots/
    """
    from mixlab.laws import load_observations
    from mixlab.laws.evaluate import PROTOCOLS, evaluate_law

    step = either(eval_step, step, "--eval-step", "--step")
    if law == "all":
        if protocol not in (None, "kfold"):
            raise BadInput(f"--protocol: --law all compares the laws by kfold, not {protocol}")
        for given, what in ((hyper, "--hyper"), (plots, "--plots"), (test_runs, "--test-runs")):
            if given:
                raise BadInput(f"{what}: not used by --law all (each law runs with its defaults)")
        _compare_laws(ctx, load_observations(mixtures, runs), out, folds, step)
        return
    protocol = protocol or "extrapolate"
    if protocol not in PROTOCOLS:
        raise BadInput(f"unknown protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")
    make = _law_factory(ctx, law, _parse_hyper(hyper, step, law))
    obs = load_observations(mixtures, runs)

    def names(text: str | None) -> list[str] | None:
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    with engine(ctx) as eng:
        result = evaluate_law(
            make, obs, protocol, holdout_last=holdout_last, test_runs=names(test_runs), train_runs=names(train_runs),
            folds=folds, seed=settings(ctx).seed, fit_fraction=fit_fraction, engine=eng,
        )  # fmt: skip
    write_json(out, result.metrics)
    m = result.metrics
    if not m["applicable"]:
        out_console.print(
            f"[yellow]{law} / {protocol}: not applicable[/yellow] — {m['reason']} (written to {out})"
        )
        return
    table = Table(title=f"{law} · {protocol} → {out}")
    for c in ("domain", "rel err %", "R² log", "RMSE", "Spearman final", "points"):
        table.add_column(c, justify="left" if c == "domain" else "right")
    for d, v in m["domains"].items():
        table.add_row(
            d,
            _fmt(v["rel_error_pct"], 3),
            _fmt(v["r2_log"], 5),
            _fmt(v["rmse"], 3),
            _fmt(v["spearman_final"], 3),
            str(v["n_points"]),
        )
    for key in ("mean", "worst", "best"):
        s = m["summary"]
        table.add_row(
            key, *(_fmt((s[k] or {}).get(key), 5 if k == "r2_log" else 3) for k in ("rel_error_pct", "r2_log", "rmse", "spearman_final")), "",
            style="bold",
        )  # fmt: skip
    out_console.print(table)
    if m.get("skipped_points"):
        warn(
            f"{m['skipped_points']} test points at steps the fixed-step law was not fitted on were not predicted"
        )
    if m.get("skipped_runs"):
        warn(f"runs with too few evaluations to extrapolate were skipped: {', '.join(m['skipped_runs'])}")
    if plots is not None:
        from mixlab.laws.plots import plot_evaluation

        files = plot_evaluation(result.predictions, f"{law} · {protocol}", plots)
        log(f"wrote {len(files)} plots to {plots}")


def _compare_laws(ctx: typer.Context, obs: Any, out: Path, folds: int, step: float | None) -> None:
    from mixlab.laws.evaluate import compare_laws

    with engine(ctx) as eng:
        comparison = compare_laws(obs, folds=folds, seed=settings(ctx).seed, step=step, engine=eng)
    doc = comparison.to_dict()
    write_json(out, doc)
    table = Table(
        title=f"laws ranked · {folds}-fold over {len(obs.runs)} runs at step {comparison.step:g} → {out}"
    )
    for c in ("rank", "law", "Spearman final", "R² log", "rel err %", "fit s/fold", "points"):
        table.add_column(c, justify="left" if c == "law" else "right")
    for k, row in enumerate(comparison.ranking, 1):
        table.add_row(
            str(k), row["label"], _fmt(row["spearman_final"], 3), _fmt(row["r2_log"], 4),
            _fmt(row["rel_error_pct"], 3), f"{row['fit_seconds']:.2f}", str(row["n_points"]),
        )  # fmt: skip
    out_console.print(table)
    for name, why in comparison.failed.items():
        warn(f"{name}: not compared ({why})")
    best = doc["recommended"]
    out_console.print(
        f"recommended: {best['law']} — {doc['reason']}" if best else f"no recommendation: {doc['reason']}"
    )


def predict(
    law_path: Annotated[Path, typer.Argument(metavar="LAW_JSON", help="A law.json written by `mixlab fit`.")],
    mixtures: MixturesOpt,
    steps: Annotated[str, typer.Option(help="Comma-separated steps to predict at.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV (runs.csv layout); default: print.")
    ] = None,
) -> None:
    """Predict per-domain losses of mixtures at given steps (output in the runs.csv layout).

    Example: mixlab predict law.json --mixtures candidates.csv --steps 10000,20000 --out predicted.csv
    """
    import pandas as pd

    from mixlab.laws import load_law, write_runs

    law = load_law(law_path)
    mix = read_mixtures(mixtures)
    rows = []
    for s in _steps(steps):
        pred = law.predict(mix, s)
        for m, row in zip(mix, pred, strict=True):
            rows += [(m.name, s, np.nan, d, float(v)) for d, v in zip(law.eval_domains_, row, strict=True)]
    frame = pd.DataFrame(rows, columns=["run", "step", "tokens", "domain", "loss"])
    if out is not None:
        write_runs(out, frame)
        log(f"wrote {len(frame)} predictions to {out}")
        return
    table = Table(title=f"{law.name} predictions")
    for c in ("mixture", "step", *law.eval_domains_):
        table.add_column(c, justify="left" if c == "mixture" else "right")
    for (name, s), g in frame.groupby(["run", "step"], sort=False):
        table.add_row(name, f"{s:g}", *(f"{v:.4f}" for v in g["loss"]))
    out_console.print(table)


def optimize(
    ctx: typer.Context,
    steps: Annotated[
        float, typer.Option("--steps", help="Target step count s* of the large run.", callback=number())
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write mixture.json.")],
    law_path: Annotated[
        Path | None,
        typer.Argument(metavar="LAW_JSON", help="A law.json written by `mixlab fit` (or use --law-from)."),
    ] = None,
    min_weight: Annotated[
        str, typer.Option(help="Lower bound on each domain's weight: a number, or a JSON {domain: weight}.")
    ] = "0",
    domain_weights: Annotated[
        Path | None, typer.Option(help="JSON {domain: importance} (missing domains: 1).")
    ] = None,
    target_weights: Annotated[
        Path | None,
        typer.Option(
            help="A law fitted on target metrics: JSON {target: weight} (missing: 1); minimises Σ weight·target."
        ),
    ] = None,
    available: Annotated[
        Path | None,
        typer.Option(help="Tokens per domain: JSON {domain: tokens} or `corpus stats --json` output."),
    ] = None,
    target_tokens: Annotated[
        float | None, typer.Option(help="Tokens the large run trains on (for the caps).", callback=number())
    ] = None,
    max_epochs: Annotated[
        float,
        typer.Option(help="Repetition cap: r_i·T_target ≤ max_epochs·available_i.", callback=number()),
    ] = 1.0,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Reference mixtures to compare: mixtures.csv (every row), FILE.csv:ROW or one mixture file."
        ),
    ] = None,
    bootstrap: BootstrapOpt = 0,
    mixtures: Annotated[
        Path | None, typer.Option("--mixtures", "-m", help="mixtures.csv the law was fitted on (bootstrap).")
    ] = None,
    runs: Annotated[
        Path | None, typer.Option("--runs", "-r", help="runs.csv the law was fitted on (bootstrap).")
    ] = None,
    samples: Annotated[
        int, typer.Option(help="regmix: simulated mixtures.", callback=integer(1, MAX_SAMPLES))
    ] = 100_000,
    top_k: Annotated[
        int, typer.Option(help="regmix: best simulated mixtures averaged.", callback=integer(1, MAX_SAMPLES))
    ] = 100,
    name: Annotated[str, typer.Option(help="Name of the optimal mixture.")] = "optimum",
    law_from: Annotated[
        Path | None,
        typer.Option(
            help="metrics.json of `evaluate --law all`: fit its recommended law on --mixtures/--runs, then optimise."
        ),
    ] = None,
) -> None:
    """Optimal domain proportions at a target step under minimum shares and repetition caps.

    Example: mixlab optimize law.json --steps 100000 --available stats.json --target-tokens 2e9 --max-epochs 4 --reference entropy/mixtures.csv --out mixture.json
    """
    from mixlab.laws import load_law, load_observations
    from mixlab.laws.optimize import law_targets, optimize_mixture

    if (law_path is None) == (law_from is None):
        raise BadInput("optimize needs LAW_JSON or --law-from METRICS.json (one of them)")
    if law_from is not None:
        if mixtures is None or runs is None:
            raise BadInput("--law-from needs --mixtures and --runs (the runs to fit the recommended law on)")
        law = _recommended_law(law_from).fit(load_observations(mixtures, runs))
        law_path = law_from
    else:
        law = load_law(law_path)
    doms = law.domains_
    try:
        lo_arg: Any = check_number(float(min_weight), "--min-weight", strict=False)
    except ValueError:
        lo_arg = dict(zip(doms, _per_domain(Path(min_weight), "--min-weight", doms, 0.0), strict=True))
    tokens = (
        dict(zip(doms, _per_domain(available, "--available", doms, None), strict=True)) if available else None
    )
    if law_targets(law):
        if domain_weights:
            raise BadInput(
                f"--domain-weights: {law_path} is fitted on targets ({', '.join(law_targets(law)[:3])} ...), "
                "not domain losses: weigh them with --target-weights"
            )
        weights_path, weights_flag = target_weights, "--target-weights"
    else:
        if target_weights:
            raise BadInput(
                f"--target-weights: {law_path} is fitted on domain losses, not targets: use --domain-weights"
            )
        weights_path, weights_flag = domain_weights, "--domain-weights"
    w = _per_domain(weights_path, weights_flag, law.eval_domains_, 1.0) if weights_path else None
    obs = None
    if bootstrap:
        if mixtures is None or runs is None:
            raise BadInput("--bootstrap needs --mixtures and --runs (the observations the law was fitted on)")
        obs = load_observations(mixtures, runs)
    # the engine runs the bootstrap's refits; a Ray engine connects when created, so only for a bootstrap
    with engine(ctx) if bootstrap else contextlib.nullcontext() as eng:
        mixture = optimize_mixture(
            law,
            steps,
            min_weight=lo_arg,
            domain_weights=None if w is None else dict(zip(law.eval_domains_, w, strict=True)),
            available=tokens,
            target_tokens=target_tokens,
            max_epochs=max_epochs,
            references=read_mixture_set(reference) if reference else (),
            bootstrap=bootstrap,
            observations=obs,
            seed=settings(ctx).seed,
            n_samples=samples,
            top_k=top_k,
            name=name,
            available_source=str(available),
            engine=eng,
        )
    write_mixture_json(out, mixture)
    filled = mixture.meta["details"].get("inactive_filled")
    if filled:
        warn(
            f"{', '.join(doms[i] for i in filled)}: loss not falling with the share (or no validation loss), "
            "yet above the minimum share: the other domains are at their caps"
        )
    _optimum_table(law, mixture, out)


def _recommended_law(path: Path) -> Law:
    """The unfitted law `evaluate --law all` recommended in its metrics.json."""
    from mixlab.laws import get_law

    doc = read_json(path, "--law-from")
    best = doc.get("recommended") if isinstance(doc, dict) else None
    if not (
        isinstance(best, dict) and isinstance(best.get("law"), str) and isinstance(best.get("hyper"), dict)
    ):
        raise BadInput(
            f"{path}: no field 'recommended' {{law, hyper}} (write it with `mixlab evaluate --law all`)"
        )
    log(f"{best['law']} recommended by {path}: {doc.get('reason', '')}")
    return get_law(best["law"], **best["hyper"])


def _optimum_table(law: Law, mixture: Mixture, out: Path) -> None:
    meta = mixture.meta
    refs = meta["references"]
    table = Table(title=f"{law.name} optimum at step {meta['step']:g} ({meta['method']}) → {out}")
    cols = ["domain", "share", "bounds", "pred. loss"]
    for r in refs:
        cols += [f"{r} share", f"{r} loss"]
    for c in cols:
        table.add_column(c, justify="left" if c == "domain" else "right")
    ci = meta.get("bootstrap", {}).get("optimal_weights", {})
    for d in law.domains_:
        share = f"{mixture.weights[d]:.4f}" + (f" [{ci[d]['lo']:.3f}, {ci[d]['hi']:.3f}]" if d in ci else "")
        lo, hi = meta["bounds"][d]
        row = [d, share, f"[{lo:.3g}, {hi:.3g}]", _fmt(meta["predicted_loss"].get(d))]
        for ref in refs.values():
            row += [f"{ref['weights'][d]:.4f}", _fmt(ref["predicted_loss"].get(d))]
        table.add_row(*row)
    for t in meta.get("targets", ()):
        row = [f"{t} (target, w={meta['target_weights'][t]:g})", "", "", _fmt(meta["predicted_loss"][t])]
        for ref in refs.values():
            row += ["", _fmt(ref["predicted_loss"][t])]
        table.add_row(*row)
    total = ["objective Σ w·L", "", "", _fmt(meta["objective"], 6)]
    for ref in refs.values():
        total += ["", _fmt(ref["objective"], 6)]
    table.add_row(*total, style="bold")
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.command("optimize")(optimize)
