"""Mixing laws side by side on synthetic sweeps of known truth (BiMix coefficients + 0.2 % noise).

Prints, for bimix / dml / regmix / powerlaw, the evaluate summaries under the BiMix paper's two protocols
(extrapolate: per run, hold out the last evaluation; unseen: fit on 4 mixtures as the paper does, predict
the others) plus k-fold over runs; the residual-space comparison for BiMix; optimiser agreement (closed
form vs bounded KKT vs SLSQP vs a brute-force grid) and the optimum of the fitted law vs the true optimum.
Last stdout line: all numbers as JSON.  Usage: python benchmarks/laws_compare.py [--quick]
On a real sweep instead (same table, no truth): --mixtures M --runs R --test-runs a,b,... [--folds N]
RegMix's public 1M sweep (shared/data/regmix: fit 512 train runs, predict 256 test runs, one final loss per
run): --regmix prints every law's mean / worst / best Spearman of the final loss over 13 Pile domains.
Measured: regmix 0.989 / 0.966 / 0.996, bimix 0.940 / 0.829 / 0.995, powerlaw 0.940 / 0.829 / 0.995,
dml 0.928 / 0.768 / 0.981 (bimix and powerlaw leave out each test run's share-0 domains), transfer 0.992.
--regmix-k: every law fitted on k = 32, 64, 128, 512 train runs (3 seeded subsets for k < 512); measured mean
Spearman regmix 0.937 / 0.970 / 0.982 / 0.989, bimix and powerlaw 0.940 at every k, dml 0.812 / 0.879 / 0.901 /
0.928, transfer 0.975 / 0.987 / 0.990 / 0.992 (benchmarks/results.json: laws_compare_regmix_k).
--olmix: olmix's DCLM swarm (shared/data/olmix: 127 runs, 24 topics, 110 task-BPB targets), every law that
fits targets (regmix, dml, transfer's target form) on 3 seeded 100 → 27 splits: mean / median / min Spearman
over the targets (benchmarks/results.json: laws_compare_olmix). Measured, mean over targets at splits 0 / 1 / 2:
regmix 0.8455 / 0.8247 / 0.8309, dml 0.8338 / 0.7810 / 0.8205, transfer 0.8495 / 0.8122 / 0.8367.
--own-sweeps: mixlab's own sweeps (benchmarks/data/sweeps: cosine and exp10, 8 mixtures × 20 evaluations of
100k tokens; cosine_300k, 4 × 20 of 300k tokens; 5 demo domains): extrapolation (per run, fit the first half of
its evaluations, predict the rest) and horizon (one fit on the first half of every run, predict the rest), mean
relative error, for the laws with a step axis and the schedule-aware step term (bimix[schedule],
transfer[schedule]); unseen mixtures (k-fold over runs: R²(log) per run, Spearman of the final loss; and
`compare_laws`' ranking at the final step) for every law (benchmarks/results.json: laws_compare_own_sweeps).
Measured (cosine / exp10 / cosine_300k): extrapolation bimix = transfer 0.0128 / 0.0126 / 0.0481,
bimix[schedule] 0.0169 / 0.0127 / 0.0266; horizon bimix 0.0244 / 0.0201 / 0.0525, bimix[schedule] 0.0207 /
0.0197 / 0.0306, transfer 0.0169 / 0.0141 / 0.0541, transfer[schedule] 0.0144 / 0.0138 / 0.0259; k-fold R²(log)
per run bimix −4.02 / −5.91 / −22.0, transfer −1.50 / −0.82 / −3.42; Spearman final bimix 0.733 / 0.867 / 0.680,
transfer 0.400 / 0.710 / 0.760.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MIXLAB_QUIET", "1")

from mixlab.errors import BadInput  # noqa: E402
from mixlab.laws import Observations, build_observations, get_law, load_observations  # noqa: E402
from mixlab.laws.evaluate import compare_laws as rank_laws  # noqa: E402
from mixlab.laws.evaluate import evaluate_law  # noqa: E402
from mixlab.laws.importers import import_olmix, import_regmix  # noqa: E402
from mixlab.laws.optimize import optimize_law, optimize_power, power_closed_form  # noqa: E402
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix  # noqa: E402
from mixlab.mixture import Mixture  # noqa: E402

TRUE = {
    "alpha": [0.05, 0.12, 0.2, 0.08, 0.03],
    "B": [25.0, 60.0, 40.0, 30.0, 15.0],
    "beta": [0.40, 0.60, 0.50, 0.45, 0.30],
    "C": [1.9, 1.4, 2.5, 2.0, 1.6],
}
DOMAINS = ("web", "code", "math", "books", "wiki")


def summary_row(metrics: dict) -> dict:
    if not metrics["applicable"]:
        return {"applicable": False}
    s = metrics["summary"]
    return {k: s[k] for k in ("rel_error_pct", "r2_log", "spearman_final")}


def fmt(cell: dict | None, key: str, digits: int) -> str:
    if cell is None or not cell.get("applicable", True):
        return "n/a (fixed-step)"
    v = cell.get(key)
    if v is None:
        return "—"
    return f"{v['mean']:.{digits}f} / {v['worst']:.{digits}f} / {v['best']:.{digits}f}"


def compare_laws(obs: Observations, test_runs: list[str], folds: int) -> dict:
    """Summaries of every law under extrapolate, unseen (`test_runs` held out) and k-fold."""
    table = {}
    for law in ("bimix", "dml", "regmix", "powerlaw"):
        row = {}
        for protocol, kw in (
            ("extrapolate", {}),
            ("unseen", {"test_runs": test_runs}),
            ("kfold", {"folds": folds}),
        ):
            t0 = time.perf_counter()
            m = evaluate_law(lambda law=law: get_law(law), obs, protocol, **kw).metrics
            row[protocol] = {
                **summary_row(m),
                "seconds": round(time.perf_counter() - t0, 2),
                "skipped_points": m.get("skipped_points", 0),
            }
        table[law] = row
    return table


REGMIX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "regmix"


ALL_LAWS = ("regmix", "bimix", "powerlaw", "dml", "transfer")
K_TRAIN = (32, 64, 128, 512)


def regmix_observations() -> tuple[Observations, list[str], list[str]]:
    """RegMix's 1M sweep as one set of observations: (obs, train run names, test run names)."""
    mixtures, frames = [], []
    for part in ("train", "test"):
        imp = import_regmix(REGMIX / f"{part}_mixture_1m.csv", REGMIX / f"{part}_pile_loss_1m.csv")
        mixtures += [Mixture(f"{part}{m.name}", m.weights) for m in imp.mixtures]
        frames.append(imp.runs.assign(run=part + imp.runs["run"]))
    runs = pd.concat(frames, ignore_index=True)
    obs = build_observations(mixtures, runs.assign(where=[f"row {i}" for i in range(len(runs))]))
    return obs, [r for r in obs.runs if r.startswith("train")], [r for r in obs.runs if r.startswith("test")]


def regmix_1m() -> dict:
    """Every law fitted on RegMix's 512 train runs, scored on its 256 test runs (unseen protocol)."""
    obs, _, test = regmix_observations()
    table = {}
    for law in ALL_LAWS:
        t0 = time.perf_counter()
        m = evaluate_law(lambda law=law: get_law(law), obs, "unseen", test_runs=test).metrics
        table[law] = {
            "spearman_final": m["summary"]["spearman_final"],
            "n_undefined": sum(v["n_undefined"] for v in m["domains"].values()),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        s = table[law]["spearman_final"]
        print(f"{law:9} Spearman final mean / worst / best {s['mean']:.3f} / {s['worst']:.3f} / {s['best']:.3f}"
              f"  undefined {table[law]['n_undefined']}  {table[law]['seconds']} s")  # fmt: skip
    return {"setup": {"train_runs": len(obs.runs) - len(test), "test_runs": len(test)}, "laws": table}


def regmix_k_table(n_subsets: int = 3, seed: int = 0) -> dict:
    """Every law fitted on k of RegMix's 512 train runs (`n_subsets` seeded random subsets for k < 512, drawn
    in order k = 32, 64, 128 from one generator), scored on the 256 test runs: mean Spearman of the final loss
    over 13 domains, averaged over subsets, with the worst domain (of the subset-averaged per-domain ρ)."""
    obs, train, test = regmix_observations()
    rng = np.random.default_rng(seed)
    subsets = {
        k: [rng.choice(len(train), k, replace=False) for _ in range(n_subsets)]
        if k < len(train)
        else [range(k)]
        for k in K_TRAIN
    }
    table: dict = {law: {} for law in ALL_LAWS}
    for law in ALL_LAWS:
        for k, picks in subsets.items():
            t0 = time.perf_counter()
            means, per_domain = [], []
            for pick in picks:
                m = evaluate_law(
                    lambda law=law: get_law(law),
                    obs,
                    "unseen",
                    test_runs=test,
                    train_runs=[train[i] for i in pick],
                ).metrics
                means.append(m["summary"]["spearman_final"]["mean"])
                per_domain.append([m["domains"][d]["spearman_final"] for d in obs.eval_domains])
            domain_mean = np.mean(per_domain, axis=0)
            table[law][str(k)] = {
                "spearman_mean": float(np.mean(means)),
                "per_subset": [round(v, 4) for v in means],
                "worst_domain": obs.eval_domains[int(np.argmin(domain_mean))],
                "worst_domain_spearman": float(domain_mean.min()),
                "seconds_per_fit": round((time.perf_counter() - t0) / len(picks), 2),
            }
            if k == len(train):
                table[law][str(k)]["per_domain"] = dict(
                    zip(obs.eval_domains, map(float, domain_mean), strict=True)
                )
            cell = table[law][str(k)]
            print(f"{law:9} k={k:<4} mean Spearman {cell['spearman_mean']:.4f} (subsets {cell['per_subset']}, "
                  f"worst {cell['worst_domain']} {cell['worst_domain_spearman']:.3f}) "
                  f"{cell['seconds_per_fit']} s/fit", flush=True)  # fmt: skip
    print("| law | " + " | ".join(f"k={k}" for k in K_TRAIN) + " |")
    print("|---|" + "---|" * len(K_TRAIN))
    for law, row in table.items():
        print(f"| {law} | " + " | ".join(f"{row[str(k)]['spearman_mean']:.4f}" for k in K_TRAIN) + " |")
    setup = {
        "train_runs": len(train),
        "test_runs": len(test),
        "k": list(K_TRAIN),
        "subsets": n_subsets,
        "seed": seed,
    }
    return {"setup": setup, "laws": table}


OLMIX = REGMIX.parent / "olmix"
TARGET_LAWS = ("regmix", "dml", "transfer")


def olmix_table(seeds: tuple[int, ...] = (0, 1, 2), n_fit: int = 100) -> dict:
    """Every law that fits targets, on olmix's swarm: fit `n_fit` runs of a seeded permutation, predict the
    rest (unseen protocol), Spearman over the runs per target; mean / median / min over targets per split."""
    imp = import_olmix(OLMIX / "dclm_ratios.csv", OLMIX / "dclm_metrics.csv")
    obs = build_observations(imp.mixtures, imp.runs.assign(where=[f"row {i}" for i in range(len(imp.runs))]))
    table: dict = {law: {} for law in TARGET_LAWS}
    for seed in seeds:
        perm = np.random.default_rng(seed).permutation(len(obs.runs))
        fit, held = [obs.runs[i] for i in perm[:n_fit]], [obs.runs[i] for i in perm[n_fit:]]
        for law in TARGET_LAWS:
            t0 = time.perf_counter()
            m = evaluate_law(
                lambda law=law: get_law(law), obs, "unseen", test_runs=held, train_runs=fit
            ).metrics
            rho = np.array([m["domains"][d]["spearman_final"] for d in obs.eval_domains], dtype=float)
            table[law][str(seed)] = {
                "mean": float(np.nanmean(rho)),
                "median": float(np.nanmedian(rho)),
                "min": float(np.nanmin(rho)),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            cell = table[law][str(seed)]
            print(f"olmix seed {seed} {law:9} Spearman mean {cell['mean']:.4f} median {cell['median']:.4f} "
                  f"min {cell['min']:.4f}  {cell['seconds']} s", flush=True)  # fmt: skip
    for row in table.values():
        row["mean_over_splits"] = float(np.mean([row[str(s)]["mean"] for s in seeds]))
    print("| law | " + " | ".join(f"split {s}" for s in seeds) + " | mean |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for law, row in table.items():
        cells = " | ".join(f"{row[str(s)]['mean']:.4f}" for s in seeds)
        print(f"| {law} | {cells} | {row['mean_over_splits']:.4f} |")
    setup = {"runs": len(obs.runs), "targets": len(obs.eval_domains), "fit": n_fit, "seeds": list(seeds)}
    return {"setup": setup, "laws": table}


SWEEPS = Path(__file__).resolve().parent / "data" / "sweeps"


def own_sweeps_table(folds: int = 4) -> dict:
    """Extrapolation (each run's first half of evaluations → the rest, one fit per run), horizon (one fit on
    the first half of every run → the rest) and k-fold over runs on mixlab's own sweeps in
    benchmarks/data/sweeps (copies of three sweep outputs: mixtures.csv, runs.csv, sweep.json)."""
    variants = [(law, law, {}) for law in ALL_LAWS] + [
        (f"{law}[schedule]", law, {"step_term": "schedule"}) for law in ("bimix", "transfer")
    ]
    out = {}
    for sweep in sorted(p for p in SWEEPS.iterdir() if p.is_dir()):
        obs = load_observations(sweep / "mixtures.csv", sweep / "runs.csv")
        config = json.loads((sweep / "sweep.json").read_text())["config"]
        half = len(obs.distinct_steps) // 2
        row: dict = {"extrapolate": {}, "horizon": {}, "kfold": {}}
        for label, law, hyper in variants:

            def make(law: str = law, hyper: dict = hyper) -> object:
                return get_law(law, **hyper)

            if not get_law(law).fixed_step:
                m = evaluate_law(make, obs, "extrapolate", holdout_last=half).metrics
                row["extrapolate"][label] = m["summary"]["rel_error_pct"]["mean"] / 100
                m = evaluate_law(make, obs, "horizon").metrics
                row["horizon"][label] = m["summary"]["rel_error_pct"]["mean"] / 100
            try:
                m = evaluate_law(make, obs, "kfold", folds=folds).metrics
            except BadInput as exc:  # e.g. regmix needs ≥ 4 training runs
                row["kfold"][label] = {"r2_log": None, "spearman_final": None, "failed": str(exc)}
                continue
            row["kfold"][label] = {
                k: (m["summary"][k] or {}).get("mean") for k in ("r2_log", "spearman_final")
            }
        ranking = rank_laws(obs, folds=folds)
        row["compare_laws"] = {
            "step": ranking.step,
            "failed": ranking.failed,
            "ranking": [
                {k: r[k] for k in ("label", "spearman_final", "r2_log", "rel_error_pct")}
                for r in ranking.ranking
            ],
            "recommended": ranking.to_dict()["recommended"],
        }
        row["setup"] = {"runs": len(obs.runs), "evaluations": len(obs.distinct_steps), "held_out_last": half,
                        "tokens_per_run": config["tokens"], "schedule": config["schedule"], "folds": folds}  # fmt: skip
        out[sweep.name] = row
        print(f"sweep {sweep.name} ({len(obs.runs)} runs × {len(obs.distinct_steps)} evals, {config['schedule']}, "
              f"{config['tokens']} tokens/run)", flush=True)  # fmt: skip
        for label, _, _ in variants:
            ext, hor = row["extrapolate"].get(label), row["horizon"].get(label)
            kf = row["kfold"][label]
            print(f"  {label:18} rel err extrapolate {'n/a (fixed-step)' if ext is None else f'{ext:.4f}':17} "
                  f"horizon {'n/a' if hor is None else f'{hor:.4f}':7} "
                  f"kfold R²(log) {_num(kf['r2_log'])}  Spearman final {_num(kf['spearman_final'])}", flush=True)  # fmt: skip
        print("  compare_laws:", ", ".join(f"{r['label']} {_num(r['spearman_final'])}/{_num(r['r2_log'])}"
                                           for r in row["compare_laws"]["ranking"]), flush=True)  # fmt: skip
    return out


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def print_table(table: dict) -> None:
    print(
        f"{'law':9} {'protocol':12} {'rel err % mean/worst/best':32} {'R² log mean/worst/best':30} {'Spearman final':24} s"
    )
    for law, row in table.items():
        for protocol, cell in row.items():
            print(
                f"{law:9} {protocol:12} {fmt(cell, 'rel_error_pct', 3):32} {fmt(cell, 'r2_log', 4):30} "
                f"{fmt(cell, 'spearman_final', 2):24} {cell['seconds']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mixtures", help="mixtures.csv of a real sweep (with --runs and --test-runs)")
    parser.add_argument("--runs", help="runs.csv of a real sweep")
    parser.add_argument("--test-runs", help="comma-separated runs held out by the unseen protocol")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--regmix", action="store_true", help="every law on RegMix's public 1M sweep")
    parser.add_argument(
        "--regmix-k",
        action="store_true",
        help="every law on RegMix 1M fitted on k = 32, 64, 128, 512 train runs",
    )
    parser.add_argument("--olmix", action="store_true", help="the target laws on olmix's DCLM swarm")
    parser.add_argument("--own-sweeps", action="store_true", help="every law on mixlab's own sweeps")
    args = parser.parse_args()
    if args.olmix:
        print(json.dumps({"olmix": olmix_table()}))
        return
    if args.own_sweeps:
        print(json.dumps({"own_sweeps": own_sweeps_table(args.folds)}))
        return
    if args.regmix_k:
        print(json.dumps({"regmix_1m_k": regmix_k_table()}))
        return
    if args.regmix:
        print(json.dumps({"regmix_1m": regmix_1m()}))
        return
    if args.mixtures:
        obs = load_observations(args.mixtures, args.runs)
        table = compare_laws(obs, args.test_runs.split(","), args.folds)
        print_table(table)
        setup = {"mixtures": args.mixtures, "runs": len(obs.runs), "steps": len(obs.distinct_steps)}
        print(
            json.dumps(
                {
                    "setup": {**setup, "domains": len(obs.eval_domains), "test_runs": args.test_runs},
                    "laws": table,
                }
            )
        )
        return
    n_steps, n_test, folds = (8, 4, 3) if args.quick else (20, 12, 4)
    steps = np.linspace(1000, 20_000, n_steps)
    train = dirichlet_mixtures(4, 5, seed=11, concentration=5.0)  # 4 "entropy" mixtures, as in the paper
    test = dirichlet_mixtures(n_test, 5, seed=12, concentration=2.0)
    props = np.vstack([train, test])
    runs = [f"train{i}" for i in range(4)] + [f"test{i}" for i in range(n_test)]
    obs = synthetic_bimix(props, steps, **TRUE, noise=0.002, seed=0, domains=DOMAINS, runs=runs)
    test_runs = runs[4:]
    tracemalloc.start()
    results: dict = {
        "setup": {"domains": 5, "runs": len(runs), "steps": n_steps, "noise": 0.002, "train_runs_unseen": 4}
    }
    table = compare_laws(obs, test_runs, folds)
    results["laws"] = table

    residuals = {}
    for residual in ("log", "relative", "absolute"):
        row = {}
        for protocol, kw in (("extrapolate", {}), ("unseen", {"test_runs": test_runs})):
            m = evaluate_law(lambda r=residual: get_law("bimix", residual=r), obs, protocol, **kw).metrics
            row[protocol] = summary_row(m)
        law = get_law("bimix", residual=residual).fit(obs)
        row["max_abs_alpha_error"] = float(np.abs(law.alpha_ - TRUE["alpha"]).max())
        row["max_abs_beta_error"] = float(np.abs(law.beta_ - TRUE["beta"]).max())
        residuals[residual] = row
    results["bimix_residual_space"] = residuals

    # optimiser agreement
    alpha, k = np.array([0.08, 0.15, 0.05]), np.array([2.0, 2.5, 1.5])
    closed = power_closed_form(alpha, k)
    grid_best = np.array([0.0, 0.0])
    for half, step in ((0.5, 1e-3), (2e-3, 1e-5)):  # a 1e-3 grid over the simplex, then 1e-5 around its best
        centre = grid_best if step < 1e-3 else np.array([0.5, 0.5])
        axes = [np.arange(max(c - half, 1e-5), min(c + half, 1.0), step) for c in centre]
        a, b = np.meshgrid(*axes, indexing="ij")
        grid = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], 1)
        grid = grid[grid[:, 2] > 0]
        grid_best = grid[np.argmin((k * grid ** (-alpha)).sum(1))][:2]
    grid_best = np.append(grid_best, 1 - grid_best.sum())
    free = optimize_power(alpha, k, np.zeros(3), np.ones(3))
    lo, hi = np.array([0.05, 0.05, 0.25]), np.array([1.0, 0.3, 1.0])
    bounded = optimize_power(alpha, k, lo, hi)
    full = get_law("bimix").fit(obs)
    s_star = 100_000.0
    t = {key: np.array(v) for key, v in TRUE.items()}
    true_opt = power_closed_form(t["alpha"], t["B"] * s_star ** -t["beta"] + t["C"])
    fitted_opt = optimize_law(full, s_star, np.zeros(5), np.ones(5)).r
    results["optimiser"] = {
        "closed_vs_grid_max_abs": float(np.abs(closed - grid_best).max()),
        "closed_vs_slsqp_max_abs": free.details["slsqp_max_abs_diff"],
        "bounded_kkt_vs_slsqp_max_abs": bounded.details["slsqp_max_abs_diff"],
        "fitted_vs_true_optimum_max_abs_at_100k_steps": float(np.abs(fitted_opt - true_opt).max()),
    }
    results["peak_memory_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)

    print_table(table)
    print("bimix residual space:", json.dumps(residuals))
    print("optimiser:", json.dumps(results["optimiser"]))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
