"""Learning-rate schedules as pure functions of the step: the multiplier of the peak learning rate.

    exp10     10^(-step / total): exponential decay by 10x over the run (the BiMix paper's schedule)
    cosine    linear warm-up, then cosine from 1 down to `floor` (0.1) at `total`
    constant  1

Any schedule is preceded by a linear warm-up over `warmup` steps when `warmup` > 0.
"""

from __future__ import annotations

import math

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
