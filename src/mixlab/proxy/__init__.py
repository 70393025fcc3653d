"""Proxy-LM sweeps: packed token streams, small GPT-2 models, the training loop, eval logging, DoReMi.

streams = prepare_streams(corpus, tokenizer)                 # cached per corpus + tokenizer
results = run_sweep(corpus, "mixtures.csv", "sweep_dir", TrainConfig(model="tiny", tokens=500_000))
result = train_run(streams, mixture, TrainConfig(...))       # one evaluation model, per-domain losses

Names are imported on first use, so `mixlab.proxy.config` (the settings and their checks) loads without
torch.
"""

import importlib
from typing import Any

_HOME = {
    "MixtureSampler": "data",
    "Streams": "data",
    "prepare_streams": "data",
    "run_sweep": "sweep",
    "RunResult": "train",
    "TrainConfig": "config",
    "evaluate": "train",
    "train_run": "train",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'mixlab.proxy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mixlab.proxy.{_HOME[name]}"), name)
