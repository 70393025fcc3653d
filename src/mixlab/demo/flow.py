"""`mixlab demo`: both papers' recipes end to end on one corpus, compared, in one report.

Every stage runs the CLI verb a user would run (the typer app, in-process) or, for the evaluation models, the
library call the verbs use (`mixlab.proxy.train_run`). Every artefact stays in OUT; the equivalent shell
commands are appended to OUT/commands.sh. A stage whose outputs exist is skipped, so an interrupted demo resumes.

    OUT/corpus/                 the demo corpus (unless --corpus is given)
    OUT/stats/                  corpus_stats.json, natural.json (mixture), available.json (tokens per domain)
    OUT/entropy/                entropy.json, mixtures.csv (natural, uniform, se, ce, je, vne)
    OUT/sweep/                  proxy runs on se/ce/je/vne + random mixtures: mixtures.csv, runs.csv, runs/*/meta.json
    OUT/laws/                   bimix.law.json, metrics-<law>-<protocol>.json, compare-laws.json (every law, k-fold)
    OUT/optimum/mixture.json    BiMix-optimised mixture with bootstrap intervals, under availability caps
    OUT/doremi/mixture.json     DoReMi domain weights
    OUT/samplemix/              scores.parquet, sample/ (SampleMix), hybrid/ (BiMix targets, SampleMix documents)
    OUT/compare/<method>/seed<k>/meta.json   one evaluation model per method and seed
    OUT/results.json, OUT/report.html
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.files import atomic_path, read_json, write_json
from mixlab.mixture import Mixture, read_mixture_json, read_mixtures, write_mixture_json, write_mixtures
from mixlab.progress import log, quiet

LAWS = ("bimix", "dml", "regmix", "powerlaw")
PROTOCOLS = ("extrapolate", "unseen")
ENTROPY_MIXTURES = ("se", "ce", "je", "vne")
METHODS = ("natural", "uniform", "ce", "bimix-opt", "doremi", "samplemix", "hybrid")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of every stage. Tokens are in the demo tokenizer's tokens; `*_tokens` are per training run.

    [choice] Sized for signal within ~20 min on 2 idle cores: a 1,024-token vocabulary (the tiny model's
    embedding and head no longer dominate its compute, so the same seconds buy ~2x the steps of bpe:4096), 400k
    tokens per evaluation model (195 steps) and 320k per sweep run, three seeds, and a peak learning rate of
    1e-3 for every proxy and evaluation model. [measured] natural's mean validation loss over seeds 0-2 on the
    default demo corpus (400k tokens, batch 16, exp10): lr 3e-3 (the tiny preset's) 5.53 ± 0.174 (std), 1e-2
    5.62 ± 0.120, 1e-3 5.37 ± 0.019; at batch 4 (781 steps, 1.4x the seconds) 1e-3 reached 4.96 ± 0.021 and
    5e-4 5.18 ± 0.012. The whole default demo: 18 min 11 s on 2 idle cores (warm corpus cache; training at
    14.7k tok/s, this machine's passes ranged 13.8k-15.2k), natural's seed std 0.0186 nats, BiMix unseen
    R²(log) 0.855, bimix-opt -0.055 nats [-0.068, -0.042] against natural (paired, 3 seeds)."""

    max_mb_per_domain: float | None = 3.0
    tokenizer: str = "bpe:1024"
    model: str = "tiny"
    seq_len: int = 128
    batch_size: int = 16
    lr: float | None = 1e-3  # peak learning rate of every proxy and evaluation model (None: the preset's)
    val_tokens: int = 4096
    sweep_tokens: int = 320_000  # 156 steps: BiMix carries the sweep's curves to the evaluation models' 195
    sweep_evals: int = 6
    random_mixtures: int = 4
    eval_tokens: int = 400_000
    eval_evals: int = 5
    eval_subset_tokens: int | None = (
        512  # intermediate evaluations of the evaluation models: their curves are only drawn
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    bootstrap: int = 24
    max_epochs: float = 4.0
    min_weight: float = 0.01  # floor of every domain's share in the BiMix optimum (ours, not the paper's)
    entropy_max_tokens: int | None = 2_000_000
    doremi_tokens: int = 150_000
    annotate_documents: int | None = (
        None  # documents the SampleMix quality scorer learns from (None: score's default)
    )
    tokens_per_second: float = 15_000.0  # first guess of proxy training speed; corrected as runs finish
    compared_laws: tuple[str, ...] | None = None  # laws ranked by k-fold on the sweep (None: every law)
    text_field: str = "text"  # the JSON field holding a document's text (a user corpus)
    skip_bad_rows: bool = (
        False  # skip malformed rows of a user corpus (counted by each verb) instead of failing
    )

    @classmethod
    def quick(cls) -> DemoConfig:
        """Tiny settings for tests and a first look: two seeds, 36 steps per evaluation model (16 steps left
        the models above the unigram entropy of their own training mix)."""
        return cls(
            max_mb_per_domain=0.3,
            tokenizer="bpe:512",
            seq_len=64,
            batch_size=16,
            lr=None,
            val_tokens=512,
            sweep_tokens=12_288,
            sweep_evals=4,
            random_mixtures=2,
            eval_tokens=36_864,
            eval_evals=4,
            seeds=(0, 1),  # the paired intervals need two seeds at least
            bootstrap=10,
            entropy_max_tokens=200_000,
            doremi_tokens=4_096,
            annotate_documents=400,
            # [measured] without transfer: its fits took 53 s a fold of 6 quick runs (load ~13), 4x the others
            compared_laws=LAWS,
        )

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.batch_size

    @property
    def eval_steps(self) -> int:
        return self.eval_tokens // self.tokens_per_step

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class Stage:
    """One step of the demo: `run` produces `outputs` (paths relative to OUT); `estimate` is in seconds."""

    name: str
    title: str
    outputs: Callable[[], list[Path]]
    run: Callable[[], None]
    estimate: float

    def done(self) -> bool:
        outs = self.outputs()
        return bool(outs) and all(p.exists() for p in outs)


@dataclass
class Demo:
    """The demo's state: where things go and how big they are."""

    out: Path
    config: DemoConfig
    corpus: Path | None = None
    seed: int = 0
    workers: int | None = None
    engine: str = "local"
    ray_address: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ plumbing

    @property
    def corpus_path(self) -> Path:
        return self.corpus or self.out / "corpus"

    def p(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def cli(self, *args: Any) -> None:
        """Run `mixlab ARGS` in-process, exactly as a user would type it (recorded in OUT/commands.sh)."""
        from mixlab.cli import app

        argv = ["--seed", str(self.seed), "--engine", self.engine]
        if self.workers:
            argv += ["--workers", str(self.workers)]
        if self.ray_address:
            argv += ["--ray-address", self.ray_address]
        if quiet():
            argv.append("--quiet")
        argv += [str(a) for a in args]
        with open(self.p("commands.sh"), "a", encoding="utf-8") as fh:
            fh.write("mixlab " + shlex.join(argv) + "\n")
        app(args=argv, prog_name="mixlab", standalone_mode=False)

    # ------------------------------------------------------------------ stages

    def stages(self) -> list[Stage]:
        c = self.config
        sweep_runs = len(ENTROPY_MIXTURES) + c.random_mixtures
        train_s = 1.0 / self.training_speed()
        n_methods, n_seeds = len(METHODS), len(c.seeds)
        missing_models = sum(not p.exists() for p in self.compare_outputs())
        return [
            Stage("corpus", "build the demo corpus", lambda: [self.corpus_path], self.stage_corpus,
                  estimate=60.0 if self.corpus is None else 0.0),
            Stage("stats", "corpus stats and the natural mixture",
                  lambda: [self.p("stats", "available.json")], self.stage_stats, estimate=20.0),
            Stage("entropy", "entropy proxies and the SE/CE/JE/VNE mixtures",
                  lambda: [self.p("entropy", "mixtures.csv")], self.stage_entropy, estimate=40.0),
            Stage("sweep", f"proxy sweep: {sweep_runs} runs", lambda: [self.p("sweep", "done.json")],
                  self.stage_sweep, estimate=sweep_runs * c.sweep_tokens * train_s * 1.15 + 10),
            Stage("laws", "BiMix fit; both protocols for bimix, dml, regmix, powerlaw", self.law_outputs,
                  self.stage_laws, estimate=30.0),
            Stage("optimum", "BiMix-optimised mixture with bootstrap intervals",
                  lambda: [self.p("optimum", "mixture.json")], self.stage_optimum, estimate=5.0 + 0.3 * c.bootstrap),
            Stage("doremi", "DoReMi domain weights", lambda: [self.p("doremi", "mixture.json")], self.stage_doremi,
                  estimate=2 * c.doremi_tokens * train_s * 1.2 + 10),
            Stage("samplemix", "SampleMix scores, sample and the hybrid", self.samplemix_outputs,
                  self.stage_samplemix, estimate=60.0),
            Stage("compare", f"evaluation models: {n_methods} methods x {n_seeds} seed(s)",
                  self.compare_outputs, self.stage_compare,
                  estimate=missing_models * c.eval_tokens * train_s * 1.15 + 10),
            Stage("report", "results.json and report.html",
                  lambda: [self.p("report.html"), self.p("results.json")], self.stage_report, estimate=10.0),
        ]  # fmt: skip

    def training_speed(self) -> float:
        """Tokens per second of proxy training (evaluations included) on this machine: measured from finished
        runs of this OUT when there are any, else the configured first guess."""
        speeds = []
        for meta_path in [
            *self.p("sweep", "runs").glob("*/meta.json"),
            *self.p("compare").glob("*/*/meta.json"),
        ]:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            wall = meta.get("wall_seconds_this_session") or 0.0
            if wall > 0 and meta.get("tokens_trained_this_session"):
                speeds.append(meta["tokens_trained_this_session"] / wall)
        return float(np.median(speeds)) if speeds else self.config.tokens_per_second

    def stage_corpus(self) -> None:
        args = ["corpus", "demo", "--out", self.corpus_path]
        if self.config.max_mb_per_domain is not None:
            args += ["--max-mb-per-domain", self.config.max_mb_per_domain]
        self.cli(*args)

    def corpus_options(self) -> list[str]:
        """How every verb that reads the corpus reads it: the text field, and whether bad rows are skipped."""
        return ["--text-field", self.config.text_field] + (
            ["--skip-bad-rows"] if self.config.skip_bad_rows else []
        )

    def open_corpus(self) -> Any:
        from mixlab.corpus import Corpus

        return Corpus.open(self.corpus_path, text_field=self.config.text_field)

    @property
    def tokenizer(self) -> str:
        """The tokenizer spec every stage uses: a trained BPE is saved once as OUT/tokenizer.json."""
        saved = self.p("tokenizer.json")
        return str(saved) if saved.exists() else self.config.tokenizer

    def stage_stats(self) -> None:
        from mixlab.corpus import load_tokenizer, natural_mixture

        if self.config.tokenizer.startswith("bpe:") and not self.p("tokenizer.json").exists():
            trained = load_tokenizer(self.config.tokenizer, corpus=self.open_corpus())
            with atomic_path(self.p("tokenizer.json")) as tmp:
                trained.hf.save(str(tmp))

        stats_path = self.p("stats", "corpus_stats.json")
        self.cli("corpus", "stats", self.corpus_path, *self.corpus_options(), "--tokenizer", self.tokenizer,
                 "--json", stats_path)  # fmt: skip
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        write_mixture_json(
            self.p("stats", "natural.json"), Mixture.from_weights("natural", natural_mixture(stats))
        )
        write_json(self.p("stats", "available.json"), {d: v["tokens"] for d, v in stats["domains"].items()})

    def stage_entropy(self) -> None:
        args = ["entropy", self.corpus_path, *self.corpus_options(), "--out", self.p("entropy"), "--tokenizer", self.tokenizer,
                "--measures", ",".join(ENTROPY_MIXTURES), "--embedder", "static"]  # fmt: skip
        if self.config.entropy_max_tokens:
            args += ["--max-tokens-per-domain", self.config.entropy_max_tokens]
        self.cli(*args)

    def entropy_mixtures(self) -> dict[str, Mixture]:
        return {m.name: m for m in read_mixtures(self.p("entropy", "mixtures.csv"))}

    def proxy_args(self, tokens: int) -> list[Any]:
        """Options shared by `sweep` and `doremi`: the same tokenizer, model and validation sets everywhere."""
        c = self.config
        lr = ["--lr", c.lr] if c.lr is not None else []
        return [*self.corpus_options(), "--tokenizer", self.tokenizer, "--model", c.model, "--seq-len", c.seq_len, "--batch-size",
                c.batch_size, *lr, "--val-tokens", c.val_tokens, "--tokens-per-run", tokens]  # fmt: skip

    def stage_sweep(self) -> None:
        c = self.config
        entropy = self.entropy_mixtures()
        domains = list(next(iter(entropy.values())).weights)
        plan = self.p("plan", "sweep_mixtures.csv")
        random_csv = self.p("plan", "random_mixtures.csv")
        if c.random_mixtures and not random_csv.exists():
            self.cli("mixtures", "random", "--n", c.random_mixtures, "--prior", self.p("stats", "natural.json"),
                     "--out", random_csv)  # fmt: skip
        chosen = [entropy[name] for name in ENTROPY_MIXTURES if name in entropy]
        if c.random_mixtures:
            chosen += read_mixtures(random_csv)
        write_mixtures(plan, chosen, domains)
        self.cli("sweep", self.corpus_path, "--mixtures", plan, "--out", self.p("sweep"),
                 *self.proxy_args(c.sweep_tokens), "--evals", c.sweep_evals)  # fmt: skip
        write_json(self.p("sweep", "done.json"), {"runs": [m.name for m in chosen]})

    def law_outputs(self) -> list[Path]:
        return [self.p("laws", "bimix.law.json"), self.law_comparison_path] + [
            self.p("laws", f"metrics-{law}-{protocol}.json") for law in LAWS for protocol in PROTOCOLS
        ]

    @property
    def law_comparison_path(self) -> Path:
        return self.p("laws", "compare-laws.json")

    def stage_laws(self) -> None:
        mixtures, runs = self.p("sweep", "mixtures.csv"), self.p("sweep", "runs.csv")
        if not self.p("laws", "bimix.law.json").exists():
            self.cli("fit", "--mixtures", mixtures, "--runs", runs, "--law", "bimix", "--out",
                     self.p("laws", "bimix.law.json"))  # fmt: skip
        names = [m.name for m in read_mixtures(mixtures)]
        train_runs, test_runs = unseen_split(names)
        for law in LAWS:
            for protocol in PROTOCOLS:
                extra = (
                    ["--train-runs", ",".join(train_runs), "--test-runs", ",".join(test_runs)]
                    if protocol == "unseen"
                    else []
                )
                metrics = self.p("laws", f"metrics-{law}-{protocol}.json")
                if metrics.exists():
                    continue
                self.cli("evaluate", "--mixtures", mixtures, "--runs", runs, "--law", law, "--protocol", protocol,
                         *extra, "--out", metrics)  # fmt: skip
        if not self.law_comparison_path.exists():
            # the laws ranked by k-fold over the sweep's runs (`compare_laws`). [measured] 3 folds, not 5: a fold
            # fits every law (quick sweep, load ~13: transfer 53 s, dml 14 s, bimix 9 s, regmix 2 s, powerlaw 1 s)
            folds = min(3, len(names))
            if self.config.compared_laws is None:
                self.cli("evaluate", "--mixtures", mixtures, "--runs", runs, "--law", "all", "--folds", folds,
                         "--out", self.law_comparison_path)  # fmt: skip
            else:
                from mixlab.engine import get_engine
                from mixlab.laws import load_observations
                from mixlab.laws.evaluate import compare_laws

                with get_engine(self.engine, self.workers, self.ray_address) as eng:
                    comparison = compare_laws(load_observations(mixtures, runs), list(self.config.compared_laws),
                                              folds=folds, seed=self.seed, engine=eng)  # fmt: skip
                write_json(self.law_comparison_path, comparison.to_dict())

    def stage_optimum(self) -> None:
        c = self.config
        self.cli("optimize", self.p("laws", "bimix.law.json"), "--steps", c.eval_steps,
                 "--available", self.p("stats", "available.json"), "--target-tokens", c.eval_tokens,
                 "--max-epochs", c.max_epochs, "--min-weight", c.min_weight, "--bootstrap", c.bootstrap,
                 "--mixtures", self.p("sweep", "mixtures.csv"), "--runs", self.p("sweep", "runs.csv"),
                 "--reference", self.p("entropy", "mixtures.csv"), "--name", "bimix-opt",
                 "--out", self.p("optimum", "mixture.json"))  # fmt: skip

    def stage_doremi(self) -> None:
        c = self.config
        self.cli("doremi", self.corpus_path, "--out", self.p("doremi"),
                 *self.proxy_args(c.doremi_tokens))  # fmt: skip

    def samplemix_outputs(self) -> list[Path]:
        return [self.p("samplemix", "scores.parquet")] + [
            self.p("samplemix", name, "summary.json") for name in ("sample", "hybrid")
        ]

    def stage_samplemix(self) -> None:
        c = self.config
        scores = self.p("samplemix", "scores.parquet")
        if not scores.exists():
            annotate = ["--annotate-n", c.annotate_documents] if c.annotate_documents else []
            self.cli("score", self.corpus_path, *self.corpus_options(), "--tokenizer", self.tokenizer, *annotate,
                     "--out", scores)  # fmt: skip
        common = [
            self.corpus_path,
            *self.corpus_options(),
            "--scores",
            scores,
            "--budget-tokens",
            c.eval_tokens,
        ]
        if not self.p("samplemix", "sample", "summary.json").exists():
            self.cli("sample", *common, "--out", self.p("samplemix", "sample"))
        if not self.p("samplemix", "hybrid", "summary.json").exists():
            self.cli("sample", *common, "--target-mixture", self.p("optimum", "mixture.json"),
                     "--out", self.p("samplemix", "hybrid"))  # fmt: skip

    # ------------------------------------------------------------------ the comparison

    def method_mixtures(self) -> dict[str, Mixture]:
        """The domain mixture each domain-level method trains on (SampleMix and the hybrid: their samples')."""
        entropy = self.entropy_mixtures()
        found = {
            "natural": read_mixture_json(self.p("stats", "natural.json")),
            "uniform": entropy.get("uniform"),
            "ce": entropy.get("ce"),
        }
        for method, path in (("bimix-opt", self.p("optimum", "mixture.json")),
                             ("doremi", self.p("doremi", "mixture.json"))):  # fmt: skip
            if path.exists():
                found[method] = read_mixture_json(path)
        return {k: Mixture(k, v.weights, v.meta) for k, v in found.items() if v is not None}

    def train_config(self, seed: int) -> Any:
        from mixlab.proxy import TrainConfig

        c = self.config
        return TrainConfig(model=c.model, tokens=c.eval_tokens, seq_len=c.seq_len, batch_size=c.batch_size,
                           lr=c.lr, evals=c.eval_evals, eval_subset_tokens=c.eval_subset_tokens, seed=seed)  # fmt: skip

    def base_streams(self) -> Any:
        from mixlab.corpus import load_tokenizer
        from mixlab.engine import get_engine
        from mixlab.proxy import prepare_streams

        corpus = self.open_corpus()
        tokenizer = load_tokenizer(self.tokenizer, corpus=corpus)
        with get_engine(self.engine, self.workers, self.ray_address) as eng:
            streams = prepare_streams(corpus, tokenizer, val_tokens=self.config.val_tokens, engine=eng,
                                      skip_bad_rows=self.config.skip_bad_rows)  # fmt: skip
        return streams, tokenizer

    def stage_compare(self) -> None:
        from mixlab.engine import get_engine
        from mixlab.proxy.sample_streams import sample_streams
        from mixlab.proxy.sweep import train_runs

        streams, tokenizer = self.base_streams()
        plans: list[tuple[str, Any, Mixture]] = [
            (m, streams, mix) for m, mix in self.method_mixtures().items()
        ]
        for method in ("samplemix", "hybrid"):
            sample_dir = self.p("samplemix", "sample" if method == "samplemix" else "hybrid")
            if (sample_dir / "summary.json").exists():
                own = sample_streams(sample_dir, streams, tokenizer, self.p("compare", method, "streams"))
                plans.append((method, own, Mixture.from_weights(method, own_shares(own))))
        for method in METHODS:
            if method not in {p[0] for p in plans}:
                self.skipped.setdefault(f"compare:{method}", "its mixture or sample was not produced")
        for method, method_streams, mixture in plans:
            write_json(self.p("compare", method, "train_unigram.json"),
                       {"entropy": training_unigram_entropy(method_streams, mixture)})  # fmt: skip
        runs = [
            (method_streams, mixture, self.train_config(seed), self.p("compare", method, f"seed{seed}"))
            for seed in self.config.seeds
            for method, method_streams, mixture in plans
        ]
        log(f"[bold]evaluation models[/bold]: {len(plans)} methods x {len(self.config.seeds)} seeds")
        # one engine task per model: in this process one after another locally, side by side on a Ray cluster
        with get_engine(self.engine, self.workers, self.ray_address) as eng:
            for _ in train_runs(eng, runs, eval_domains=streams.domains, label="evaluation model"):
                pass

    def compare_outputs(self) -> list[Path]:
        """Every evaluation model's meta.json: adding seeds later reruns only the new ones."""
        return [self.p("compare", m, f"seed{k}", "meta.json") for m in METHODS for k in self.config.seeds]

    def comparison(self) -> dict[str, Any]:
        """The comparison as results.json holds it: per method its mixture and every seed's losses and curve."""
        methods: dict[str, Any] = {}
        domains: list[str] = []
        scale: dict[str, Any] = {}
        for method in METHODS:
            runs = []
            for seed in self.config.seeds:
                meta_path = self.p("compare", method, f"seed{seed}", "meta.json")
                if not meta_path.exists():
                    continue
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                domains = domains or list(meta["losses"])
                curve = [
                    [h["step"], h["tokens"], float(np.mean(list(h["losses"].values())))]
                    for h in meta["history"]
                ]
                runs.append({"seed": seed, "val_loss": meta["losses"], "curve": curve, "epochs": meta.get("epochs"),
                             "tokens": meta.get("tokens"), "tokens_per_second": meta.get("tokens_per_second")})  # fmt: skip
                scale = {"model": self.config.model, "parameters": meta.get("parameters"),
                         "tokens_per_model": meta.get("tokens"), "steps": meta.get("steps"),
                         "seq_len": self.config.seq_len, "validation_tokens_per_domain": self.config.val_tokens}  # fmt: skip
                weights = dict(zip(meta["domains"], meta["weights"], strict=True))
            if runs:
                methods[method] = {"mixture": weights, "runs": runs}
                unigram = self.p("compare", method, "train_unigram.json")
                if unigram.exists():
                    methods[method]["train_unigram_entropy"] = read_json(unigram)["entropy"]
                sample = self.p("samplemix", "sample" if method == "samplemix" else "hybrid", "summary.json")
                if method in ("samplemix", "hybrid") and sample.exists():
                    summary = read_json(sample)
                    methods[method]["sample"] = {
                        k: summary.get(k) for k in ("budget_tokens", "realised_tokens")
                    }
        return {"domains": domains, "methods": methods, "scale": scale, "seeds": list(self.config.seeds)}

    def stage_report(self) -> None:
        from mixlab.report import collect, comparison_table, reading, verdict

        comparison = self.comparison()
        metrics = {}
        for law in LAWS:
            for protocol in PROTOCOLS:
                path = self.p("laws", f"metrics-{law}-{protocol}.json")
                if path.exists():
                    m = json.loads(path.read_text(encoding="utf-8"))
                    applicable = m.get("applicable", True)
                    summary = m["summary"] if applicable else {"not_applicable": m.get("reason")}
                    metrics.setdefault(law, {})[protocol] = summary
        optimum = self.p("optimum", "mixture.json")
        entropy = self.p("entropy", "entropy.json")
        law_metrics = [m for _, m in collect([self.p("laws")]).metrics] if self.p("laws").exists() else []
        rows = comparison_table(comparison) if comparison["methods"] else []
        results = {
            "comparison": comparison,
            "comparison_table": [
                {"method": r["method"], "n_seeds": r["n_seeds"], "avg_mean": r["avg_mean"], "avg_std": r["avg_std"],
                 "domains": {d: {"mean": m, "std": s} for d, (m, s) in r["domains"].items()}}
                for r in rows
            ],  # fmt: skip
            "law_metrics": metrics,
            "law_comparison": read_json(self.law_comparison_path) if self.law_comparison_path.exists() else None,
            "optimum": read_mixture_json(optimum).to_dict() if optimum.exists() else None,
            "verdict": verdict(comparison, law_metrics, read_mixture_json(optimum) if optimum.exists() else None,
                               read_json(entropy) if entropy.exists() else None) if comparison["methods"] else None,
            "reading": reading(comparison if comparison["methods"] else None, law_metrics),
            "config": self.config.to_dict(),
            "seed": self.seed,
            "stage_seconds": self.timings,
            "skipped": self.skipped,
        }  # fmt: skip
        write_json(self.p("results.json"), results)
        self.cli("report", self.out, "--out", self.p("report.html"), "--title", "mixlab demo")

    # ------------------------------------------------------------------ running

    def run(self, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Run (or resume) every stage with a progress display; returns results.json's content."""
        self.out.mkdir(parents=True, exist_ok=True)
        stages = [s for s in self.stages() if not only or s.name in only]
        timings_path = self.p("stage_seconds.json")
        if timings_path.exists():
            self.timings.update(json.loads(timings_path.read_text(encoding="utf-8")))
        spent, planned = 0.0, 0.0  # measured and estimated seconds of the stages run so far
        total_start = time.perf_counter()
        for i, stage in enumerate(stages, start=1):
            if stage.name != "report" and stage.done():
                log(f"[dim][{i}/{len(stages)}] {stage.title}: done already, skipped[/dim]")
                continue
            # this machine's pace so far (shrunk towards 1 while little has been measured)
            pace = (spent + 60.0) / (planned + 60.0)
            left = sum(s.estimate for s in stages[i - 1 :] if s.name == "report" or not s.done()) * pace
            log(f"[bold cyan][{i}/{len(stages)}] {stage.title}[/bold cyan] — about "
                f"{_mmss(stage.estimate * pace)} for this stage, {_mmss(left)} left in total")  # fmt: skip
            start = time.perf_counter()
            stage.run()
            elapsed = time.perf_counter() - start
            spent, planned = spent + elapsed, planned + stage.estimate
            self.timings[stage.name] = round(elapsed, 1)
            write_json(timings_path, self.timings)
            log(f"[dim]{stage.name} took {_mmss(elapsed)}[/dim]")
        log(f"[bold green]demo finished in {_mmss(time.perf_counter() - total_start)}[/bold green]: "
            f"{self.p('report.html')}")  # fmt: skip
        return (
            json.loads(self.p("results.json").read_text(encoding="utf-8"))
            if self.p("results.json").exists()
            else {}
        )


def unseen_split(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Train and test runs of the unseen-mixture protocol: the entropy mixtures and the first half of the random
    ones train, the other random ones (at least one) are predicted.

    [measured] The entropy mixtures all sit near the natural mixture (shares 0.024-0.136 on the quick demo, vne's
    wiki 0.445 aside), while random mixtures reach shares of 0.002-0.41: trained on the entropy mixtures alone,
    BiMix extrapolated to shares it never saw (median per-domain R²(log) 0.586 on the quick sweep); with one
    random mixture among the training runs, 0.834 and 0.904 on the two held-out ones."""
    random = [n for n in names if n not in ENTROPY_MIXTURES]
    if not random:
        raise BadInput(
            "the unseen-mixture protocol needs random mixtures in the sweep (random_mixtures >= 1)"
        )
    n_train = len(random) // 2
    return [n for n in names if n in ENTROPY_MIXTURES] + random[:n_train], random[n_train:]


def own_shares(streams: Any) -> dict[str, float]:
    """Token share of each domain in a sample's training streams (the domain mix SampleMix produced)."""
    return {d: float(streams.train_tokens(d)) for d in streams.domains}


def training_unigram_entropy(streams: Any, mixture: Mixture) -> float:
    """Entropy (nats) of the token distribution a run on `mixture` trains on: the domains' unigram distributions
    weighted by the mixture (the loss a model that learnt only token frequencies would reach on its own data)."""
    weights = dict(zip(streams.domains, mixture.vector(streams.domains), strict=True))
    counts = {d: np.bincount(np.asarray(streams.train(d))) for d in streams.domains if weights[d] > 0}
    vocab = max(len(c) for c in counts.values())
    p = sum(weights[d] * np.pad(c, (0, vocab - len(c))) / c.sum() for d, c in counts.items())
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def _mmss(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_demo(out: str | Path, quick: bool = False, corpus: str | Path | None = None, seed: int = 0,
             workers: int | None = None, engine: str = "local", ray_address: str | None = None,
             **overrides: Any) -> dict[str, Any]:  # fmt: skip
    """Run the whole demo into `out`; `overrides` replace DemoConfig fields. Returns results.json's content."""
    config = DemoConfig.quick() if quick else DemoConfig()
    unknown = [k for k in overrides if k not in {f.name for f in dataclasses.fields(DemoConfig)}]
    if unknown:
        raise BadInput(f"unknown demo setting '{unknown[0]}'")
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    corpus_path = Path(corpus) if corpus is not None else None
    if corpus_path is not None and not corpus_path.exists():
        raise BadInput(f"{corpus_path}: corpus does not exist")
    demo = Demo(
        Path(out), config, corpus_path, seed=seed, workers=workers, engine=engine, ray_address=ray_address
    )
    return demo.run()


__all__ = ["METHODS", "Demo", "DemoConfig", "run_demo"]
