"""`hf` export checked by the real consumer: `datasets.interleave_datasets` over the demo corpus."""

import json

import numpy as np
import pytest

from mixlab.corpus.reader import Corpus, read_shard
from mixlab.corpus.stats import corpus_stats
from mixlab.corpus.tokenizer import load_tokenizer
from mixlab.errors import BadInput
from mixlab.exports.hf import document_probabilities, export_hf, mean_tokens_from_stats, read_mean_tokens
from mixlab.mixture import Mixture

datasets = pytest.importorskip("datasets")  # test extra `clients`; skipped only where it is not installed


def test_document_probabilities_hand_computed():
    # w = (.2, .3, .5), L = (400, 40, 120): w/L = (5e-4, 7.5e-3, 4.1667e-3), sum 1.21667e-2
    p = document_probabilities(
        {"code": 0.2, "wiki": 0.3, "web": 0.5, "none": 0.0}, {"code": 400, "wiki": 40, "web": 120}
    )
    assert list(p) == ["code", "wiki", "web"]
    np.testing.assert_allclose(list(p.values()), [0.0410959, 0.6164384, 0.3424658], rtol=1e-6)
    # expected token share p_i L_i / Σ p_j L_j gives back w
    lengths = np.array([400, 40, 120])
    share = np.array(list(p.values())) * lengths
    np.testing.assert_allclose(share / share.sum(), [0.2, 0.3, 0.5])


@pytest.mark.parametrize(
    "stats, cause",
    [
        ({"domains": {"a": {"documents": 3, "tokens": None}}}, "no token count"),
        ({"domains": {"a": {"documents": 0, "tokens": 5}}}, "0 documents"),
        ({"tokenizer": None}, "no 'domains'"),
    ],
)
def test_refuses_stats_without_token_means(stats, cause):
    with pytest.raises(BadInput, match=cause):
        mean_tokens_from_stats(stats, where="s.json")


def test_refuses_domain_without_mean_and_nonpositive_mean():
    with pytest.raises(BadInput, match="domain 'b'"):
        document_probabilities({"a": 0.5, "b": 0.5}, {"a": 10})
    with pytest.raises(BadInput, match="domain 'a' has mean tokens per document 0"):
        document_probabilities({"a": 1.0}, {"a": 0})


@pytest.fixture(scope="module")
def demo(demo_corpus, tmp_path_factory):
    corpus = Corpus.open(demo_corpus)
    tok = load_tokenizer("gpt2")
    stats_path = tmp_path_factory.mktemp("stats") / "stats.json"
    stats_path.write_text(json.dumps(corpus_stats(corpus, tok)))
    per_domain = {}
    for d in corpus.domains:
        texts = [t for s in corpus.shards([d]) for b in read_shard(s) for t in b.texts]
        per_domain[d] = datasets.Dataset.from_dict(
            {"domain": [d] * len(texts), "n_tokens": tok.count_tokens(texts)}
        )
    return corpus, per_domain, stats_path


def _realised(spec, per_domain, seed):
    mix = datasets.interleave_datasets(
        [per_domain[d] for d in spec["domains"]], probabilities=spec["probabilities"], seed=seed,
        stopping_strategy="all_exhausted",
    )  # fmt: skip
    dom, n = np.array(mix["domain"]), np.array(mix["n_tokens"], dtype=float)
    return {d: n[dom == d].sum() / n.sum() for d in spec["domains"]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interleave_realises_token_mix(demo, seed):
    corpus, per_domain, stats_path = demo
    w = np.random.default_rng(3).dirichlet(np.ones(len(corpus.domains)))
    mixture = Mixture.from_weights("target", dict(zip(corpus.domains, w, strict=True)))
    spec = json.loads(export_hf(mixture, read_mean_tokens(stats_path)))
    realised = _realised(spec, per_domain, seed)
    # 2 points per domain: the demo corpus has 19 code documents of ~6.4k tokens, so a realised share moves
    # in steps of whole documents; the token shares themselves as probabilities miss by ~0.2 (checked below)
    for d in corpus.domains:
        assert realised[d] == pytest.approx(mixture.weights[d], abs=0.02), d
    naive = dict(spec, probabilities=[mixture.weights[d] for d in spec["domains"]])
    off = max(abs(v - mixture.weights[d]) for d, v in _realised(naive, per_domain, seed).items())
    assert off > 0.1
