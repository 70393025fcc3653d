"""`mixlab.integrations.ray.mixed_dataset` on a local Ray runtime: the realised TOKEN mix is the target."""

import numpy as np
import pytest

from mixlab.errors import BadInput
from mixlab.mixture import Mixture

ray = pytest.importorskip("ray")
from mixlab.integrations.ray import mixed_dataset  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))  # fmt: skip
    yield
    ray.shutdown()


def _token_mix(ds):
    rows = ds.select_columns(["domain", "n_tokens"]).to_pandas()
    totals = rows.groupby("domain")["n_tokens"].sum()
    return (totals / totals.sum()).to_dict(), len(rows)


def test_realised_token_mix_from_datasets(local_ray):
    """Each domain's mean tokens per row are given here: left out, each is a `Dataset.mean` job (~13 s each on
    2 cores, ~40 s of this test); the next test runs that default."""
    rng = np.random.default_rng(0)
    lengths = {"code": 400, "wiki": 40, "web": 120, "off": 50}
    tokens = {d: rng.poisson(L, 1500) + 1 for d, L in lengths.items()}
    per_domain = {
        d: ray.data.from_items([{"domain": d, "n_tokens": int(n)} for n in t]) for d, t in tokens.items()
    }
    mixture = Mixture.from_weights("t", {"code": 0.2, "wiki": 0.3, "web": 0.5, "off": 0.0})
    means = {d: float(t.mean()) for d, t in tokens.items()}
    realised, n_rows = _token_mix(mixed_dataset(per_domain, mixture, mean_tokens=means, rows_per_block=8))
    assert "off" not in realised
    for d in ("code", "wiki", "web"):
        assert realised[d] == pytest.approx(mixture.weights[d], rel=0.02), (d, realised, n_rows)


@pytest.mark.slow  # tokenises the whole demo corpus and runs Ray on it: minutes on 2 loaded cores
def test_realised_token_mix_from_demo_corpus(local_ray, demo_corpus):
    from mixlab.corpus.reader import Corpus

    domains = Corpus.open(demo_corpus).domains
    w = np.random.default_rng(3).dirichlet(np.ones(len(domains)))
    mixture = Mixture.from_weights("target", dict(zip(domains, w, strict=True)))
    realised, _ = _token_mix(mixed_dataset(demo_corpus, mixture, rows_per_block=2))
    for d in domains:  # whole documents of up to ~6k tokens (19 code documents): 2 points per domain
        assert realised[d] == pytest.approx(mixture.weights[d], abs=0.02), d


def test_one_domain_without_mean_tokens_and_a_missing_tokens_column(local_ray):
    """Without `mean_tokens` each domain's mean is taken from `tokens_column` (one domain: the mixed dataset
    is that domain's rows); a missing column is named."""
    ds = ray.data.from_items([{"n_tokens": n} for n in (3, 5, 10)])
    mixed = mixed_dataset({"a": ds}, Mixture.from_weights("m", {"a": 1.0}), rows_per_block=1)
    assert sorted(row["n_tokens"] for row in mixed.take_all()) == [3, 5, 10]
    with pytest.raises(BadInput, match="dataset of domain 'a' has no column 'length'"):
        mixed_dataset({"a": ds, "b": ds}, Mixture.from_weights("m", {"a": 1, "b": 1}), tokens_column="length")


def test_missing_domain_named(local_ray):
    with pytest.raises(BadInput, match="no dataset for domain 'b'"):
        mixed_dataset(
            {"a": ray.data.from_items([{"n_tokens": 1}])}, Mixture.from_weights("m", {"a": 1, "b": 1})
        )
