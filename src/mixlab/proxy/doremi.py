"""DoReMi (Xie et al. 2023) domain weights, the baseline both source papers compare against.

1. Train a reference model on a reference mixture (default uniform over domains).
2. Train a proxy model of the same shape on batches drawn from the reference mixture, minimising the
   domain-weighted loss Σ_i α_i · L_i(proxy), where the domain weights α follow Group-DRO exponentiated-
   gradient ascent on each domain's clipped excess loss

       λ_i = mean over domain i's tokens in the batch of max(ℓ_proxy − ℓ_reference, 0)
       α  ← normalise(α · exp(η λ))                 (η = `step_size`; domains absent from the batch: λ = 0)
       α  ← (1 − c) α + c / k                       (c = `smoothing`, the paper's 1e-3)
       α  ← floor_simplex(α, `min_weight`)          (our guard [choice] against collapse to one domain)

3. Output the time average of α over all steps as the DoReMi mixture, with the whole trajectory.

Knobs: `step_size` (larger → faster, noisier reweighting), `smoothing` (mixes in the uniform
distribution at every step), `min_weight` (a hard floor on every weight; 0 disables it), the reference
mixture and the TrainConfig shared by both models (model preset, tokens, batch, schedule, seed).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.engine.base import Engine
from mixlab.errors import BadInput
from mixlab.files import atomic_path, write_json
from mixlab.mixture import Mixture, write_mixture_json
from mixlab.progress import log, track
from mixlab.proxy.config import DoReMiConfig
from mixlab.proxy.data import MixtureSampler, Streams, eval_set
from mixlab.proxy.model import autocast, build_model
from mixlab.proxy.schedule import lr_multiplier
from mixlab.proxy.sweep import checked_run_resources, streams_on_this_node
from mixlab.proxy.train import (
    TrainConfig,
    TrainingState,
    batch_to_device,
    evaluate,
    make_optimizer,
    run_precision,
    torch_session,
    train_run,
)


def floor_simplex(weights: np.ndarray, min_weight: float) -> np.ndarray:
    """The closest-in-ratio point of the simplex with every entry >= `min_weight`, shape [k].

    Entries below the floor are set to it; the others share the remaining mass in their old ratios
    (repeated until no entry falls below). Requires min_weight * k <= 1.
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    k = len(w)
    if min_weight <= 0:
        return w
    if min_weight * k > 1 + 1e-12:
        raise BadInput(f"`min_weight` {min_weight}: times {k} domains exceeds 1")
    pinned = np.zeros(k, dtype=bool)
    while True:
        free_mass = 1.0 - min_weight * pinned.sum()
        out = np.where(pinned, min_weight, 0.0)
        rest = w[~pinned]
        out[~pinned] = free_mass * rest / rest.sum() if rest.sum() > 0 else free_mass / max(1, rest.size)
        low = (~pinned) & (out < min_weight)
        if not low.any():
            return out
        pinned |= low


def exponentiated_gradient_step(
    weights: np.ndarray, excess: np.ndarray, step_size: float, smoothing: float, min_weight: float
) -> np.ndarray:
    """One Group-DRO update of domain weights [k] from per-domain clipped excess losses [k] (nats)."""
    log_w = np.log(np.asarray(weights, dtype=float)) + step_size * np.asarray(excess, dtype=float)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    w = (1 - smoothing) * w + smoothing / len(w)
    return floor_simplex(w, min_weight)


@dataclass
class DoReMiResult:
    """The time-averaged mixture, the weight trajectory [steps + 1, k] (row 0 = initial) and meta."""

    mixture: Mixture
    trajectory: np.ndarray
    meta: dict[str, Any]


def per_domain_means(values: torch.Tensor, domains: np.ndarray, k: int) -> tuple[torch.Tensor, np.ndarray]:
    """Mean of per-sequence values [batch] by domain → ([k] tensor, 0 where absent; present mask [k])."""
    index = torch.from_numpy(domains).to(values.device)
    sums = torch.zeros(k, device=values.device, dtype=values.dtype).index_add(0, index, values)
    counts = np.bincount(domains, minlength=k)
    means = sums / torch.from_numpy(np.maximum(counts, 1)).to(values.device, values.dtype)
    return means, counts > 0


def clipped_excess_by_domain(
    proxy_losses: np.ndarray, reference_losses: np.ndarray, domains: np.ndarray, k: int
) -> np.ndarray:
    """λ [k]: per domain, the mean over its tokens in the batch of max(ℓ_proxy − ℓ_reference, 0); 0 where absent.

    proxy_losses, reference_losses: per-token losses (nats) [batch, seq_len]; domains: each sequence's [batch].
    The clip is per token, as in the paper: a domain whose proxy is worse on some tokens and better on others
    still counts the tokens where it is worse.
    """
    excess = np.maximum(
        np.asarray(proxy_losses, dtype=float) - np.asarray(reference_losses, dtype=float), 0.0
    )
    sums = np.bincount(domains, weights=excess.sum(axis=1), minlength=k)
    tokens = np.bincount(domains, minlength=k) * excess.shape[1]
    return sums / np.maximum(tokens, 1)


PROXY_CHECKPOINT = "proxy.checkpoint.pt"


def run_doremi(
    streams: Streams,
    out: str | Path,
    config: TrainConfig,
    doremi: DoReMiConfig | None = None,
    reference: Mixture | None = None,
    *,
    engine: Engine | None = None,
    checkpoint_every_s: float = 60.0,
    on_step: Callable[[int], None] | None = None,
) -> DoReMiResult:
    """Reference run, then the proxy with DoReMi weights; writes into `out`:

    reference/meta.json and model.pt (the reference run), mixture.json (time-averaged weights, name
    "doremi"), weights.csv (`step,<domain>...` the weight trajectory, step 0 = initial weights), doremi.json
    (meta).

    Resumable: a finished reference is loaded, not retrained, and the proxy's state (model, optimizer,
    sampler, RNG, weights so far) is saved to `proxy.checkpoint.pt` every `checkpoint_every_s` seconds; a
    rerun with the same settings continues from it (on the CPU, bit-identical to an uninterrupted run).
    `on_step(completed steps)` is called after every proxy update (only where it trains in this process).

    engine: where tasks run. On a cluster (`--engine ray`) the whole method — reference, then proxy, one
    after the other by nature — is one task holding the run's threads as CPUs and a GPU for CUDA (see
    `run_resources`); it reads the streams and writes `out` by path (a disk every node sees), and a task
    whose worker dies is retried and resumes from the checkpoints above.
    """
    doremi = doremi or DoReMiConfig()
    out = Path(out)
    if engine is not None and not engine.tasks_in_process:
        resources = checked_run_resources(config, engine)
        task = functools.partial(
            _doremi_task, streams.path, out, config, doremi, reference, checkpoint_every_s
        )
        ((_, result),) = engine.imap_tasks(task, [None], resources, names=["doremi"], description="DoReMi")
        return result
    domains = streams.domains
    k = len(domains)
    reference = reference or Mixture.from_weights("uniform", dict.fromkeys(domains, 1.0))
    ref_weights = reference.vector(domains)
    doremi.check_domains(k)
    log(f"DoReMi: reference model on mixture '{reference.name}'")
    ref_run = train_run(streams, reference, config, out / "reference", keep_model=True)
    ref_model = ref_run.model
    ref_model.eval()

    with torch_session(config, config.seed + 1) as (device, _):
        precision = run_precision(config, streams.vocab_size, device)
        model = build_model(config.model, streams.vocab_size, config.seq_len).to(device)
        optimizer = make_optimizer(model, config.peak_lr, config.weight_decay)
        sampler = MixtureSampler(streams, ref_weights, config.seq_len, config.batch_size, config.seed + 1)
        alpha = floor_simplex(np.where(ref_weights > 0, 1.0 / k, 0.0) + 1e-12, doremi.min_weight)
        trajectory = [alpha]
        key = {
            "config": config.to_dict(),
            "doremi": dataclasses.asdict(doremi),
            "reference": ref_weights.tolist(),
            "domains": list(domains),
            "data": {"vocab_size": streams.vocab_size, "tokens": streams.info},
        }
        first, seconds_before = 0, 0.0
        training = TrainingState(model, optimizer, sampler)
        state = training.restore(out / PROXY_CHECKPOINT, {"key": key}, "proxy")
        if state is not None:
            trajectory = list(state["trajectory"])
            alpha, first, seconds_before = trajectory[-1], state["step"], state["seconds"]
            log(f"DoReMi: resuming the proxy at step {first} of {config.steps}")
        t0 = saved = time.perf_counter()
        for step in track(range(first, config.steps), config.steps - first, "DoReMi proxy"):
            batch, batch_domains = sampler.next_batch()
            inputs, targets = batch_to_device(batch, device)
            with torch.no_grad(), autocast(device, precision.name):
                ref_logits = ref_model(input_ids=inputs, use_cache=False).logits
            ref_tokens = _token_losses(ref_logits, targets)
            with autocast(device, precision.name):
                logits = model(input_ids=inputs, use_cache=False).logits
            token_losses = _token_losses(logits, targets)
            excess = clipped_excess_by_domain(
                token_losses.detach().cpu().numpy(), ref_tokens.cpu().numpy(), batch_domains, k
            )
            alpha = exponentiated_gradient_step(
                alpha, excess, doremi.step_size, doremi.smoothing, doremi.min_weight
            )
            trajectory.append(alpha)
            loss_by_domain, present = per_domain_means(token_losses.mean(dim=1), batch_domains, k)
            weights_t = torch.from_numpy(np.where(present, alpha, 0.0)).to(device, loss_by_domain.dtype)
            objective = (weights_t * loss_by_domain).sum() / weights_t.sum()
            for group in optimizer.param_groups:
                group["lr"] = config.peak_lr * lr_multiplier(
                    step, config.steps, config.schedule, config.warmup_steps
                )
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if step + 1 < config.steps and time.perf_counter() - saved >= checkpoint_every_s:
                training.save(
                    out / PROXY_CHECKPOINT,
                    key=key,
                    step=step + 1,
                    trajectory=np.asarray(trajectory),
                    seconds=seconds_before + time.perf_counter() - t0,
                )
                saved = time.perf_counter()
            if on_step is not None:
                on_step(step + 1)
        seconds = seconds_before + time.perf_counter() - t0
        windows = eval_set(streams, domains, config.seq_len)
        proxy_losses = evaluate(model, windows, device, config.eval_batch_size)

    trajectory_arr = np.asarray(trajectory)
    average = trajectory_arr[1:].mean(axis=0)
    meta = {
        "method": "doremi",
        "reference_mixture": reference.to_dict(),
        "doremi": {
            "step_size": doremi.step_size,
            "smoothing": doremi.smoothing,
            "min_weight": doremi.min_weight,
        },
        "config": config.to_dict(),
        "precision": precision.name,
        "precision_reason": precision.reason,
        "steps": config.steps,
        "proxy_seconds": seconds,
        "reference_losses": ref_run.losses,
        "proxy_losses": proxy_losses,
        "final_weights": dict(zip(domains, trajectory_arr[-1].tolist(), strict=True)),
    }
    mixture = Mixture.from_weights(
        "doremi", dict(zip(domains, average.tolist(), strict=True)), method="doremi"
    )
    write_mixture_json(out / "mixture.json", mixture)
    with atomic_path(out / "weights.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["step", *domains])
        for step, row in enumerate(trajectory_arr):
            writer.writerow([step, *(f"{w:.8g}" for w in row)])
    write_json(out / "doremi.json", meta)
    (out / PROXY_CHECKPOINT).unlink(missing_ok=True)
    return DoReMiResult(mixture, trajectory_arr, meta)


def _doremi_task(
    streams_path: Path,
    out: Path,
    config: TrainConfig,
    doremi: DoReMiConfig,
    reference: Mixture | None,
    checkpoint_every_s: float,
    _: None,
) -> DoReMiResult:
    """`run_doremi` where a cluster placed it."""
    streams = streams_on_this_node(streams_path)
    return run_doremi(streams, out, config, doremi, reference, checkpoint_every_s=checkpoint_every_s)


def _token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per token (nats), shape [batch, seq_len], computed in fp32."""
    flat = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    return flat.view(targets.shape)
