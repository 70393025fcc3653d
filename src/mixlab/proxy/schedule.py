"""Learning-rate schedules as pure functions of the step: the multiplier of the peak learning rate.

    exp10     10^(-step / total): exponential decay by 10x over the run (the BiMix paper's schedule)
    cosine    linear warm-up, then cosine from 1 down to `floor` (0.1) at `total`
    constant  1

Any schedule is preceded by a linear warm-up over `warmup` steps when `warmup` > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixlab.errors import BadInput

SCHEDULES = ("exp10", "cosine", "constant")
COSINE_FLOOR = 0.1


def default_warmup(schedule: str, total_steps: int) -> int:
    """Our default warm-up [choice]: 5 % of the run for cosine, none for exp10 and constant."""
    return max(1, round(0.05 * total_steps)) if schedule == "cosine" else 0


def lr_multiplier(step: int, total_steps: int, schedule: str, warmup: int = 0) -> float:
    """Multiplier of the peak learning rate for the update that follows `step` completed steps.

    step: 0-based count of completed optimizer steps, 0 <= step <= total_steps.
    """
    if schedule not in SCHEDULES:
        raise BadInput(f"`schedule` {schedule}: expected one of {', '.join(SCHEDULES)}")
    if total_steps < 1:
        raise ValueError("total_steps must be positive")
    ramp = (step + 1) / warmup if warmup > 0 and step < warmup else 1.0
    if schedule == "constant":
        return ramp
    if schedule == "exp10":
        return ramp * 10.0 ** (-step / total_steps)
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total_steps - warmup)))
    return ramp * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class LRSchedule:
    """The learning-rate schedule every run of a sweep trained under: what a schedule-aware law needs to know
    of the step axis (`TrainConfig.lr_schedule`; read from a sweep's `sweep.json` by
    `mixlab.proxy.config.read_sweep_schedule`)."""

    name: str
    total_steps: int
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise BadInput(f"`schedule` {self.name}: expected one of {', '.join(SCHEDULES)}")
        if not isinstance(self.total_steps, int) or self.total_steps < 1:
            raise BadInput(f"`total_steps` must be a positive integer, got {self.total_steps!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise BadInput(f"`warmup` must be an integer ≥ 0, got {self.warmup!r}")

    def multipliers(self, steps: np.ndarray) -> np.ndarray:
        """The multiplier of the peak learning rate at each step (steps past the run: the last one's).

        Fractional steps are rounded: a schedule changes once per update."""
        s = np.clip(np.rint(np.asarray(steps, dtype=float)), 0, self.total_steps).astype(int)
        distinct, where = np.unique(s, return_inverse=True)
        values = [lr_multiplier(int(t), self.total_steps, self.name, self.warmup) for t in distinct]
        return np.array(values, dtype=float)[where].reshape(s.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "total_steps": self.total_steps, "warmup": self.warmup}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRSchedule:
        return cls(str(d["name"]), int(d["total_steps"]), int(d.get("warmup", 0)))
