"""Proxy training speed: mixlab's `train_run` against a bare PyTorch loop, fp32 and bf16 side by side, the
fixed-cost share of a run's wall time, and an MFU estimate.

On real text (this Python's standard library, two domains, as `proxy_pipeline.py`; or `--corpus DIR` with
`--tokenizer`), in one process:

1. throughput per precision (fp32, bf16 autocast): `train_run` (sampler, schedule, clip, AdamW, everything a
   sweep run does; its `train_seconds` excludes evaluation) alternates (ABBA) with a bare loop of the same
   model, batch, sequence length and precision: torch's AdamW on batches sampled before timing, nothing else.
   Best of each arm; ratio = train_run / bare (target >= 0.9). `--precision auto`'s pick is run too, and
   compared with the faster precision's bare loop;
2. fixed costs of one run at sweep sizes (`--run-tokens`, `--evals`, `--val-tokens`; the defaults are the
   demo's), the way a sweep runs it (checkpoint at every evaluation), under two protocols in the same process:
   every evaluation on the full validation set (before issue 16) and intermediate ones on the default subset
   (`TrainConfig.eval_subset_tokens`); wall of `train_run` split into training, evaluation and checkpoints
   (as meta.json times them), model build and stream loading (Streams.load + sampler + validation windows),
   and process start-up (a fresh interpreter importing `mixlab.cli`), charged whole or split over a sweep's
   `--sweep-runs` runs; share = (wall - training) / wall. Both final losses must be equal;
3. MFU = 6 * N * tokens/s / peak, N the model's parameters (tied embedding once: it is also the LM head's
   matmul; attention score FLOPs ignored), peak the best `torch.matmul` FLOP/s of square matrices in that
   precision and thread count;
4. the validation pass: mixlab's `evaluate` (cross-entropy over flat rows) against the same forward passes
   with the cross-entropy over the class axis of the [batch, vocab, seq] transpose (the form before), on the
   same model and validation windows; best of `repeats`, ratio = before / now, and the losses must agree.

    python benchmarks/proxy_speed.py [--quick] [--threads 2] [--corpus DIR --tokenizer SPEC] [--sweep-runs 8]

The last stdout line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MIXLAB_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mixlab.corpus import Corpus, load_tokenizer  # noqa: E402
from mixlab.mixture import Mixture  # noqa: E402
from mixlab.proxy import MixtureSampler, TrainConfig, prepare_streams, train_run  # noqa: E402
from mixlab.proxy.data import Streams, eval_set  # noqa: E402
from mixlab.proxy.model import build_model, count_parameters  # noqa: E402
from mixlab.proxy.train import evaluate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_pipeline import build_corpus  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def bare_loop(batches: list[torch.Tensor], vocab: int, config: TrainConfig, precision: str) -> float:
    """Seconds of `len(batches)` AdamW steps of a fresh model on pre-made [batch, seq+1] tensors."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, vocab, config.seq_len)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.peak_lr, betas=(0.9, 0.95), weight_decay=0.1)
    t0 = time.perf_counter()
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(input_ids=batch[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


@torch.inference_mode()
def transposed_evaluate(model: torch.nn.Module, windows, batch_size: int = 16) -> dict[str, float]:
    """The validation pass as it was before: per-token losses over the class axis of a transpose."""
    totals = torch.zeros(len(windows.domains), dtype=torch.float64)
    rows, index = torch.from_numpy(windows.windows), torch.from_numpy(windows.domain_index)
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size]
        logits = model(input_ids=chunk[:, :-1], use_cache=False).logits.float()
        per_token = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
        totals.index_add_(0, index[lo : lo + batch_size], per_token.sum(dim=1).double())
    return {d: float(t) / int(n) for d, t, n in zip(windows.domains, totals, windows.targets, strict=True)}


def evaluation_speed(streams: Streams, vocab: int, seq_len: int, model_name: str, repeats: int) -> dict:
    """Seconds of mixlab's validation pass and of the transposed one (best of `repeats`, alternating)."""
    torch.manual_seed(0)
    model = build_model(model_name, vocab, seq_len).eval()
    windows = eval_set(streams, streams.domains, seq_len)
    best = {"now": float("inf"), "before": float("inf")}
    losses = {}
    for k in range(repeats):
        for arm in ("now", "before") if k % 2 == 0 else ("before", "now"):
            start = time.perf_counter()
            if arm == "now":
                losses[arm] = evaluate(model, windows, torch.device("cpu"))
            else:
                losses[arm] = transposed_evaluate(model, windows)
            best[arm] = min(best[arm], time.perf_counter() - start)
    agree = all(abs(losses["now"][d] - losses["before"][d]) < 1e-5 for d in streams.domains)
    return {"windows": int(len(windows.windows)), "seconds": round(best["now"], 3),
            "transposed_seconds": round(best["before"], 3),
            "ratio": round(best["before"] / best["now"], 3), "losses_agree": agree}  # fmt: skip


def matmul_peak(dtype: torch.dtype, size: int, repeats: int) -> float:
    """Best FLOP/s of `size` x `size` matrix products in `dtype`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def startup_seconds() -> float:
    """Wall seconds of a fresh interpreter importing the CLI (what every `mixlab sweep` pays first)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mixlab.cli, mixlab.proxy.train"], check=True)
    return time.perf_counter() - t0


def fixed_costs(streams: Streams, mixture: Mixture, config: TrainConfig, out: Path) -> dict[str, float]:
    """Wall seconds of one sweep-like run (checkpointing into `out`) and its parts: training, evaluation and
    checkpoints as `train_run` times them (meta.json), model build and stream loading measured apart."""
    t0 = time.perf_counter()
    result = train_run(streams, mixture, config, out, keep_model=True)
    wall = time.perf_counter() - t0
    meta = result.meta
    t0 = time.perf_counter()
    loaded = Streams.load(streams.path)
    MixtureSampler(loaded, mixture.vector(loaded.domains), config.seq_len, config.batch_size, config.seed)
    windows = eval_set(loaded, loaded.domains, config.seq_len)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_model(config.model, streams.vocab_size, config.seq_len)
    build = time.perf_counter() - t0
    train, evaluation = meta["train_seconds"], meta["eval_seconds_this_session"]
    checkpoint = meta["checkpoint_seconds_this_session"]
    subset = evaluate(result.model, windows.subset(config.eval_subset_tokens or 1 << 62), torch.device("cpu"))
    gap = [subset[d] - meta["losses"][d] for d in streams.domains]  # final model: subset minus full set
    return {
        "eval_subset_tokens": config.eval_subset_tokens,
        "eval_tokens_per_domain": [row["eval_tokens"] for row in meta["history"]],
        "validation_windows": len(windows.windows),
        "run_wall_seconds": round(wall, 2),
        "train_seconds": round(train, 2),
        "evaluation_seconds": round(evaluation, 2),
        "checkpoint_seconds": round(checkpoint, 3),
        "model_build_seconds": round(build, 3),
        "stream_loading_seconds": round(load, 3),
        "other_seconds": round(wall - train - evaluation - checkpoint, 2),
        "fixed_share_in_process": round((wall - train) / wall, 3),
        "final_subset_minus_full_mean": round(float(sum(gap) / len(gap)), 4),
        "final_subset_minus_full_max_abs": round(max(map(abs, gap)), 4),
        "losses": meta["losses"],
    }


def with_startup(run: dict, startup: float, runs_per_process: int) -> dict:
    """`run` plus the fixed share once a process start-up is charged: whole to this run (a one-run command)
    and split over `runs_per_process` runs (a sweep pays it once)."""
    train, wall = run["train_seconds"], run["run_wall_seconds"]
    one = wall + startup
    shared = wall + startup / runs_per_process
    return {
        **run,
        "fixed_share_startup_whole": round((one - train) / one, 3),
        f"fixed_share_startup_over_{runs_per_process}_runs": round((shared - train) / shared, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, a shorter run, less text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="a mixlab corpus (default: the standard library's text)")
    parser.add_argument("--tokenizer", default="bpe:1024")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--run-tokens", type=int, help="tokens of the fixed-cost run (default 400,000)")
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--val-tokens", type=int, default=4096)
    parser.add_argument(
        "--sweep-runs", type=int, default=8, help="runs one sweep process shares start-up among"
    )
    args = parser.parse_args()
    steps = {"fp32": 12, "bf16": 3} if args.quick else {"fp32": 40, "bf16": 8}
    repeats = 1 if args.quick else 2
    run_tokens = args.run_tokens or (40_000 if args.quick else 400_000)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MIXLAB_CACHE", str(Path(tmp) / "cache"))
        if args.corpus is None:
            corpus = Corpus.open(build_corpus(Path(tmp) / "corpus", (1 << 20) if args.quick else (4 << 20)))
        else:
            corpus = Corpus.open(args.corpus)
        tok = load_tokenizer(args.tokenizer, corpus=corpus)
        streams = prepare_streams(corpus, tok, val_tokens=args.val_tokens)
        vocab = streams.vocab_size
        mixture = Mixture.from_weights("uniform", dict.fromkeys(streams.domains, 1.0 / len(streams.domains)))

        def config(precision: str, n_steps: int, **kw) -> TrainConfig:
            return TrainConfig(model=args.model, tokens=n_steps * args.batch_size * args.seq_len,
                               seq_len=args.seq_len, batch_size=args.batch_size, evals=1,
                               precision=precision, device="cpu", threads=args.threads, **kw)  # fmt: skip

        speed: dict[str, dict[str, float]] = {}
        for precision in PRECISIONS:
            cfg = config(precision, steps[precision])
            sampler = MixtureSampler(streams, mixture.vector(streams.domains), cfg.seq_len, cfg.batch_size, 0)
            batches = [torch.from_numpy(sampler.next_batch()[0]) for _ in range(cfg.steps)]
            best = {"mixlab": float("inf"), "bare": float("inf")}
            for k in range(repeats):
                for arm in ("mixlab", "bare") if k % 2 == 0 else ("bare", "mixlab"):
                    if arm == "mixlab":
                        seconds = train_run(streams, mixture, cfg).meta["train_seconds"]
                    else:
                        seconds = bare_loop(batches, vocab, cfg, precision)
                    best[arm] = min(best[arm], seconds)
            tokens = cfg.steps * cfg.batch_size * cfg.seq_len
            speed[precision] = {
                "mixlab_tokens_per_second": round(tokens / best["mixlab"]),
                "bare_tokens_per_second": round(tokens / best["bare"]),
                "ratio": round(best["bare"] / best["mixlab"], 3),
            }
        auto_meta = train_run(streams, mixture, config("auto", steps["fp32"])).meta
        faster_bare = max(speed[p]["bare_tokens_per_second"] for p in PRECISIONS)

        torch.manual_seed(0)
        n_params = count_parameters(build_model(args.model, vocab, args.seq_len))
        size, reps = (512, 3) if args.quick else (1024, 5)
        peaks = {
            p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16, size, reps) for p in PRECISIONS
        }
        for p in PRECISIONS:
            speed[p]["matmul_peak_gflops"] = round(peaks[p] / 1e9, 2)
            speed[p]["mfu"] = round(6 * n_params * speed[p]["mixlab_tokens_per_second"] / peaks[p], 4)

        def run_config(**kw) -> TrainConfig:
            return TrainConfig(model=args.model, tokens=run_tokens, seq_len=args.seq_len,
                               batch_size=args.batch_size, evals=args.evals, precision="auto", device="cpu",
                               threads=args.threads, **kw)  # fmt: skip

        # the same run twice, the protocol before (every evaluation on the full validation set) and now
        # (intermediate ones on the default subset); each checkpoints at every evaluation, as a sweep does
        startup = startup_seconds()
        protocols = {
            name: with_startup(fixed_costs(streams, mixture, cfg, Path(tmp) / name), startup, args.sweep_runs)
            for name, cfg in (
                ("full_every_eval", run_config(eval_subset_tokens=None)),
                ("subset", run_config()),
            )
        }
        final_equal = protocols["subset"].pop("losses") == protocols["full_every_eval"].pop("losses")
        evaluation = evaluation_speed(streams, vocab, args.seq_len, args.model, 2 if args.quick else 6)

    result = {
        "benchmark": "proxy_speed",
        "quick": args.quick,
        "threads": args.threads,
        "loadavg_1min": os.getloadavg()[0],
        "model": args.model,
        "parameters": n_params,
        "vocab_size": vocab,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "domains": len(streams.domains),
        "steps": steps,
        **{f"{p}_{k}": v for p in PRECISIONS for k, v in speed[p].items()},
        "target_ratio": 0.9,
        "auto_precision": auto_meta["precision"],
        "auto_precision_reason": auto_meta["precision_reason"],
        "auto_tokens_per_second": round(auto_meta["tokens_per_second"]),
        "auto_vs_faster_bare": round(auto_meta["tokens_per_second"] / faster_bare, 3),
        "fixed_cost_run": {
            "tokens": run_tokens,
            "evals": args.evals,
            "val_tokens": args.val_tokens,
            "startup_seconds": round(startup, 2),
            **protocols,
        },  # fmt: skip
        "final_losses_equal": final_equal,
        "evaluation": evaluation,
        "fixed_share_before": protocols["full_every_eval"][
            f"fixed_share_startup_over_{args.sweep_runs}_runs"
        ],
        "fixed_share": protocols["subset"][f"fixed_share_startup_over_{args.sweep_runs}_runs"],
        "target_fixed_share": 0.15,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print("precision  train_run tok/s  bare tok/s  ratio  matmul GFLOP/s  MFU")
    for p in PRECISIONS:
        s = speed[p]
        print(f"{p:9}  {s['mixlab_tokens_per_second']:>15,}  {s['bare_tokens_per_second']:>10,}  "
              f"{s['ratio']:>5.2f}  {s['matmul_peak_gflops']:>14.1f}  {s['mfu']:.1%}")  # fmt: skip
    print(f"auto -> {result['auto_precision']} ({result['auto_precision_reason']}): "
          f"{result['auto_tokens_per_second']:,} tok/s = {result['auto_vs_faster_bare']:.2f}x the faster bare loop")  # fmt: skip
    print(f"one {run_tokens:,}-token run, {args.evals} evals, start-up {startup:.1f} s "
          f"(charged 1/{args.sweep_runs} per run); final losses equal: {final_equal}")  # fmt: skip
    for name, f in protocols.items():
        print(f"  {name:15}: wall {f['run_wall_seconds']} s, training {f['train_seconds']} s, eval "
              f"{f['evaluation_seconds']} s, checkpoints {f['checkpoint_seconds']} s, other {f['other_seconds']} s; "
              f"fixed share {f[f'fixed_share_startup_over_{args.sweep_runs}_runs']:.1%} "
              f"({f['fixed_share_startup_whole']:.1%} with the whole start-up)")  # fmt: skip
    print(f"validation pass over {evaluation['windows']} windows: {evaluation['seconds']} s, "
          f"{evaluation['transposed_seconds']} s with the transposed cross-entropy = {evaluation['ratio']:.2f}x; "
          f"losses agree: {evaluation['losses_agree']}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
