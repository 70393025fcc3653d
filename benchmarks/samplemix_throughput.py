"""SampleMix throughput: documents/s of `score` + `sample` with the fast embedder, and the sampler alone.

In one run:
1. the demo corpus (real text from registry packages, `--mb-per-domain` MB per domain) is scored
   (heuristic annotator on the default sample, `static` embedder, k-means, ordinal scorer; local engine
   with `--workers` processes) and sampled with a budget equal to the pool's tokens -> documents/s of
   score + sample end to end (target ≥ 2,000 docs/s on 2 cores), split into the per-document stages
   (embed pass, score pass, write, sample: `per_document_docs_per_s`, what a large corpus converges to) and
   the fixed costs that do not grow with the corpus (annotating the sample, training the scorer, k-means:
   `fixed_s`), plus the embedder alone in this process for reference; repeated on corpora `--scales` times
   as large (default 1, 2, 4) to show how cost grows with input: `growth_time_x{s}` = score + sample time
   at scale s over scale 1, next to `growth_documents_x{s}` (the demo corpus may cap a domain's text).
   The target is checked on the largest corpus: fixed costs (~1 s) and the workers' start-up and cold
   caches (~1 s) weigh on a corpus of 10k documents, which a throughput figure is not about;
2. the pure-numpy sampler on `--sampler-docs` synthetic documents (10 M by default): weights (min-max),
   budgeted counts without a cap and with `max_repeats=3` (target ≤ 5 s for counts of 10 M documents);
3. peak memory: max RSS of this process and of the worker processes.

The last stdout line is the JSON summary.

    python benchmarks/samplemix_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from mixlab.corpus import Corpus, read_shard  # noqa: E402
from mixlab.demo.corpus import build_demo_corpus  # noqa: E402
from mixlab.embed import get_embedder  # noqa: E402
from mixlab.engine import LocalEngine  # noqa: E402
from mixlab.samplemix.sample import SampleConfig, sample_corpus  # noqa: E402
from mixlab.samplemix.sampler import budgeted_counts, sampling_weights  # noqa: E402
from mixlab.samplemix.score import ScoreConfig, score_corpus  # noqa: E402


def max_rss_mb() -> dict[str, float]:
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def corpus_pass(root: Path, mb_per_domain: float, workers: int) -> dict[str, float]:
    root.mkdir(parents=True, exist_ok=True)
    corpus_dir = root / "corpus"
    build_demo_corpus(corpus_dir, max_mb_per_domain=mb_per_domain, seed=0)
    corpus = Corpus.open(corpus_dir)
    texts = [t for s in corpus.shards() for b in read_shard(s) for t in b.texts]
    embedder = get_embedder("static")
    embedder.embed(texts[:16])
    t0 = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t0

    engine = LocalEngine(workers)
    scores = root / "scores.parquet"
    t0 = time.perf_counter()
    report = score_corpus(corpus_dir, scores, ScoreConfig(quality="heuristic", seed=0), engine)
    score_s = time.perf_counter() - t0
    pool = int(pq.read_table(scores, columns=["tokens"]).column(0).to_numpy().sum())
    t0 = time.perf_counter()
    summary = sample_corpus(
        corpus_dir, scores, root / "sample", SampleConfig(budget_tokens=pool, seed=0), engine
    )
    sample_s = time.perf_counter() - t0
    n = report["documents"]
    t = report["timings"]
    per_document_s = t["embed_pass_s"] + t["score_pass_s"] + t["write_s"] + sample_s
    return {
        **{f"stage_{k}": v for k, v in t.items()},
        "fixed_s": t["annotate_s"] + t["scorer_s"] + t["kmeans_s"],
        "per_document_docs_per_s": n / per_document_s,
        "documents": n,
        "corpus_mb": sum(len(t.encode()) for t in texts) / 1e6,
        "pool_tokens": pool,
        "score_s": score_s,
        "sample_s": sample_s,
        "score_sample_docs_per_s": n / (score_s + sample_s),
        "score_docs_per_s": n / score_s,
        "embed_only_docs_per_s": len(texts) / embed_s,
        "realised_over_budget": summary["realised_over_budget"],
        "ordinal_mae": report["heads"]["ordinal"]["mae"],
        "classification_mae": report["heads"]["classification"]["mae"],
    }


def sampler_pass(n: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    quality, diversity = rng.random(n) * 9, rng.random(n)
    lengths = rng.integers(20, 4_000, n)
    budget = 2.0 * float(lengths.sum())
    t0 = time.perf_counter()
    p = sampling_weights(quality, diversity, 0.8)
    weights_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts = budgeted_counts(p, lengths, budget, np.random.default_rng(1))
    counts_s = time.perf_counter() - t0
    realised = float(counts @ lengths)
    t0 = time.perf_counter()
    capped = budgeted_counts(p**4, lengths, budget, np.random.default_rng(1), max_repeats=3)
    capped_s = time.perf_counter() - t0
    return {
        "sampler_docs": n,
        "weights_s": weights_s,
        "counts_s": counts_s,
        "counts_capped_s": capped_s,
        "weights_plus_counts_s": weights_s + counts_s,
        "sampler_realised_over_budget": realised / budget,
        "capped_max_count": int(capped.max()),
        "capped_realised_over_budget": float(capped @ lengths) / budget,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus and 1 M sampler documents")
    parser.add_argument("--mb-per-domain", type=float, default=None)
    parser.add_argument("--sampler-docs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scales", default=None, help="corpus size multiples, e.g. 1,2,4 (quick: 1,2)")
    args = parser.parse_args()
    mb = args.mb_per_domain or (0.25 if args.quick else 2.0)
    n = args.sampler_docs or (1_000_000 if args.quick else 10_000_000)
    root = Path(tempfile.mkdtemp(prefix="samplemix-bench-"))
    try:
        result = {"benchmark": "samplemix_throughput", "quick": args.quick, "workers": args.workers}
        scales = [float(v) for v in (args.scales or ("1,2" if args.quick else "1,2,4")).split(",")]
        base = corpus_pass(root / "x1", mb, args.workers)
        result.update(base)
        for scale in scales[1:]:
            run = corpus_pass(root / f"x{scale:g}", mb * scale, args.workers)
            shutil.rmtree(root / f"x{scale:g}", ignore_errors=True)
            result[f"growth_documents_x{scale:g}"] = run["documents"] / base["documents"]
            result[f"growth_time_x{scale:g}"] = (run["score_s"] + run["sample_s"]) / (
                base["score_s"] + base["sample_s"]
            )
            result[f"score_sample_docs_per_s_x{scale:g}"] = run["score_sample_docs_per_s"]
            result[f"per_document_docs_per_s_x{scale:g}"] = run["per_document_docs_per_s"]
            result[f"fixed_s_x{scale:g}"] = run["fixed_s"]
        result.update(sampler_pass(n))
        rss = max_rss_mb()
        result["peak_rss_mb"] = rss["self"]
        result["peak_rss_workers_mb"] = rss["children"]
        largest = f"_x{scales[-1]:g}" if len(scales) > 1 else ""
        result["score_sample_docs_per_s_largest"] = result[f"score_sample_docs_per_s{largest}"]
        result["targets"] = {
            "score_sample_docs_per_s>=2000 (largest corpus)": result["score_sample_docs_per_s_largest"]
            >= 2000,
            "sampler_10M_s<=5": n < 10_000_000 or result["weights_plus_counts_s"] <= 5,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for key, value in result.items():
        if key != "targets":
            print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
