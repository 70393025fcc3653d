"""Issue 16.4 / 15.4: the hybrid sample realises its target mixture per domain, and the report shows the law
comparison (`compare_laws`, `evaluate --law all`) as a ranked table with the recommended law."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from mixlab.demo.flow import unseen_split
from mixlab.errors import BadInput
from mixlab.laws.evaluate import compare_laws
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
from mixlab.report import collect, render, verdict
from mixlab.samplemix.sample import TARGET_TOLERANCE
from mixlab.samplemix.sampler import domain_counts, fitted_counts


def demo_like_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, lengths and domain codes shaped like the quick demo's corpus: a 49k-token budget drawn from
    a pool ~30x larger, a domain of long documents (math: ~3k tokens each, 59 of them) with a small target."""
    rng = np.random.default_rng(7)
    lengths = np.concatenate(
        [rng.integers(500, 6000, 59), rng.integers(200, 3000, 118), rng.integers(100, 600, 600)]
    ).astype(float)
    codes = np.repeat([0, 1, 2], [59, 118, 600])
    return rng.random(lengths.size), lengths, codes


@pytest.mark.parametrize("seed", range(5))
def test_hybrid_target_is_realised_per_domain_within_the_tolerance(seed) -> None:
    # Before the fix each document was rounded independently: math's 2.6k-token budget (0.052 of 49,152)
    # over ~3k-token documents drew 0, 1 or 2 documents (share 0 or ~0.12); seed 0 missed by 148 %.
    p, lengths, codes = demo_like_pool()
    target = {"math": 0.052, "spam": 0.23, "wiki": 0.718}
    counts, budgets = domain_counts(
        p, lengths, codes, list(target), 49_152, np.random.default_rng(seed), 4, target
    )
    tokens = np.bincount(codes, weights=counts * lengths, minlength=3)
    shares = tokens / tokens.sum()
    wanted = np.array(list(target.values()))
    assert np.all(np.abs(shares - wanted) <= TARGET_TOLERANCE * wanted), shares
    assert budgets == pytest.approx({d: 49_152 * w for d, w in target.items()})
    assert counts.max() <= 4 and np.all(counts[p == 0] == 0)


def test_fitted_counts_by_hand() -> None:
    rng = np.random.default_rng(0)
    # a budget of one of two equal documents: exactly one is taken
    assert sorted(fitted_counts(np.array([0.5, 0.5]), np.array([1000.0, 1000.0]), 1000, rng, 0.004)) == [0, 1]
    # whole copies stay; of the fractional ones only the 50-token document fits the 60-token remainder, and
    # overshooting by the 100-token one would land further away (300 vs 250 for a budget of 260)
    counts = fitted_counts(np.array([2.5, 0.2, 0.0]), np.array([100.0, 50.0, 10.0]), 260, rng, 0.004)
    assert counts.tolist() == [2, 1, 0]
    # nothing fits a 1,000-token budget better than no document of 3,000 tokens
    assert fitted_counts(np.full(3, 1 / 9), np.full(3, 3000.0), 1000, rng, 0.004).tolist() == [0, 0, 0]
    # a swap closes the gap a first-fit pass leaves: 700 + 200 taken, then 200 -> 300 gives 1000 exactly
    lengths = np.array([700.0, 200.0, 300.0])
    rates = np.full(3, 1000 / lengths.sum())
    for seed in range(5):
        counts = fitted_counts(rates, lengths, 1000, np.random.default_rng(seed), 0.004)
        assert counts @ lengths == 1000


@pytest.fixture(scope="module")
def law_comparison_dir(tmp_path_factory):
    """A real `compare_laws` result (what `evaluate --law all` writes) on a small BiMix sweep."""
    proportions = dirichlet_mixtures(10, 3, seed=1, floor=0.05)
    obs = synthetic_bimix(
        proportions, [100, 200, 400, 800], alpha=[0.3, 0.2, 0.4], B=[5.0, 4.0, 6.0], beta=[0.5, 0.4, 0.6],
        C=[1.5, 2.0, 1.2], domains=("web", "code", "math"),
    )  # fmt: skip
    comparison = compare_laws(obs, laws=["bimix", "powerlaw", "dml"], folds=5, seed=0)
    out = tmp_path_factory.mktemp("laws")
    (out / "compare-laws.json").write_text(json.dumps(comparison.to_dict()))
    return out, comparison.to_dict()


def test_report_renders_the_law_ranking_and_recommendation(law_comparison_dir) -> None:
    out, doc = law_comparison_dir
    page = render(collect([out]), root=out)
    section = re.search(r'<section id="law-selection">(.*?)</section>', page, re.S)
    assert section, "no Law selection section"
    html_text = section.group(1)
    rows = re.findall(
        r"<tr( class=\"best\")?><td>(\d+)</td><td>(\w+)</td><td>([^<]+)</td><td>([^<]+)</td>", html_text
    )
    assert [r[2] for r in rows] == [r["law"] for r in doc["ranking"]]  # ranked as compare_laws ranked them
    assert [r[1] for r in rows] == ["1", "2", "3"]
    best = doc["recommended"]["law"]
    assert [r[2] for r in rows if r[0]] == [best]
    top = doc["ranking"][0]
    assert rows[0][3] == f"{top['spearman_final']:.4f}" and rows[0][4] == f"{top['r2_log']:.4f}"
    assert f"Recommended law: {best}" in html_text and "5-fold cross-validation over 10 runs" in doc["reason"]
    assert html.escape(doc["reason"]) in html_text
    assert "from compare-laws.json" in html_text  # names its source file


def test_a_broken_ranking_names_the_file(tmp_path) -> None:
    bad = tmp_path / "compare-laws.json"
    bad.write_text(
        json.dumps({"protocol": "kfold", "ranking": [{"spearman_final": 1.0}], "recommended": None})
    )
    with pytest.raises(BadInput, match=r"compare-laws.json: field 'ranking' row 0"):
        collect([tmp_path])


def test_unseen_protocol_trains_on_some_random_mixtures() -> None:
    names = ["se", "ce", "je", "vne", "random-000", "random-001", "random-002", "random-003"]
    assert unseen_split(names) == (
        ["se", "ce", "je", "vne", "random-000", "random-001"],
        ["random-002", "random-003"],
    )
    assert unseen_split(names[:5]) == (["se", "ce", "je", "vne"], ["random-000"])
    with pytest.raises(BadInput, match="random_mixtures >= 1"):
        unseen_split(names[:4])


def test_trust_names_the_domain_that_drags_the_unseen_r2_down() -> None:
    runs = [{"seed": s, "val_loss": {"a": 5.0 + 0.01 * s}, "tokens": 10} for s in (0, 1)]
    comparison = {"domains": ["a"], "methods": {"natural": {"runs": runs}}}
    domains = {"books": {"r2_log": 0.9}, "math": {"r2_log": -40.1}, "news": {"r2_log": 0.85}}
    metrics = [
        {"law": "bimix", "protocol": "unseen", "summary": {"r2_log": {"mean": -12.78}}, "domains": domains}
    ]
    (law_fit,) = [t for t in verdict(comparison, metrics)["trust"] if t.startswith("law fit")]
    assert law_fit.endswith("; median over domains 0.850, worst math -40.100")


def test_the_decision_names_the_law_the_sweep_recommends(law_comparison_dir, tmp_path) -> None:
    laws, doc = law_comparison_dir
    runs = {m: [{"seed": s, "val_loss": {"a": base + 0.01 * s}, "tokens": 10} for s in (0, 1)]
            for m, base in (("natural", 5.0), ("ce", 4.9))}  # fmt: skip
    comparison = {"domains": ["a"], "methods": {m: {"runs": r} for m, r in runs.items()}}
    (tmp_path / "results.json").write_text(json.dumps({"comparison": comparison}))
    page = render(collect([tmp_path, laws]))
    decision = re.search(r'<section id="decision">(.*?)</section>', page, re.S).group(1)
    assert f"law selection on this sweep: {doc['recommended']['law']} ranks first" in decision
    assert page.index('id="decision"') < page.index('id="law-selection"')
