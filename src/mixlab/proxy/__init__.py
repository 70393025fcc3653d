"""Proxy-LM sweeps: packed token streams, small GPT-2 models, the training loop, eval logging, DoReMi.

streams = prepare_streams(corpus, tokenizer)                 # cached per corpus + tokenizer
results = run_sweep(corpus, "mixtures.csv", "sweep_dir", TrainConfig(model="tiny", tokens=500_000))
result = train_run(streams, mixture, TrainConfig(...))       # one evaluation model, per-domain losses
"""

from mixlab.proxy.data import MixtureSampler, Streams, prepare_streams
from mixlab.proxy.sweep import run_sweep
from mixlab.proxy.train import RunResult, TrainConfig, evaluate, train_run

__all__ = [
    "MixtureSampler",
    "RunResult",
    "Streams",
    "TrainConfig",
    "evaluate",
    "prepare_streams",
    "run_sweep",
    "train_run",
]
