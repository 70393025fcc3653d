"""The demo's verdict: methods paired against natural on the same seeds (Student-t interval over seeds), the
decision sentence and its trust notes derived from the numbers, and the report opening with that decision."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mixlab.mixture import Mixture
from mixlab.report import Artefacts, paired_interval, render, verdict
from mixlab.report.summary import paired_against_reference, shares_at_floor, unsettled_entropies

T_975_DF2 = 4.302652729749464  # Student-t 97.5 % quantile, 2 degrees of freedom (tables)


def test_paired_interval_by_hand() -> None:
    ci = paired_interval([-0.1, -0.2, -0.3])
    # mean -0.2, sample std 0.1, half width t * 0.1 / sqrt(3)
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert ci["n"] == 3 and ci["mean"] == pytest.approx(-0.2) and ci["std"] == pytest.approx(0.1)
    assert ci["lo"] == pytest.approx(-0.2 - half) and ci["hi"] == pytest.approx(-0.2 + half)
    assert ci["hi"] == pytest.approx(0.048414, abs=1e-6)
    # two pairs: t(0.975, 1) = 12.7062, std of (1, 3) = sqrt(2)
    two = paired_interval([1.0, 3.0])
    assert two["lo"] == pytest.approx(2 - 12.7062047 * math.sqrt(2) / math.sqrt(2), abs=1e-6)
    one = paired_interval([0.5])
    assert one == {"n": 1, "mean": 0.5, "std": None, "lo": None, "hi": None}
    for bad in ([], [float("nan"), 1.0], [[1.0, 2.0]]):
        with pytest.raises(ValueError, match="differences"):
            paired_interval(bad)


def _run(seed: int, a: float, b: float, tokens: int = 1000) -> dict:
    return {"seed": seed, "val_loss": {"a": a, "b": b}, "curve": [], "tokens": tokens}


def comparison() -> dict:
    """natural at seeds 0-2; 'good' 0.10 +- 0.01 better on every seed, 'noisy' +-0.2 around natural, 'bad' worse;
    'single' has one seed; 'good' also ran seed 7, which natural did not and the pairing must ignore."""
    nat = [(5.0, 6.0), (5.2, 6.0), (4.9, 6.1)]
    shift = {"good": [-0.10, -0.11, -0.09], "noisy": [0.2, -0.2, 0.1], "bad": [0.3, 0.31, 0.29]}
    methods = {"natural": {"mixture": {"a": 0.5, "b": 0.5}, "runs": [_run(s, *nat[s]) for s in range(3)]}}
    for m, d in shift.items():
        # the shift is applied to the average: both domains move by it
        methods[m] = {"mixture": {"a": 0.7, "b": 0.3},
                      "runs": [_run(s, nat[s][0] + d[s], nat[s][1] + d[s]) for s in range(3)]}  # fmt: skip
    methods["good"]["runs"].append(_run(7, 0.0, 0.0))
    methods["single"] = {"mixture": {"a": 0.1, "b": 0.9}, "runs": [_run(1, 1.0, 1.0)]}
    return {"domains": ["a", "b"], "methods": methods, "scale": {}, "seeds": [0, 1, 2]}


def test_paired_against_natural() -> None:
    rows = {r["method"]: r for r in paired_against_reference(comparison())}
    assert set(rows) == {"good", "noisy", "bad", "single"}
    assert rows["good"]["seeds"] == [0, 1, 2] and rows["good"]["verdict"] == "better"
    assert rows["good"]["difference"]["mean"] == pytest.approx(-0.10)
    assert rows["good"]["difference"]["std"] == pytest.approx(0.01)
    assert rows["noisy"]["verdict"] == "not resolved" and rows["bad"]["verdict"] == "worse"
    assert rows["single"]["verdict"] == "one seed" and rows["single"]["seeds"] == [1]
    assert rows["single"]["difference"]["mean"] == pytest.approx(1.0 - 5.6)


def test_verdict_sentences_match_the_numbers() -> None:
    metrics = [{"law": "bimix", "protocol": "unseen", "summary": {"r2_log": {"mean": 0.42}}},
               {"law": "dml", "protocol": "extrapolate", "summary": {"r2_log": {"mean": 0.99}}}]  # fmt: skip
    optimum = Mixture("bimix-opt", {"a": 0.99, "b": 0.01}, {"bounds": {"a": [0.01, 1.0], "b": [0.01, 1.0]}})
    entropy = {"domains": {"a": {"ce": 2.0, "convergence": {"last_step_change": {"ce": 0.05, "se": 0.0}}},
                           "b": {"ce": 2.0, "convergence": {"last_step_change": {"ce": 0.01}}}}}  # fmt: skip
    v = verdict(comparison(), metrics, optimum, entropy)
    assert (
        v["better"] == ["good"] and v["worse"] == ["bad"] and v["not_resolved"] == ["single", "noisy"]
    )  # by mean difference
    assert v["recommended"] == "good" and v["recommended_mixture"] == {"a": 0.7, "b": 0.3}
    assert v["unseen_r2_log"] == {"bimix": 0.42}
    assert v["decision"].startswith(
        "mixlab recommends good for this corpus: average validation loss -0.1000 nats"
    )
    ci = paired_interval([-0.10, -0.11, -0.09])
    assert f"{ci['lo']:+.4f} to {ci['hi']:+.4f}, 3 seeds" in v["decision"]
    nat_std = np.std([5.5, 5.6, 5.5], ddof=1)
    trust = " | ".join(v["trust"])
    assert f"{nat_std:.4f} nats (std) over 3 seeds" in trust
    assert "BiMix unseen R²(log) 0.420, it does not rank" in trust
    assert "ce estimate is not settled in a (" in trust and "bimix-opt holds b at the share floor" in trust
    assert any(s.startswith("Beat natural beyond seed noise") and "good" in s for s in v["sentences"])
    assert "Every evaluation model trained the same 1,000 tokens." in v["sentences"]


def test_no_method_beyond_noise_keeps_natural() -> None:
    comp = comparison()
    del comp["methods"]["good"]
    v = verdict(comp, [])
    assert v["better"] == [] and v["recommended"] == "natural"
    assert v["decision"].startswith("mixlab recommends keeping the natural mixture: no method beat it")
    assert "No method beat natural beyond seed noise" in v["sentences"][0]


def test_unsettled_and_floor_helpers() -> None:
    entropy = {"domains": {"x": {"se": 4.0, "convergence": {"last_step_change": {"se": -0.041}}},
                           "y": {"se": 4.0, "convergence": {"last_step_change": {"se": 0.039}}}}}  # fmt: skip
    assert unsettled_entropies(entropy) == {"se": ["x"]} and unsettled_entropies(None) == {}
    m = Mixture("opt", {"x": 0.05, "y": 0.95}, {"bounds": {"x": [0.05, 1.0], "y": [0.0, 1.0]}})
    assert shares_at_floor(m) == ["x"] and shares_at_floor(None) == []


def test_unequal_budgets_are_reported() -> None:
    comp = comparison()
    comp["methods"]["bad"]["runs"][0]["tokens"] = 2000
    assert verdict(comp, [])["sentences"][-1].startswith("The evaluation models did not all train the same")


def test_report_opens_with_the_decision() -> None:
    a = Artefacts(comparisons=[(Path("results.json"), {"comparison": comparison()})])
    page = render(a)
    assert page.index('id="decision"') < page.index('id="comparison"')
    assert "mixlab recommends good for this corpus" in page and "<td>better</td>" in page


def test_training_unigram_entropy_by_hand(tmp_path: Path) -> None:
    from mixlab.demo.flow import training_unigram_entropy
    from mixlab.proxy.data import Streams

    np.array([0, 0, 1, 1], dtype=np.uint16).tofile(tmp_path / "x.train.bin")
    np.array([2, 2], dtype=np.uint16).tofile(tmp_path / "y.train.bin")
    np.array([5], dtype=np.uint16).tofile(tmp_path / "z.train.bin")  # weight 0: not in the training mix
    streams = Streams(tmp_path, ["x", "y", "z"], 8, None, "uint16", 0, {})
    # half x (tokens 0, 1 equally), half y (token 2): p = (1/4, 1/4, 1/2), H = 1.5 ln 2
    mix = Mixture("m", {"x": 0.5, "y": 0.5, "z": 0.0})
    assert training_unigram_entropy(streams, mix) == pytest.approx(1.5 * math.log(2))
