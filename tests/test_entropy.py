"""The entropy math (mixlab.entropy): hand-computed values, identities and hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mixlab.entropy import (
    SparseCounts,
    conditional_entropy,
    count_window_pairs,
    embedding_gram,
    entropy_mixture,
    first_position_entropy,
    joint_entropy,
    miller_madow_bias,
    pair_key_dtype,
    pair_keys,
    shannon_entropy,
    token_entropies,
    von_neumann_entropy,
    von_neumann_entropy_from_gram,
    window_pair_mask,
)

LN2, LN3 = math.log(2), math.log(3)

token_streams = arrays(np.int64, st.integers(2, 200), elements=st.integers(0, 7))
count_vectors = arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 1000)).filter(
    lambda c: c.sum() > 0
)


def measures(tokens, vocab: int = 8, seq_len: int = 1 << 30):
    pairs = count_window_pairs(np.asarray(tokens), vocab, seq_len)
    return (
        shannon_entropy(np.bincount(tokens, minlength=vocab)),
        conditional_entropy(pairs, vocab),
        joint_entropy(pairs),
        first_position_entropy(pairs, vocab),
    )


# --- hand-computed values -------------------------------------------------------------------------------


def test_alternating_sequence_by_hand():
    # 0 1 0 1: unigrams 2/2 -> ln 2; pairs 01 01 10 -> {2/3, 1/3}; next token is determined -> CE = 0
    se, ce, je, h_first = measures([0, 1, 0, 1])
    assert se == pytest.approx(LN2, abs=1e-12)
    assert je == pytest.approx(LN3 - 2 / 3 * LN2, abs=1e-12)
    assert h_first == pytest.approx(LN3 - 2 / 3 * LN2, abs=1e-12)
    assert ce == pytest.approx(0.0, abs=1e-12)


def test_conditional_entropy_by_hand():
    # 0 0 1 0 0 1: pairs 00 01 10 00 01 -> c(00)=2, c(01)=2, c(10)=1; first: c(0)=4, c(1)=1
    # CE = -(2/5 ln 2/4 + 2/5 ln 2/4 + 1/5 ln 1/1) = 4/5 ln 2
    se, ce, je, h_first = measures([0, 0, 1, 0, 0, 1])
    assert ce == pytest.approx(0.8 * LN2, abs=1e-12)
    assert je == pytest.approx(-(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2)), abs=1e-12)
    assert h_first == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)), abs=1e-12)
    assert se == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)), abs=1e-12)


def test_pairs_are_counted_only_inside_windows():
    # windows [0 1] [2 3] [4]: pairs 01, 23 only (12 and 34 straddle windows)
    pairs = count_window_pairs(np.array([0, 1, 2, 3, 4]), 5, seq_len=2)
    assert pairs.keys.tolist() == [0 * 5 + 1, 2 * 5 + 3]
    assert pairs.counts.tolist() == [1, 1]
    assert joint_entropy(pairs) == pytest.approx(LN2)
    assert conditional_entropy(pairs, 5) == 0.0
    # a stream starting mid-window: positions 3..6 with seq_len 4 -> pair (3,4) straddles
    assert window_pair_mask(4, 4, start=3).tolist() == [False, True, True]


def test_miller_madow_by_hand():
    counts = np.array([1, 1, 2, 0])  # m = 3 non-zero bins, N = 4 -> (3 - 1) / 8
    assert miller_madow_bias(counts) == pytest.approx(0.25)
    assert shannon_entropy(counts, miller_madow=True) == pytest.approx(shannon_entropy(counts) + 0.25)
    assert miller_madow_bias(np.zeros(3, np.int64)) == 0.0


def test_miller_madow_reduces_the_plug_in_bias():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(200))
    truth = -float(np.sum(p * np.log(p)))
    plug, mm = [], []
    for _ in range(200):
        counts = np.bincount(rng.choice(200, size=300, p=p), minlength=200)
        plug.append(shannon_entropy(counts))
        mm.append(shannon_entropy(counts, miller_madow=True))
    assert truth - np.mean(plug) > 0.1  # the plug-in estimate is biased low at N ~ 1.5 x support
    assert abs(truth - np.mean(mm)) < 0.5 * (truth - np.mean(plug))


def test_empty_and_degenerate_inputs():
    assert shannon_entropy(np.array([], np.int64)) == 0.0
    assert shannon_entropy(np.array([0, 5, 0])) == 0.0
    assert conditional_entropy(SparseCounts.empty(), 4) == 0.0
    with pytest.raises(ValueError):
        shannon_entropy(np.array([1, -1]))
    with pytest.raises(ValueError):
        window_pair_mask(3, 1)


# --- identities and properties --------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(token_streams, st.integers(2, 50), st.booleans())
def test_joint_is_first_plus_conditional(tokens, seq_len, mm):
    pairs = count_window_pairs(tokens, 8, seq_len)
    je = joint_entropy(pairs, miller_madow=mm)
    assert je == pytest.approx(
        first_position_entropy(pairs, 8, mm) + conditional_entropy(pairs, 8, mm), abs=1e-9
    )


@settings(max_examples=80, deadline=None)
@given(count_vectors)
def test_shannon_bounds(counts):
    h = shannon_entropy(counts)
    support = np.count_nonzero(counts)
    assert 0.0 <= h <= math.log(support) + 1e-9
    assert shannon_entropy(counts, miller_madow=True) >= h


@settings(max_examples=60, deadline=None)
@given(count_vectors, st.randoms(use_true_random=False))
def test_shannon_is_permutation_and_scale_invariant(counts, rnd):
    perm = np.array(rnd.sample(range(len(counts)), len(counts)))
    assert shannon_entropy(counts[perm]) == pytest.approx(shannon_entropy(counts), abs=1e-9)
    assert shannon_entropy(counts * 7) == pytest.approx(shannon_entropy(counts), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(token_streams)
def test_pair_measure_bounds_and_relabelling(tokens):
    se, ce, je, h_first = measures(tokens)
    assert ce >= 0.0 and je >= 0.0
    # conditioning never increases entropy: CE <= H(second position) <= log(#distinct tokens)
    assert ce <= math.log(len(np.unique(tokens))) + 1e-9
    assert je <= math.log(len(np.unique(pair_keys(tokens, 8)))) + 1e-9
    # relabelling the vocabulary (a permutation of token ids) changes nothing
    relabel = np.array([3, 7, 0, 5, 1, 6, 2, 4])
    assert measures(relabel[tokens]) == pytest.approx((se, ce, je, h_first), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(token_streams, st.integers(1, 199), st.integers(2, 16))
def test_sparse_merge_equals_counting_the_concatenation(tokens, cut, seq_len):
    cut = min(cut, len(tokens))
    keys = pair_keys(tokens, 8)[window_pair_mask(len(tokens), seq_len)]
    whole = SparseCounts.from_keys(keys)
    merged = SparseCounts.from_keys(keys[:cut]).merge(SparseCounts.from_keys(keys[cut:]))
    assert merged == whole
    assert merged.total == len(keys)
    assert np.all(np.diff(merged.keys) > 0)
    # the same for a window-aligned split of the stream itself
    aligned = (cut // seq_len) * seq_len
    parts = count_window_pairs(tokens[:aligned], 8, seq_len).merge(
        count_window_pairs(tokens[aligned:], 8, seq_len)
    )
    assert parts == count_window_pairs(tokens, 8, seq_len)


def test_large_vocabularies_use_int64_keys():
    vocab = 100_000  # V * V > 2^32
    tokens = np.array([99_999, 99_998, 99_999, 99_998, 5], dtype=np.uint32)
    keys = pair_keys(tokens, vocab)
    assert keys.dtype == np.int64
    assert keys.tolist() == [
        99_999 * vocab + 99_998,
        99_998 * vocab + 99_999,
        99_999 * vocab + 99_998,
        99_998 * vocab + 5,
    ]
    assert pair_key_dtype(50_257) == np.uint32 and pair_key_dtype(65_536) == np.uint32
    pairs = count_window_pairs(tokens, vocab, seq_len=1024)
    assert pairs.keys.dtype == np.int64 and pairs.counts.tolist() == [1, 1, 2]
    assert token_entropies(np.bincount(tokens), pairs, vocab)["ce"] == pytest.approx(2 / 4 * LN2)


def test_sparse_merge_handles_large_keys_exactly():
    vocab = 1 << 20  # keys up to 2^40 - 1 stay exact as int64
    a = SparseCounts.from_keys(np.array([vocab * vocab - 1, 5, 5], np.int64))
    b = SparseCounts.from_keys(np.array([5, 2**40 - 2], np.int64))
    m = a.merge(b)
    assert m.keys.tolist() == [5, 2**40 - 2, 2**40 - 1]
    assert m.counts.tolist() == [3, 1, 1]
    assert m.counts.dtype == np.int64


# --- von Neumann entropy --------------------------------------------------------------------------------


def test_vne_identical_vectors_is_zero():
    x = np.tile(np.array([[0.3, -1.2, 2.0, 0.5]]), (50, 1))
    assert von_neumann_entropy(x) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("d", [2, 5, 32])
def test_vne_orthonormal_vectors_is_log_d(d):
    q, _ = np.linalg.qr(np.random.default_rng(d).normal(size=(d, d)))
    assert von_neumann_entropy(q) == pytest.approx(math.log(d), abs=1e-9)
    # scaling rows changes nothing (unit-normalised); repeating the set changes nothing
    assert von_neumann_entropy(np.vstack([3 * q, 0.1 * q])) == pytest.approx(math.log(d), abs=1e-9)


def test_vne_matches_the_n_by_n_kernel_and_adds_over_shards():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8)) + 2.0 * rng.normal(size=8)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(unit @ unit.T / len(unit)), 0, None)
    lam = lam[lam > 1e-15]
    direct = -float(np.sum(lam * np.log(lam)))
    assert von_neumann_entropy(x) == pytest.approx(direct, abs=1e-9)
    (g1, n1), (g2, n2) = embedding_gram(x[:13]), embedding_gram(x[13:])
    assert von_neumann_entropy_from_gram(g1 + g2, n1 + n2) == pytest.approx(direct, abs=1e-9)
    assert 0.0 < direct < math.log(8)


def test_vne_skips_zero_rows():
    q = np.eye(3)
    assert von_neumann_entropy(np.vstack([q, np.zeros((2, 3))])) == pytest.approx(LN3)
    assert embedding_gram(np.zeros((2, 3)))[1] == 0
    assert von_neumann_entropy(np.zeros((2, 3))) == 0.0


# --- mixtures -------------------------------------------------------------------------------------------


def test_softmax_mixture_values_and_invariances():
    r = entropy_mixture({"a": 1.0, "b": 1.0 + LN2, "c": 1.0})
    assert r == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})
    shifted = entropy_mixture({"a": 101.0, "b": 101.0 + LN2, "c": 101.0})
    assert shifted == pytest.approx(r)
    assert entropy_mixture({"x": 5.0, "y": 5.0}) == pytest.approx({"x": 0.5, "y": 0.5})
    assert entropy_mixture({"x": 1e4, "y": 0.0})["x"] == pytest.approx(1.0)  # no overflow
    with pytest.raises(ValueError):
        entropy_mixture({"x": float("nan")})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=12), st.floats(-50, 50))
def test_softmax_properties(h, shift):
    names = [f"d{i}" for i in range(len(h))]
    r = entropy_mixture(dict(zip(names, h, strict=True)))
    assert sum(r.values()) == pytest.approx(1.0)
    assert all(v > 0 for v in r.values())
    assert entropy_mixture({n: v + shift for n, v in zip(names, h, strict=True)}) == pytest.approx(
        r, rel=1e-9
    )
    order = np.argsort(h, kind="stable")
    values = np.array([r[names[i]] for i in order])
    assert np.all(np.diff(values) >= -1e-15)  # a higher entropy never gets a smaller share
    # ln r_i - ln r_j = H_i - H_j
    assert math.log(r[names[0]]) - math.log(r[names[-1]]) == pytest.approx(h[0] - h[-1], abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(token_streams, st.integers(2, 50))
def test_measures_match_a_dense_reference(tokens, seq_len):
    """SE/CE/JE against the textbook formulas on a dense 8 x 8 joint table (fine for a tiny vocabulary)."""
    keep = window_pair_mask(len(tokens), seq_len)
    joint = np.zeros((8, 8))
    np.add.at(joint, (tokens[:-1][keep], tokens[1:][keep]), 1.0)
    values = token_entropies(np.bincount(tokens, minlength=8), count_window_pairs(tokens, 8, seq_len), 8)
    if joint.sum() == 0:
        assert values["je"] == values["ce"] == 0.0
        return
    p = joint / joint.sum()
    first = p.sum(axis=1, keepdims=True)
    nz = p > 0
    unigram = np.bincount(tokens, minlength=8) / len(tokens)
    assert values["je"] == pytest.approx(-np.sum(p[nz] * np.log(p[nz])), abs=1e-9)
    conditional = p[nz] / np.broadcast_to(first, p.shape)[nz]
    assert values["ce"] == pytest.approx(-np.sum(p[nz] * np.log(conditional)), abs=1e-9)
    assert values["se"] == pytest.approx(
        -np.sum(unigram[unigram > 0] * np.log(unigram[unigram > 0])), abs=1e-9
    )
