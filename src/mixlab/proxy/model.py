"""Proxy language models: GPT-2-style causal LMs from `transformers`, by preset, and where they run.

Presets (vocabulary comes from the tokenizer; keep it <= 8k on a CPU, where the output layer dominates):

    tiny         2 layers x 128, 4 heads   ~1.2 M parameters at vocab 8k    CPU sweeps
    small        4 layers x 256, 4 heads   ~5.3 M at vocab 8k              CPU, slow
    medium       6 layers x 512, 8 heads   ~23 M at vocab 8k               GPU
    bimix-proxy 12 layers x 768, 12 heads  ~85 M + embeddings              GPU (the BiMix paper's proxy shape)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from mixlab.errors import BadInput
from mixlab.proxy.config import preset


def build_model(name: str, vocab_size: int, seq_len: int) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 LM of preset `name` (no dropout; tied input/output embeddings).

    Initialisation draws from torch's global generator: seed it (`torch.manual_seed`) for determinism.
    """
    p = preset(name)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=p.n_embd,
        n_layer=p.n_layer,
        n_head=p.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def resolve_device(device: str) -> torch.device:
    """`auto` → cuda when available, else cpu; otherwise the named device (BadInput if unusable)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BadInput(f"`device` {device}: not a torch device (expected auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"`device` {device}: CUDA is not available on this machine")
    return dev


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast for the forward pass when `precision` is bf16, else nothing."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def default_threads() -> int:
    """CPU threads of a run that does not say: min(2, cores)."""
    return max(1, min(2, os.cpu_count() or 1))


def configure_torch(seed: int, threads: int | None, device: torch.device) -> int:
    """Seed torch, fix the CPU thread count and ask for deterministic kernels; returns the thread count."""
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    return threads
