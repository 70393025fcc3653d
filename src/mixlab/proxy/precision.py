"""The precision a proxy model trains in, decided by the hardware it runs on, with the reason recorded.

`--precision auto`:

    GPU  bf16 autocast where `torch.cuda.is_bf16_supported()`, else fp32 (fp16 would need loss scaling;
         [choice] not offered).
    CPU  bf16 only where the CPU has native bf16 instructions (avx512_bf16 or AMX in /proc/cpuinfo's flags,
         aarch64's bf16 feature, or torch's own check) AND a short probe (a few training steps of the run's
         model shape in each precision) measures bf16 at least `BF16_MIN_SPEEDUP` times faster; otherwise
         fp32. Without native instructions bf16 is emulated: 13-18x slower on an AVX2 EPYC.

Probe results are cached in `cache_dir()/precision.json`, keyed by CPU model and flags, torch version, model
shape and thread count, so a machine measures each shape once.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixlab.files import write_json
from mixlab.proxy.config import PRECISIONS

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# [choice] bf16 costs accuracy: take it only for a clear gain, not for probe noise.
BF16_MIN_SPEEDUP = 1.1
CACHE_FILE = "precision.json"


@dataclass(frozen=True)
class Precision:
    """What a run trains in (fp32 | bf16) and why (recorded in meta.json)."""

    name: str
    reason: str


@dataclass(frozen=True)
class CpuFeatures:
    """What decides bf16 on a CPU: its model name, its flags, and whether torch finds native bf16 itself."""

    model: str
    flags: frozenset[str]
    torch_native_bf16: bool

    @classmethod
    def parse(cls, cpuinfo: str, torch_native_bf16: bool = False) -> CpuFeatures:
        """From the text of /proc/cpuinfo (x86 `flags`, aarch64 `Features`)."""
        model, flags = "", frozenset()
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = frozenset(value.split())
        return cls(model or platform.processor(), flags, torch_native_bf16)

    @classmethod
    def of_this_machine(cls) -> CpuFeatures:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return cls.parse(cpuinfo, any(getattr(torch.cpu, name, lambda: False)() for name in checks))


def native_bf16(flags: Iterable[str], torch_says_native: bool) -> list[str]:
    """The evidence of native bf16 instructions: the flags that provide them, plus torch's check; [] if none."""
    evidence = sorted(NATIVE_BF16_FLAGS.intersection(flags))
    return evidence + (["torch"] if torch_says_native and not evidence else [])


def decide_cpu(flags: Iterable[str], torch_says_native: bool, probe: dict[str, float] | None) -> Precision:
    """`auto` on a CPU, a pure function of its flags, torch's bf16 check and the probe's tokens/s per precision.

    probe: {"fp32": tok/s, "bf16": tok/s}; needed only where bf16 is native (else it is not consulted).
    """
    evidence = native_bf16(flags, torch_says_native)
    if not evidence:
        return Precision("fp32", "cpu lacks avx512_bf16/amx: bf16 would be emulated")
    if probe is None:
        raise ValueError("a CPU with native bf16 needs the probe's tokens/s to decide")
    fp32, bf16 = probe["fp32"], probe["bf16"]
    measured = f"probe: bf16 {bf16:,.0f} vs fp32 {fp32:,.0f} tok/s"
    native = f"cpu has native bf16 ({', '.join(evidence)})"
    if bf16 >= BF16_MIN_SPEEDUP * fp32:
        return Precision("bf16", f"{native}; {measured}")
    return Precision("fp32", f"{native} but not {BF16_MIN_SPEEDUP}x faster; {measured}")


def decide_cuda(bf16_supported: bool) -> Precision:
    """`auto` on a GPU."""
    if bf16_supported:
        return Precision("bf16", "cuda device supports bf16")
    return Precision("fp32", "cuda device lacks bf16 (fp16 would need loss scaling)")


def resolve_precision(
    requested: str,
    device: torch.device,
    shape: dict[str, Any],
    probe: Callable[[], dict[str, float]],
    cache: Path,
    cpu: CpuFeatures | None = None,
) -> Precision:
    """The precision of a run: `requested` unless it is `auto`, then the hardware's decision.

    shape: what the probe's speed depends on (model preset, vocabulary, sequence length, batch, threads);
    probe(): measures tokens/s of that shape per precision, run only on a native-bf16 CPU without a cached
    result; cache: the JSON file holding this machine's probe results; cpu: default this machine's.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return Precision(requested, "requested")
    if device.type == "cuda":
        return decide_cuda(torch.cuda.is_bf16_supported())
    cpu = cpu or CpuFeatures.of_this_machine()
    if not native_bf16(cpu.flags, cpu.torch_native_bf16):
        return decide_cpu(cpu.flags, cpu.torch_native_bf16, None)
    key = json.dumps(
        {"cpu": cpu.model, "flags": sorted(cpu.flags), "torch": torch.__version__, **shape}, sort_keys=True
    )
    results = _read_cache(cache)
    if key not in results:
        results[key] = probe()
        write_json(cache, results)
    return decide_cpu(cpu.flags, cpu.torch_native_bf16, results[key])


def _read_cache(path: Path) -> dict[str, dict[str, float]]:
    """Probe results by key; an unreadable cache or entry is measured again, not trusted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: speeds
        for key, speeds in data.items()
        if isinstance(speeds, dict)
        and all(isinstance(speeds.get(p), int | float) and speeds[p] > 0 for p in ("fp32", "bf16"))
    }
