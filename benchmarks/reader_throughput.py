"""Corpus reading and `corpus stats` throughput against bare gzip + JSON decoding, and memory as input grows.

Input: real text (the Python standard library's modules, ~1.5 KB documents) written as jsonl.gz shards of
two domains. Measured in one run, in a fresh process per input size (so peak RSS belongs to that size):

  raw      gzip.open + json.loads of every line, nothing else          (the reference)
  reader   mixlab's `read_shard` over the corpus (validation, ids, batches)
  stats    `corpus_stats` with the gpt2 tokenizer on the local engine, one worker (adds tokenization)

Prints docs/s and MB/s per pass, the ratios reader/raw and stats/raw, peak RSS per size, and how the reader's
time and peak memory grow at 2x and 4x the input (time should double, memory should stay flat). The last line
of stdout is the JSON summary collected by benchmarks/run_all.py.

    python benchmarks/reader_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

DOCS_PER_SHARD = 2_000


def stdlib_documents() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.extend(text[i : i + 1500] for i in range(0, len(text), 1500) if text[i : i + 1500].strip())
    return docs


def write_corpus(root: Path, megabytes: float) -> int:
    """jsonl.gz shards of two domains holding ~`megabytes` of text; returns the number of documents."""
    docs = stdlib_documents()
    target = int(megabytes * 1e6)
    written = n = shard = 0
    while written < target:
        domain = ("code", "prose")[shard % 2]
        path = root / domain / f"part-{shard:04d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
            for _ in range(DOCS_PER_SHARD):
                text = docs[n % len(docs)]
                fh.write(json.dumps({"text": text}) + "\n")
                written += len(text.encode())
                n += 1
                if written >= target:
                    break
        shard += 1
    return n


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: Path, which: str) -> dict:
    """One pass over the corpus at `root` in this process: seconds, documents, bytes, peak RSS."""
    from mixlab.corpus import Corpus, ReadStats, corpus_stats, load_tokenizer, read_shard
    from mixlab.engine import LocalEngine

    corpus = Corpus.open(root)
    if which == "stats":
        tokenizer = load_tokenizer("gpt2")
    start = time.perf_counter()
    docs = nbytes = 0
    if which == "raw":
        for shard in corpus.shards():
            with gzip.open(shard.path, "rb") as fh:
                for line in fh:
                    text = json.loads(line)["text"]
                    docs += 1
                    nbytes += len(text.encode("utf-8"))
    elif which == "reader":
        stats = ReadStats()
        for shard in corpus.shards():
            for _ in read_shard(shard, stats=stats):
                pass
        docs, nbytes = stats.documents, stats.bytes
    else:
        result = corpus_stats(corpus, tokenizer, LocalEngine(1))
        docs, nbytes = result["total"]["documents"], result["total"]["bytes"]
    seconds = time.perf_counter() - start
    return {
        "pass": which,
        "seconds": seconds,
        "documents": docs,
        "bytes": nbytes,
        "peak_rss_mb": peak_rss_mb(),
    }


def in_fresh_process(root: Path, which: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(root)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small input (CI smoke run)")
    parser.add_argument("--child", nargs=2, metavar=("PASS", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[1]), args.child[0])))
        return

    base_mb = 1.0 if args.quick else 6.0
    results: dict[str, dict[int, dict]] = {"raw": {}, "reader": {}, "stats": {}}
    with tempfile.TemporaryDirectory(prefix="mixlab-bench-reader-") as tmp:
        for scale in (1, 2, 4):
            root = Path(tmp) / f"x{scale}"
            write_corpus(root, base_mb * scale)
            for which in results:
                if which == "stats" and scale > 1 and args.quick:
                    continue
                results[which][scale] = in_fresh_process(root, which)

    print(f"{'pass':8} {'size':>5} {'MB':>7} {'docs/s':>10} {'MB/s':>7} {'peak RSS MB':>12}")
    for which, by_scale in results.items():
        for scale, r in by_scale.items():
            print(
                f"{which:8} {scale:>4}x {r['bytes'] / 1e6:7.1f} {r['documents'] / r['seconds']:10,.0f} "
                f"{r['bytes'] / 1e6 / r['seconds']:7.1f} {r['peak_rss_mb']:12.0f}"
            )

    def rate(which: str, scale: int = 1) -> float:
        r = results[which][scale]
        return r["bytes"] / r["seconds"]

    reader = results["reader"]
    summary = {
        "name": "reader_throughput",
        "quick": args.quick,
        "input_mb": round(reader[1]["bytes"] / 1e6, 2),
        "reference": "gzip + json.loads of every line",
        "ratio": round(rate("reader") / rate("raw"), 3),
        "stats_ratio": round(rate("stats") / rate("raw"), 3),
        "reader_mb_per_s": round(rate("reader") / 1e6, 2),
        "reader_docs_per_s": round(reader[1]["documents"] / reader[1]["seconds"]),
        "stats_mb_per_s": round(rate("stats") / 1e6, 2),
        "raw_mb_per_s": round(rate("raw") / 1e6, 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for by in results.values() for r in by.values()), 1),
        "time_growth_2x": round(reader[2]["seconds"] / reader[1]["seconds"], 2),
        "time_growth_4x": round(reader[4]["seconds"] / reader[1]["seconds"], 2),
        "memory_growth_2x": round(reader[2]["peak_rss_mb"] / reader[1]["peak_rss_mb"], 2),
        "memory_growth_4x": round(reader[4]["peak_rss_mb"] / reader[1]["peak_rss_mb"], 2),
    }
    if not args.quick:
        stats = results["stats"]
        summary["stats_memory_growth_4x"] = round(stats[4]["peak_rss_mb"] / stats[1]["peak_rss_mb"], 2)
    print(
        f"reader = {summary['ratio']:.2f}x raw decode, stats (with gpt2) = {summary['stats_ratio']:.2f}x raw; "
        f"reader time x{summary['time_growth_2x']}/x{summary['time_growth_4x']} and peak memory "
        f"x{summary['memory_growth_2x']}/x{summary['memory_growth_4x']} at 2x/4x input"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
