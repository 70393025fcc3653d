"""Entropy pass throughput vs tokenization alone, peak memory, and cost growth with input size.

On the same real text (the Python standard library's sources, split into 4 disjoint interleaved
quarters), in one run:

1. tokens/s of reading + tokenizing alone (the same reader and `Tokenizer.encode_flat` the pass uses)
   vs tokens/s of the whole entropy pass (`profile_corpus`, SE/CE/JE, inline engine) -> ratio
   (target >= 0.8: counting is a small overhead on tokenization);
2. peak traced memory (tracemalloc: numpy and Python allocations) of the pass, and the process's max RSS;
3. the pass on 1x, 2x and 4x the input: seconds and peak memory, as growth ratios.

Timings are the best of `--repeats` alternating runs, as wall-clock and as process CPU time (which
counts the tokenizer's threads and is less disturbed by other load on a shared machine); both ratios
are reported. The last stdout line is the JSON summary.

    python benchmarks/entropy_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")

from mixlab.corpus import Corpus, load_tokenizer, read_shard  # noqa: E402
from mixlab.engine import LocalEngine  # noqa: E402
from mixlab.entropy import profile_corpus  # noqa: E402


def build_corpora(root: Path, bytes_per_quarter: int, files_per_shard: int = 40) -> dict[int, Path]:
    """Corpora of 1, 2 and 4 disjoint quarters of the stdlib sources (domain 'code'), as JSONL shards."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts
    )
    quarters: list[list[str]] = [[] for _ in range(4)]
    sizes = [0] * 4
    for i, path in enumerate(files):
        q = i % 4
        if sizes[q] >= bytes_per_quarter:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            quarters[q].append(text)
            sizes[q] += len(text.encode("utf-8"))
    corpora = {}
    for scale in (1, 2, 4):
        texts = [t for q in quarters[:scale] for t in q]
        domain = root / f"x{scale}" / "code"
        domain.mkdir(parents=True)
        for k in range(0, len(texts), files_per_shard):
            with open(domain / f"part{k // files_per_shard:04d}.jsonl", "w", encoding="utf-8") as fh:
                for t in texts[k : k + files_per_shard]:
                    fh.write(json.dumps({"text": t}) + "\n")
        corpora[scale] = root / f"x{scale}"
    return corpora


def tokenize_only(corpus: Corpus, tokenizer) -> int:
    tokens = 0
    for shard in corpus.shards():
        for batch in read_shard(shard):
            ids, _ = tokenizer.encode_flat(batch.texts)
            tokens += len(ids)
    return tokens


def entropy_pass(corpus: Corpus, tokenizer):
    return profile_corpus(corpus, tokenizer, LocalEngine(1), measures=("se", "ce", "je"), seq_len=1024)


def timed(fn, *args):
    """(wall seconds, CPU seconds of this process, result) of fn(*args)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def best_of(repeats: int, corpus: Corpus, tokenizer) -> dict:
    """Alternate tokenize-only and the entropy pass `repeats` times; the best wall and CPU time of each."""
    best = {
        "tok_wall": float("inf"),
        "tok_cpu": float("inf"),
        "ent_wall": float("inf"),
        "ent_cpu": float("inf"),
    }
    for k in range(repeats):
        # ABBA order: neither side always runs first (warm caches, background load drifting)
        for name in ("tok", "ent") if k % 2 == 0 else ("ent", "tok"):
            wall, cpu, result = timed(tokenize_only if name == "tok" else entropy_pass, corpus, tokenizer)
            best[f"{name}_wall"], best[f"{name}_cpu"] = (
                min(best[f"{name}_wall"], wall),
                min(best[f"{name}_cpu"], cpu),
            )
            if name == "tok":
                tokens = result
            else:
                profile = result
    assert profile.domains["code"]["tokens"] == tokens
    best["tokens"] = tokens
    best["unique_pairs"] = profile.domains["code"]["unique_pairs"]
    return best


def traced_peak(fn, *args) -> float:
    """Peak traced allocation (MB) during fn(*args)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small input (~1 MB per quarter), 2 repeats.")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    bytes_per_quarter = (1 << 20) if args.quick else (6 << 20)
    repeats = args.repeats or (2 if args.quick else 4)

    tokenizer = load_tokenizer("gpt2")
    with tempfile.TemporaryDirectory(prefix="mixlab-bench-entropy-") as tmp:
        corpora = {s: Corpus.open(p) for s, p in build_corpora(Path(tmp), bytes_per_quarter).items()}
        base = corpora[1]
        tokenize_only(base, tokenizer)  # warm the page cache and the tokenizer

        scaling = []
        for scale, corpus in corpora.items():
            best = best_of(repeats, corpus, tokenizer)
            peak = traced_peak(entropy_pass, corpus, tokenizer)
            row = {
                "scale": scale,
                "tokens": best["tokens"],
                "unique_pairs": best["unique_pairs"],
                "tokenize_seconds": round(best["tok_wall"], 3),
                "entropy_seconds": round(best["ent_wall"], 3),
                "tokenize_cpu_seconds": round(best["tok_cpu"], 3),
                "entropy_cpu_seconds": round(best["ent_cpu"], 3),
                "ratio": round(best["tok_wall"] / best["ent_wall"], 3),
                "ratio_cpu": round(best["tok_cpu"] / best["ent_cpu"], 3),
                "peak_traced_mb": round(peak, 1),
            }
            scaling.append(row)
            print(
                f"scale {scale}x: {row['tokens']:,} tokens, {row['unique_pairs']:,} distinct pairs | "
                f"tokenize {row['tokens'] / best['tok_wall']:,.0f} tok/s, entropy pass "
                f"{row['tokens'] / best['ent_wall']:,.0f} tok/s: ratio {row['ratio']:.3f} "
                f"(CPU-time ratio {row['ratio_cpu']:.3f}) | peak traced memory {peak:.1f} MB"
            )
    one, two, four = scaling
    summary = {
        "benchmark": "entropy_throughput",
        "quick": args.quick,
        "tokens": one["tokens"],
        "tokenize_tokens_per_s": round(one["tokens"] / one["tokenize_seconds"]),
        "entropy_tokens_per_s": round(one["tokens"] / one["entropy_seconds"]),
        "ratio": one["ratio"],
        "ratio_cpu": one["ratio_cpu"],
        "ratio_cpu_worst_scale": min(r["ratio_cpu"] for r in scaling),
        "target_ratio": 0.8,
        "peak_traced_mb": one["peak_traced_mb"],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "input_growth_2x": round(two["tokens"] / one["tokens"], 3),
        "input_growth_4x": round(four["tokens"] / one["tokens"], 3),
        "time_growth_2x": round(two["entropy_seconds"] / one["entropy_seconds"], 3),
        "time_growth_4x": round(four["entropy_seconds"] / one["entropy_seconds"], 3),
        "cpu_time_growth_4x": round(four["entropy_cpu_seconds"] / one["entropy_cpu_seconds"], 3),
        "memory_growth_2x": round(two["peak_traced_mb"] / one["peak_traced_mb"], 3),
        "memory_growth_4x": round(four["peak_traced_mb"] / one["peak_traced_mb"], 3),
        "distinct_pairs_growth_4x": round(four["unique_pairs"] / one["unique_pairs"], 3),
        "scaling": scaling,
    }
    print(
        f"ratio (entropy pass / tokenize alone, tokens/s) at 1x: {summary['ratio']:.3f} wall, "
        f"{summary['ratio_cpu']:.3f} CPU; worst CPU ratio over scales {summary['ratio_cpu_worst_scale']:.3f} "
        "(target >= 0.8)"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
