"""One proxy run: train a small causal LM on a mixture, evaluating every domain's validation loss.

nanoGPT-style loop: draw a batch from `MixtureSampler`, set the scheduled learning rate, forward (bf16
autocast where the hardware makes it faster, see `mixlab.proxy.precision`), mean token cross-entropy, backward,
clip, AdamW step. At `evals` evenly spaced steps every domain's validation loss (mean token cross-entropy in
nats, fp32) is computed on fixed validation windows: the intermediate evaluations on a fixed subset of them
(`TrainConfig.eval_subset_tokens` per domain), the final one on all of them; each history row records the
tokens per domain it averages (`eval_tokens`). After each evaluation a checkpoint (model, optimizer, sampler
and RNG state, eval history) is written atomically and `on_eval` is called. A run given `out_dir` resumes from
its checkpoint and ends with `meta.json`; on the CPU the continuation is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.corpus import cache_dir
from mixlab.errors import BadInput
from mixlab.files import atomic_path, write_json
from mixlab.mixture import Mixture
from mixlab.progress import new_progress, warn
from mixlab.proxy.config import TrainConfig
from mixlab.proxy.data import EvalSet, MixtureSampler, Streams, eval_set
from mixlab.proxy.model import (
    autocast,
    build_model,
    configure_torch,
    count_parameters,
    resolve_device,
)
from mixlab.proxy.precision import CACHE_FILE, Precision, resolve_precision
from mixlab.proxy.schedule import lr_multiplier

CHECKPOINT = "checkpoint.pt"
META = "meta.json"
MODEL = "model.pt"  # the trained weights of a finished run that was asked to keep its model


@dataclass
class RunResult:
    """What a run produced: final per-domain validation losses (nats), the eval history and meta.json."""

    name: str
    losses: dict[str, float]
    history: list[dict[str, Any]]
    meta: dict[str, Any]
    steps_trained: int = 0
    model: torch.nn.Module | None = field(default=None, repr=False)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module, windows: EvalSet, device: torch.device, batch_size: int = 16
) -> dict[str, float]:
    """Mean token cross-entropy (nats) per domain over its validation windows, in batches of `batch_size`
    rows drawn across domains (each row's loss sum does not depend on how rows are batched)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(len(windows.domains), dtype=torch.float64)
    rows = torch.from_numpy(windows.windows)
    index = torch.from_numpy(windows.domain_index)
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size].to(device)
        logits = model(input_ids=chunk[:, :-1], use_cache=False).logits.float()
        # [measured] over flat rows, not over the class axis of the [batch, vocab, seq] transpose: the loss
        # alone 2.3 against 10.5 ms a batch of 16 x 128 at vocab 1024, the whole pass 1.09x faster
        # (benchmarks/proxy_speed.py, `evaluation`)
        per_token = F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="none")
        row_sums = per_token.view(chunk.size(0), -1).sum(dim=1)
        totals.index_add_(0, index[lo : lo + batch_size], row_sums.double().cpu())
    model.train(was_training)
    return {d: float(t) / int(n) for d, t, n in zip(windows.domains, totals, windows.targets, strict=True)}


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, betas (0.9, 0.95); weight decay on matrices only (not on biases and norms), as nanoGPT."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def batch_to_device(batch: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each int64 [batch, seq_len], from windows [batch, seq_len + 1]."""
    t = torch.from_numpy(batch)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    return t[:, :-1], t[:, 1:]


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lr: float,
    device: torch.device,
    precision: str,
    grad_clip: float,
) -> float:
    """One AdamW update on the mean token cross-entropy; returns the loss (nats)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, precision):
        logits = model(input_ids=inputs, use_cache=False).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


PROBE_STEPS = 3


def probe_tokens_per_second(
    config: TrainConfig, vocab_size: int, device: torch.device, steps: int = PROBE_STEPS
) -> dict[str, float]:
    """Training tokens/s of `config`'s model shape in fp32 and in bf16 (a warm-up step, then `steps` timed
    ones each, on random tokens); torch's global RNG is left as it was."""
    batch = np.random.default_rng(0).integers(0, vocab_size, size=(config.batch_size, config.seq_len + 1))
    inputs, targets = batch_to_device(batch, device)
    speeds = {}
    with torch.random.fork_rng(devices=[]):
        for precision in ("fp32", "bf16"):
            model = build_model(config.model, vocab_size, config.seq_len).to(device)
            optimizer = make_optimizer(model, config.peak_lr, config.weight_decay)
            for timed in (False, True):
                t0 = time.perf_counter()
                for _ in range(steps if timed else 1):
                    train_step(model, optimizer, inputs, targets, config.peak_lr, device, precision, 1.0)
            speeds[precision] = steps * config.batch_size * config.seq_len / (time.perf_counter() - t0)
    return speeds


def run_precision(config: TrainConfig, vocab_size: int, device: torch.device) -> Precision:
    """The precision runs of `config` train in on `device`; call after `configure_torch` (threads)."""
    shape = {
        "model": config.model,
        "vocab_size": vocab_size,
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "threads": torch.get_num_threads(),
    }
    return resolve_precision(
        config.precision,
        device,
        shape,
        lambda: probe_tokens_per_second(config, vocab_size, device),
        cache_dir() / CACHE_FILE,
    )


def load_checkpoint(path: Path, expected: dict[str, Any], what: str = "run") -> dict[str, Any] | None:
    """A training checkpoint whose entries match `expected` (the settings it was saved under); None, with a
    warning, when it is missing, unreadable or of other settings: the `what` then restarts."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a checkpoint we cannot read is restarted, not trusted
        warn(f"{path}: unreadable checkpoint ({exc}); restarting the {what}")
        return None
    if any(state.get(name) != value for name, value in expected.items()):
        warn(f"{path}: checkpoint of different settings; restarting the {what}")
        return None
    return state


@contextlib.contextmanager
def torch_session(config: TrainConfig, seed: int) -> Iterator[tuple[torch.device, int]]:
    """(device, threads) for training under `config`, torch seeded with `seed`; torch's thread count and
    deterministic-algorithms flag are restored on exit."""
    device = resolve_device(config.device)
    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    threads = configure_torch(seed, config.threads, device)
    try:
        yield device, threads
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


@dataclass
class TrainingState:
    """What a training checkpoint restores: model, optimizer, sampler and torch's RNG."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: MixtureSampler

    def save(self, path: Path, **entries: Any) -> None:
        """Write `entries` (the key a resume must match, step, history, ...) with the state, atomically."""
        state = {
            **entries,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def restore(self, path: Path, expected: dict[str, Any], what: str) -> dict[str, Any] | None:
        """Load the checkpoint at `path` when its entries match `expected` (see `load_checkpoint`);
        returns all its entries, or None when the `what` restarts."""
        state = load_checkpoint(path, expected, what)
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
        return state


def train_run(
    streams: Streams,
    mixture: Mixture,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    eval_domains: Sequence[str] | None = None,
    keep_model: bool = False,
) -> RunResult:
    """Train one proxy LM on `mixture` and evaluate it; resumable when `out_dir` is given.

    mixture: proportions over (a subset of) `streams.domains`; missing domains get weight 0.
    out_dir: `checkpoint.pt` is written at every evaluation and `meta.json` at the end; an existing
        checkpoint of the same config and mixture is resumed; an existing `meta.json` marked done
        returns its results without training (with `keep_model`, the weights saved in `model.pt`).
    on_eval: called with {"step", "tokens", "losses": {domain: nats}} after each evaluation (after the
        checkpoint holding it is written).
    on_step: called with the number of completed steps after every update (progress, interruption).
    eval_domains: domains to evaluate (default: all of `streams.domains`).
    keep_model: also return the trained model in `RunResult.model`.
    """
    unknown = [d for d in mixture.weights if d not in streams.domains]
    if unknown:
        raise BadInput(
            f"mixture '{mixture.name}': domain(s) {', '.join(unknown)} not in the corpus "
            f"({', '.join(streams.domains)})"
        )
    weights = [float(w) for w in mixture.vector(streams.domains)]
    out = Path(out_dir) if out_dir is not None else None
    done = None
    if out is not None and (out / META).is_file():
        meta = json.loads((out / META).read_text(encoding="utf-8"))
        if (
            meta.get("status") == "done"
            and meta.get("config") == config.to_dict()
            and meta.get("weights") == weights
            and (not keep_model or ((out / MODEL).is_file() and meta.get("vocab_size") == streams.vocab_size))
        ):
            done = meta
    if done is not None and not keep_model:
        return RunResult(mixture.name, done["losses"], done["history"], done, steps_trained=0)

    with torch_session(config, config.seed) as (device, threads):
        model = build_model(config.model, streams.vocab_size, config.seq_len).to(device)
        if done is not None:
            model.load_state_dict(torch.load(out / MODEL, map_location=device))
            return RunResult(
                mixture.name, done["losses"], done["history"], done, steps_trained=0, model=model
            )
        precision = run_precision(config, streams.vocab_size, device)
        optimizer = make_optimizer(model, config.peak_lr, config.weight_decay)
        sampler = MixtureSampler(streams, np.array(weights), config.seq_len, config.batch_size, config.seed)
        windows = eval_set(streams, eval_domains or streams.domains, config.seq_len)
        probe = windows if config.eval_subset_tokens is None else windows.subset(config.eval_subset_tokens)
        eval_at = set(config.eval_steps())
        step, history, train_seconds, wall_before, resumed_from = 0, [], 0.0, 0.0, None
        eval_seconds = checkpoint_seconds = 0.0  # this session's
        expected = {"config": config.to_dict(), "weights": weights}
        training = TrainingState(model, optimizer, sampler)
        state = training.restore(out / CHECKPOINT, expected, "run") if out is not None else None
        if state is not None:
            step, history, train_seconds = state["step"], state["history"], state["train_seconds"]
            wall_before = state["wall_seconds"]
            resumed_from = step
        start_step = step
        wall_start = time.perf_counter()
        with new_progress() as progress:
            task = progress.add_task(f"run {mixture.name}", total=config.steps, completed=step)
            while step < config.steps:
                t0 = time.perf_counter()
                batch, _ = sampler.next_batch()
                inputs, targets = batch_to_device(batch, device)
                lr = config.peak_lr * lr_multiplier(step, config.steps, config.schedule, config.warmup_steps)
                train_step(model, optimizer, inputs, targets, lr, device, precision.name, config.grad_clip)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                train_seconds += time.perf_counter() - t0
                step += 1
                progress.advance(task)
                if step in eval_at:
                    t0 = time.perf_counter()
                    rows = windows if step == config.steps else probe
                    record = {
                        "step": step,
                        "tokens": step * config.batch_size * config.seq_len,
                        "losses": evaluate(model, rows, device, config.eval_batch_size),
                        "eval_tokens": int(rows.targets.min()),
                    }
                    history.append(record)
                    eval_seconds += time.perf_counter() - t0
                    if out is not None:
                        t0 = time.perf_counter()
                        wall = wall_before + t0 - wall_start
                        training.save(
                            out / CHECKPOINT,
                            step=step,
                            config=config.to_dict(),
                            weights=weights,
                            history=history,
                            train_seconds=train_seconds,
                            wall_seconds=wall,
                        )
                        checkpoint_seconds += time.perf_counter() - t0
                    if on_eval is not None:
                        on_eval(record)
                if on_step is not None:
                    on_step(step)
        session_wall = time.perf_counter() - wall_start
        trained_tokens = (step - start_step) * config.batch_size * config.seq_len
        meta = {
            "name": mixture.name,
            "status": "done",
            "weights": weights,
            "domains": streams.domains,
            "config": config.to_dict(),
            "device": str(device),
            "precision": precision.name,
            "precision_reason": precision.reason,
            "threads": threads,
            "parameters": count_parameters(model),
            "vocab_size": streams.vocab_size,
            "steps": config.steps,
            "tokens": config.steps * config.batch_size * config.seq_len,
            "lr": config.peak_lr,
            "warmup_steps": config.warmup_steps,
            "train_seconds": train_seconds,
            "tokens_per_second": config.steps * config.batch_size * config.seq_len / max(train_seconds, 1e-9),
            "wall_seconds": wall_before + session_wall,
            "wall_seconds_this_session": session_wall,
            "eval_seconds_this_session": eval_seconds,
            "checkpoint_seconds_this_session": checkpoint_seconds,
            "tokens_trained_this_session": trained_tokens,
            "resumed_from_step": resumed_from,
            "epochs": sampler.epochs,
            "losses": history[-1]["losses"] if history else {},
            "history": history,
        }
        if out is not None:
            if keep_model:
                with atomic_path(out / MODEL) as tmp:
                    torch.save(model.state_dict(), tmp)
            write_json(out / META, meta)
            (out / CHECKPOINT).unlink(missing_ok=True)
        return RunResult(
            mixture.name,
            meta["losses"],
            history,
            meta,
            steps_trained=step - start_step,
            model=model if keep_model else None,
        )


def read_checkpoint(out_dir: Path) -> dict[str, Any] | None:
    """A partial run's checkpoint (its settings and eval history); None when there is none or it is
    unreadable."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
