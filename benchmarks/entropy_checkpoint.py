"""The entropy pass's checkpoints: what saving them costs, how large they get, what resuming saves.

On the demo corpus (real text from registry packages, `--mb-per-domain` MB per domain; SE/CE/JE, gpt2,
`--workers` local processes), in one run:

1. the pass without a checkpoint vs the pass checkpointing as often as it may (`checkpoint_every_s=0`, i.e.
   after every shard unless writing takes over 5 % of the pass) -> time ratio (the default, every 60 s,
   costs a fraction of this on a pass long enough to checkpoint at all) and the checkpoint's size;
2. a pass stopped (KeyboardInterrupt, as on Ctrl-C) after 90 % of its shards, then resumed: the resumed
   run's time over a whole pass's (both on new workers, as a new command would start), and whether its
   results are identical (they must be).

The last stdout line is the JSON summary.

    python benchmarks/entropy_checkpoint.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")

from mixlab.corpus import Corpus, load_tokenizer  # noqa: E402
from mixlab.demo.corpus import build_demo_corpus  # noqa: E402
from mixlab.engine import Engine, LocalEngine  # noqa: E402
from mixlab.entropy import profile_corpus  # noqa: E402
from mixlab.entropy.counting import shard_tasks  # noqa: E402

MEASURES = ("se", "ce", "je")


class StopAfter(Engine):
    """An engine that raises KeyboardInterrupt (like Ctrl-C) after `n` results of its inner engine."""

    def __init__(self, inner: Engine, n: int) -> None:
        self.inner, self.n = inner, n

    def imap(self, fn, items, description=""):
        for k, result in enumerate(self.inner.imap(fn, items, description)):
            if k == self.n:
                raise KeyboardInterrupt
            yield result


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.25 MB per domain")
    parser.add_argument("--mb-per-domain", type=float, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    mb = args.mb_per_domain or (0.25 if args.quick else 2.0)
    with tempfile.TemporaryDirectory(prefix="mixlab-bench-ckpt-") as tmp:
        root = Path(tmp) / "corpus"
        build_demo_corpus(root, max_mb_per_domain=mb, seed=0)
        corpus = Corpus.open(root)
        tokenizer = load_tokenizer("gpt2")
        shards = len(shard_tasks(corpus))
        work = Path(tmp) / "entropy.work"
        checkpoint = work / "entropy.checkpoint"
        with LocalEngine(args.workers) as engine:
            profile_corpus(corpus, tokenizer, engine, MEASURES)  # start the workers, warm their caches
            plain, plain_s = timed(lambda: profile_corpus(corpus, tokenizer, engine, MEASURES))
            _, saving_s = timed(
                lambda: profile_corpus(corpus, tokenizer, engine, MEASURES, work=work, checkpoint_every_s=0)
            )
        size_mb = checkpoint.stat().st_size / 1e6 if checkpoint.exists() else 0.0
        checkpoint.unlink(missing_ok=True)
        # resuming starts a new command: compare with a whole pass on new (cold) workers
        with LocalEngine(args.workers) as engine:
            _, cold_s = timed(lambda: profile_corpus(corpus, tokenizer, engine, MEASURES))
        done_before = max(1, int(0.9 * shards))
        with LocalEngine(args.workers) as engine, contextlib.suppress(KeyboardInterrupt):
            stopping = StopAfter(engine, done_before)
            profile_corpus(corpus, tokenizer, stopping, MEASURES, work=work, checkpoint_every_s=0)
        with LocalEngine(args.workers) as engine:
            resumed, resumed_s = timed(lambda: profile_corpus(corpus, tokenizer, engine, MEASURES, work=work))
    summary = {
        "benchmark": "entropy_checkpoint",
        "quick": args.quick,
        "workers": args.workers,
        "shards": shards,
        "tokens": sum(d["tokens"] for d in plain.domains.values()),
        "pass_s": round(plain_s, 3),
        "pass_checkpointing_every_shard_s": round(saving_s, 3),
        "checkpointing_time_ratio": round(saving_s / plain_s, 3),
        "checkpoint_mb_last": round(size_mb, 1),
        "resumed_after_shards": done_before,
        "pass_new_workers_s": round(cold_s, 3),
        "resumed_pass_new_workers_s": round(resumed_s, 3),
        "resumed_time_ratio": round(resumed_s / cold_s, 3),
        "resumed_identical": resumed.to_dict() == plain.to_dict(),
    }
    for key, value in summary.items():
        print(f"{key:34s} {value}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
