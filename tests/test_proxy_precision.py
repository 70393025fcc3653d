"""`--precision auto`: decided by the hardware (CPU flags, a cached probe; the GPU's bf16 support), recorded
with its reason."""

from __future__ import annotations

import json

import pytest
import torch

from mixlab.proxy.config import TrainConfig
from mixlab.proxy.precision import CpuFeatures, Precision, decide_cpu, decide_cuda, resolve_precision
from mixlab.proxy.train import probe_tokens_per_second

EPYC_AVX2 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
)
SAPPHIRE = "model name\t: Intel Xeon Platinum 8480+\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n"
SHAPE = {"model": "tiny", "vocab_size": 512, "seq_len": 64, "batch_size": 16, "threads": 2}


def test_cpuinfo_parsing_x86_and_aarch64():
    epyc = CpuFeatures.parse(EPYC_AVX2)
    assert epyc.model == "AMD EPYC" and "avx2" in epyc.flags and "avx512_bf16" not in epyc.flags
    assert {"avx512_bf16", "amx_bf16"} <= CpuFeatures.parse(SAPPHIRE).flags
    assert "bf16" in CpuFeatures.parse(GRAVITON).flags


def test_cpu_without_native_bf16_is_fp32_whatever_a_probe_says():
    flags = CpuFeatures.parse(EPYC_AVX2).flags
    expected = Precision("fp32", "cpu lacks avx512_bf16/amx: bf16 would be emulated")
    assert decide_cpu(flags, False, None) == expected
    assert decide_cpu(flags, False, {"fp32": 1000.0, "bf16": 9000.0}) == expected
    # torch's capability string alone ("AVX512") is not evidence: only the flags or torch's bf16 check are
    assert decide_cpu({"avx512f", "avx2"}, False, None).name == "fp32"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"fp32": 10_000.0, "bf16": 25_000.0}, "bf16"),
        ({"fp32": 10_000.0, "bf16": 11_000.0}, "bf16"),  # exactly the 1.1x margin
        ({"fp32": 10_000.0, "bf16": 10_500.0}, "fp32"),  # within probe noise
        ({"fp32": 10_000.0, "bf16": 1_000.0}, "fp32"),
    ],
)
def test_native_cpu_follows_the_probe(probe, expected):
    flags = CpuFeatures.parse(SAPPHIRE).flags
    decision = decide_cpu(flags, False, probe)
    assert decision.name == expected
    assert "amx_bf16, avx512_bf16" in decision.reason
    assert f"bf16 {probe['bf16']:,.0f} vs fp32 {probe['fp32']:,.0f} tok/s" in decision.reason


def test_native_cpu_needs_a_probe_and_torch_check_counts_as_native():
    with pytest.raises(ValueError, match="probe"):
        decide_cpu(CpuFeatures.parse(GRAVITON).flags, False, None)
    assert decide_cpu(set(), True, {"fp32": 1.0, "bf16": 2.0}) == Precision(
        "bf16", "cpu has native bf16 (torch); probe: bf16 2 vs fp32 1 tok/s"
    )


def test_cuda_decision():
    assert decide_cuda(True) == Precision("bf16", "cuda device supports bf16")
    assert decide_cuda(False).name == "fp32"


def test_probe_runs_once_per_machine_and_shape_and_is_cached(tmp_path):
    cache = tmp_path / "precision.json"
    calls = []

    def probe():
        calls.append(1)
        return {"fp32": 1000.0, "bf16": 3000.0}

    native = CpuFeatures.parse(SAPPHIRE)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, SHAPE, probe, cache, native).name == "bf16"
    assert resolve_precision("auto", cpu, SHAPE, probe, cache, native).name == "bf16"
    assert len(calls) == 1
    (entry,) = json.loads(cache.read_text()).values()
    assert entry == {"fp32": 1000.0, "bf16": 3000.0}
    resolve_precision("auto", cpu, {**SHAPE, "vocab_size": 8192}, probe, cache, native)
    assert len(calls) == 2
    cache.write_text("{not json")  # an unreadable cache is measured again
    resolve_precision("auto", cpu, SHAPE, probe, cache, native)
    assert len(calls) == 3
    # no native bf16: no probe, no cache; an explicit request is kept as asked
    other = tmp_path / "other.json"
    epyc = CpuFeatures.parse(EPYC_AVX2)
    assert resolve_precision("auto", cpu, SHAPE, probe, other, epyc).name == "fp32"
    assert resolve_precision("bf16", cpu, SHAPE, probe, other, epyc) == Precision("bf16", "requested")
    assert len(calls) == 3 and not other.exists()


def test_real_probe_measures_both_precisions_and_leaves_the_rng_alone():
    config = TrainConfig(tokens=4096, seq_len=16, batch_size=4, threads=1)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    speeds = probe_tokens_per_second(config, 64, torch.device("cpu"), steps=1)
    assert set(speeds) == {"fp32", "bf16"} and all(v > 0 for v in speeds.values())
    assert torch.equal(torch.get_rng_state(), state)
