"""Proxy training throughput: mixlab's data pipeline vs the same model fed pre-made tensors; bf16 vs fp32.

On real text (this Python's standard library: source files and docstrings as two domains, a byte-level
BPE of 8,192 trained on them), with the `tiny` preset at the sweep defaults (seq-len 128, batch 16), in
one process:

1. pipeline overhead: blocks of training steps fed by `MixtureSampler.next_batch` + `batch_to_device`
   (exactly what `train_run` does) alternate (ABBA) with blocks fed tensors made before timing; the
   best block of each (wall clock, and process CPU time, which other load on a shared machine disturbs
   less) gives tokens/s and overhead = t_pipeline / t_premade - 1 (target <= 5 %). Because
   a shared machine makes the difference of two noisy timings unreliable, the sampler's own time per
   batch, as a fraction of a training step, is reported too (`sampler_fraction`);
2. tokens/s of the tiny preset with fp32 and with bf16 autocast (alternating blocks) — the measurement
   behind `--precision auto` on CPU;
3. peak resident memory of the process.

    python benchmarks/proxy_pipeline.py [--quick]

The last stdout line is the JSON summary.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mixlab.corpus import Corpus, load_tokenizer  # noqa: E402
from mixlab.proxy import MixtureSampler, prepare_streams  # noqa: E402
from mixlab.proxy.model import build_model  # noqa: E402
from mixlab.proxy.train import batch_to_device, make_optimizer, train_step  # noqa: E402


def build_corpus(root: Path, max_bytes: int) -> Path:
    """Two domains from the standard library: `code` (module sources) and `docs` (their docstrings)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code, docs, size = [], [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or size >= max_bytes:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            continue
        code.append(text)
        size += len(text)
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(doc)
    for name, texts in (("code", code), ("docs", docs)):
        (root / name).mkdir(parents=True)
        with open(root / name / "part.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    return root


def time_block(model, optimizer, batches, device, precision) -> tuple[float, float]:
    """(wall, process CPU) seconds for one training step per item of `batches` (callables → (x, y))."""
    wall, cpu = time.perf_counter(), time.process_time()
    for get in batches:
        inputs, targets = get()
        train_step(model, optimizer, inputs, targets, 1e-3, device, precision, 1.0)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and less text")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    steps, repeats, max_bytes = (4, 2, 1 << 20) if args.quick else (12, 4, 4 << 20)
    seq_len, batch_size, vocab = 128, 16, 8192
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIXLAB_CACHE"] = str(Path(tmp) / "cache")
        corpus = Corpus.open(build_corpus(Path(tmp) / "corpus", max_bytes))
        t0 = time.perf_counter()
        tok = load_tokenizer(f"bpe:{vocab}", corpus=corpus)
        tokenizer_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        streams = prepare_streams(corpus, tok, val_tokens=8192)
        prepare_seconds = time.perf_counter() - t0
        stream_tokens = sum(streams.train_tokens(d) for d in streams.domains)

        sampler = MixtureSampler(streams, np.array([0.6, 0.4]), seq_len, batch_size, seed=0)
        premade = [batch_to_device(sampler.next_batch()[0], device) for _ in range(steps)]
        torch.manual_seed(0)
        model = build_model("tiny", streams.vocab_size, seq_len)
        optimizer = make_optimizer(model, 1e-3, 0.1)
        time_block(model, optimizer, [lambda b=b: b for b in premade[:3]], device, "fp32")  # warm-up

        def pipeline_batch():
            return batch_to_device(sampler.next_batch()[0], device)

        best = {m: (float("inf"), float("inf")) for m in ("pipeline", "premade", "fp32", "bf16")}

        def record(mode: str, timing: tuple[float, float]) -> None:
            best[mode] = (min(best[mode][0], timing[0]), min(best[mode][1], timing[1]))

        for k in range(repeats):
            for mode in ("pipeline", "premade") if k % 2 == 0 else ("premade", "pipeline"):
                feed = [pipeline_batch] * steps if mode == "pipeline" else [lambda b=b: b for b in premade]
                record(mode, time_block(model, optimizer, feed, device, "fp32"))
            for precision in ("fp32", "bf16") if k % 2 == 0 else ("bf16", "fp32"):
                record(
                    precision,
                    time_block(model, optimizer, [lambda b=b: b for b in premade], device, precision),
                )
        cpu = {m: t[1] for m, t in best.items()}
        best = {m: t[0] for m, t in best.items()}

        t0 = time.perf_counter()
        n_sampler = 200
        for _ in range(n_sampler):
            pipeline_batch()
        sampler_seconds = (time.perf_counter() - t0) / n_sampler

    tokens = steps * seq_len * batch_size
    step_seconds = best["premade"] / steps
    result = {
        "benchmark": "proxy_pipeline",
        "quick": args.quick,
        "threads": args.threads,
        "model": "tiny",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": streams.vocab_size,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "stream_tokens": stream_tokens,
        "tokenizer_train_seconds": round(tokenizer_seconds, 2),
        "prepare_streams_seconds": round(prepare_seconds, 2),
        "prepare_streams_tokens_per_second": round(stream_tokens / prepare_seconds),
        "pipeline_tokens_per_second": round(tokens / best["pipeline"]),
        "premade_tokens_per_second": round(tokens / best["premade"]),
        "pipeline_overhead": round(best["pipeline"] / best["premade"] - 1, 4),
        "pipeline_overhead_cpu_time": round(cpu["pipeline"] / cpu["premade"] - 1, 4),
        "sampler_ms_per_batch": round(sampler_seconds * 1e3, 3),
        "sampler_fraction": round(sampler_seconds / step_seconds, 5),
        "fp32_tokens_per_second": round(tokens / best["fp32"]),
        "bf16_tokens_per_second": round(tokens / best["bf16"]),
        "bf16_speedup": round(best["fp32"] / best["bf16"], 3),
        "bf16_speedup_cpu_time": round(cpu["fp32"] / cpu["bf16"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(
        f"tiny preset ({result['parameters']:,} params, vocab {result['vocab_size']}): "
        f"pipeline {result['pipeline_tokens_per_second']:,} tok/s vs pre-made "
        f"{result['premade_tokens_per_second']:,} tok/s (overhead {result['pipeline_overhead']:+.2%}; "
        f"sampler {result['sampler_ms_per_batch']} ms/batch = {result['sampler_fraction']:.3%} of a step); "
        f"fp32 {result['fp32_tokens_per_second']:,} vs bf16 {result['bf16_tokens_per_second']:,} tok/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
