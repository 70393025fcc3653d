"""Exact token counts (`Tokenizer.count_tokens`, cached by chunk) against encoding every text in full.

Input: the demo corpus (real text from registry packages, `--mb-per-domain` MB per domain), read shard by
shard as a corpus pass does. For each tokenizer (gpt2, and a byte-level BPE of 4,096 trained on the corpus),
measured in one run:

  full     `count_tokens_encoded`: every text through the encoder                    (the reference)
  cold     `count_tokens` on a freshly loaded tokenizer, shard after shard (as a worker starts)
  warm     `count_tokens` again over the same shards (every chunk cached)

Prints seconds and the ratios cold/full and warm/full, and the number of documents whose counts differ from
the reference (must be 0). The last line of stdout is the JSON summary collected by benchmarks/run_all.py.

    python benchmarks/token_count.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from mixlab.corpus import Corpus, load_tokenizer, read_shard  # noqa: E402
from mixlab.demo.corpus import build_demo_corpus  # noqa: E402


def timed(fn, shards: list[list[str]]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    counts = [n for texts in shards for n in fn(texts)]
    return time.perf_counter() - start, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.25 MB per domain")
    parser.add_argument("--mb-per-domain", type=float, default=None)
    args = parser.parse_args()
    mb = args.mb_per_domain or (0.25 if args.quick else 2.0)
    root = Path(tempfile.mkdtemp(prefix="token-count-bench-"))
    try:
        build_demo_corpus(root / "corpus", max_mb_per_domain=mb, seed=0)
        corpus = Corpus.open(root / "corpus")
        shards = [[t for b in read_shard(s) for t in b.texts] for s in corpus.shards()]
        result: dict = {
            "benchmark": "token_count",
            "quick": args.quick,
            "documents": sum(map(len, shards)),
            "corpus_mb": sum(len(t.encode()) for texts in shards for t in texts) / 1e6,
        }
        for spec in ("gpt2", "bpe:4096"):
            load_tokenizer(spec, corpus=corpus)  # a bpe is trained (and cached) here, outside the timings
            full_s, reference = timed(load_tokenizer(spec, corpus=corpus).count_tokens_encoded, shards)
            tokenizer = load_tokenizer(spec, corpus=corpus)
            cold_s, cold = timed(tokenizer.count_tokens, shards)
            warm_s, warm = timed(tokenizer.count_tokens, shards)
            name = spec.replace(":", "")
            result[f"{name}_full_s"] = full_s
            result[f"{name}_cold_s"] = cold_s
            result[f"{name}_warm_s"] = warm_s
            result[f"{name}_cold_over_full"] = cold_s / full_s
            result[f"{name}_warm_over_full"] = warm_s / full_s
            result[f"{name}_mismatched_documents"] = sum(
                a != r or b != r for a, b, r in zip(cold, warm, reference, strict=True)
            )
            result[f"{name}_tokens"] = sum(reference)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for key, value in result.items():
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
