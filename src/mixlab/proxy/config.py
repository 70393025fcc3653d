"""Settings of proxy runs and DoReMi, checked when they are made, before any corpus pass or model: model
presets, `TrainConfig`, `DoReMiConfig` and the token-stream options. Imports neither torch nor a tokenizer,
so the CLI rejects a bad option at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.proxy.schedule import SCHEDULES, LRSchedule, default_warmup

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Preset:
    n_layer: int
    n_embd: int
    n_head: int
    lr: float  # default peak learning rate for this size


PRESETS: dict[str, Preset] = {
    "tiny": Preset(2, 128, 4, 3e-3),
    "small": Preset(4, 256, 4, 2e-3),
    "medium": Preset(6, 512, 8, 1e-3),
    "bimix-proxy": Preset(12, 768, 12, 6e-4),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise BadInput(f"`model` {name}: unknown preset (expected one of {', '.join(PRESETS)})")
    return PRESETS[name]


def check_int(param: str, value: object, minimum: int) -> None:
    """An integer >= `minimum` (not a bool, not a float), else BadInput naming `param`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise BadInput(f"`{param}` {value}: must be {need}")


def check_float(param: str, value: object, low: float, high: float = math.inf, *, low_open: bool) -> None:
    """A finite number in (low, high] (`low_open`) or [low, high], else BadInput naming `param`."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        if math.isfinite(high):
            need = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        else:
            need = f"{'>' if low_open else '>='} {low:g}"
        raise BadInput(f"`{param}` {value}: must be a finite number {need}")


def check_stream_options(val_tokens: int, max_tokens_per_domain: int | None) -> None:
    """The options of `prepare_streams`: held-out tokens per domain and the cap on tokens read per domain."""
    check_int("val_tokens", val_tokens, 1)
    if max_tokens_per_domain is not None:
        check_int("max_tokens_per_domain", max_tokens_per_domain, 1)
        if max_tokens_per_domain < 2 * val_tokens:
            raise BadInput(
                f"`max_tokens_per_domain` {max_tokens_per_domain}: must be at least twice "
                f"`val_tokens` ({val_tokens})"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a proxy run (everything that changes its losses).

    tokens: training tokens per run (steps = tokens // (batch_size * seq_len)).
    lr: peak learning rate (None: the preset's). warmup: warm-up steps (None: schedule's default).
    evals: evaluations at evenly spaced steps, the last at the final step.
    eval_subset_tokens: validation tokens per domain of the intermediate evaluations, a fixed subset of
        evenly spaced validation windows (None: the full set every time); the final evaluation always uses
        every validation window. [choice] None: a sweep's curves feed the mixing laws' step axis, and a subset
        is a different evaluation set (at the demo's sizes 512 tokens/domain read +0.032 nats on average,
        up to 0.138 on one domain, against the full set on the same model), so its rows would not lie on
        one curve with the final row. Where only the final loss matters (the demo's evaluation models) 512
        tokens/domain cut a run's evaluation share from 24.5 % to 8.4 % of its wall time.
    precision: auto | fp32 | bf16 (autocast of the training forward pass; evaluation is always fp32); auto is
        decided by the hardware (`mixlab.proxy.precision`).
    threads: CPU threads (None: min(2, cores)); fixed so CPU results are reproducible.
    """

    model: str = "tiny"
    tokens: int = 1_000_000
    seq_len: int = 128
    batch_size: int = 16
    lr: float | None = None
    schedule: str = "exp10"
    warmup: int | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    evals: int = 20
    eval_subset_tokens: int | None = None
    eval_batch_size: int = 16
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        preset(self.model)
        if self.schedule not in SCHEDULES:
            raise BadInput(f"`schedule` {self.schedule}: expected one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise BadInput(f"`precision` {self.precision}: expected one of {', '.join(PRECISIONS)}")
        check_int("tokens", self.tokens, 1)
        for name in ("seq_len", "batch_size", "evals", "eval_batch_size"):
            check_int(name, getattr(self, name), 1)
        if self.eval_subset_tokens is not None:
            check_int("eval_subset_tokens", self.eval_subset_tokens, 1)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, low_open=True)
        if self.warmup is not None:
            check_int("warmup", self.warmup, 0)
        check_float("weight_decay", self.weight_decay, 0.0, low_open=False)
        check_float("grad_clip", self.grad_clip, 0.0, low_open=False)
        check_int("seed", self.seed, 0)
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        if self.steps < 1:
            raise BadInput(
                f"`tokens` {self.tokens}: less than one batch of {self.batch_size} x {self.seq_len} tokens"
            )

    @property
    def steps(self) -> int:
        return self.tokens // (self.batch_size * self.seq_len)

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else preset(self.model).lr

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else default_warmup(self.schedule, self.steps)

    def lr_schedule(self) -> LRSchedule:
        return LRSchedule(self.schedule, self.steps, self.warmup_steps)

    def eval_steps(self) -> list[int]:
        """Steps (completed updates) after which every domain is evaluated: evenly spaced, last = steps."""
        points = np.round(np.linspace(self.steps / self.evals, self.steps, self.evals)).astype(int)
        return sorted({max(1, int(s)) for s in points})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SCHEDULE_FIELDS = (
    "tokens",
    "batch_size",
    "seq_len",
    "schedule",
)  # what fixes a sweep's schedule (warmup: None)


def read_sweep_schedule(path: str | os.PathLike[str]) -> LRSchedule | None:
    """The learning-rate schedule of a mixlab sweep, from the training config in its `sweep.json` (None where
    there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))["config"]
        missing = [k for k in SCHEDULE_FIELDS if k not in fields]
        if missing:
            raise KeyError(f"field 'config' lacks {', '.join(missing)}")
        config = TrainConfig(**fields)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{path}: not a mixlab sweep file ({type(exc).__name__}: {exc})") from None
    except BadInput as exc:
        raise BadInput(f"{path}: field 'config': {exc}") from None
    return config.lr_schedule()


@dataclass(frozen=True)
class DoReMiConfig:
    """Knobs of the DoReMi weight updates (see `mixlab.proxy.doremi`)."""

    step_size: float = 1.0
    smoothing: float = 1e-3
    min_weight: float = 0.005

    def __post_init__(self) -> None:
        check_float("step_size", self.step_size, 0.0, low_open=True)
        check_float("smoothing", self.smoothing, 0.0, 1.0, low_open=False)
        check_float("min_weight", self.min_weight, 0.0, 1.0, low_open=False)

    def check_domains(self, k: int) -> None:
        """The floor must leave room on the simplex of `k` domains."""
        if self.min_weight * k > 1:
            raise BadInput(f"`min_weight` {self.min_weight}: times {k} domains exceeds 1")
