"""Entropy proxies of a domain (BiMix, METHODS.md §1.5): pure numpy functions, no I/O.

All entropies are in nats (natural log). Counts are non-negative integers (int64).

- Unigram counts are a dense bincount of length V (the vocabulary size).
- Adjacent-pair (bigram) counts are a `SparseCounts`: sorted unique int64 keys `x * V + x'` and their
  int64 counts. Tables merge exactly (integer sums), so counts from any split of a corpus into shards and
  workers add up to the counts of the whole; a dense V x V table is never allocated.
- Pairs are counted inside fixed-length windows of the packed token stream (documents joined with EOS,
  cut into `seq_len`-token windows, as the paper's 1024-token training sequences): the pair that straddles
  two windows is not a pair the model ever sees.

SE = H(unigrams); JE = H(pairs); CE = -sum P(x,x') log P(x'|x) with P(x'|x) = P(x,x') / P_first(x) where
P_first is the first-position marginal of the pairs, so JE = H(first) + CE exactly. SE uses every token,
H(first) leaves out the last token of each window; the two differ by O(1/seq_len) (see `tests`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def _as_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.size and (not np.issubdtype(counts.dtype, np.number) or np.any(counts < 0)):
        raise ValueError("counts must be non-negative numbers")
    return counts.ravel()


def shannon_entropy(counts: np.ndarray, miller_madow: bool = False) -> float:
    """Plug-in Shannon entropy (nats) of the distribution proportional to `counts` (any shape).

    Zero counts are ignored; an all-zero or empty array has entropy 0. With `miller_madow` the
    Miller-Madow bias correction (m - 1) / (2N) is added (m = non-zero bins, N = total count).
    """
    counts = _as_counts(counts)
    nonzero = counts[counts > 0].astype(np.float64)
    total = nonzero.sum()
    if total <= 0:
        return 0.0
    # H = log N - (1/N) sum c log c: one log per bin, accurate for large N
    h = float(np.log(total) - np.dot(nonzero, np.log(nonzero)) / total)
    h = max(h, 0.0)
    return h + miller_madow_bias(counts) if miller_madow else h


def miller_madow_bias(counts: np.ndarray) -> float:
    """The Miller-Madow correction (m - 1) / (2N) in nats: m = bins with a non-zero count, N = total.

    The plug-in estimator underestimates entropy by about this much; adding it gives the Miller-Madow
    estimate. 0 for an empty sample.
    """
    counts = _as_counts(counts)
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    return (int(np.count_nonzero(counts)) - 1) / (2.0 * total)


@dataclass(frozen=True)
class SparseCounts:
    """Counts of int64 keys as a sorted table: `keys` [n] strictly increasing int64, `counts` [n] int64 > 0."""

    keys: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls) -> SparseCounts:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def from_keys(cls, keys: np.ndarray) -> SparseCounts:
        """Count occurrences of each key in `keys` (any order, non-negative integers [n]).

        Keys are sorted in their own dtype (uint32 keys from `pair_keys` sort ~1.6x faster than int64);
        the table holds int64.
        """
        keys = np.asarray(keys)
        if not np.issubdtype(keys.dtype, np.integer):
            raise ValueError(f"keys must be integers, got {keys.dtype}")
        unique, counts = _run_lengths(np.sort(keys, kind="quicksort"))
        return cls(unique.astype(np.int64), counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def __len__(self) -> int:
        return len(self.keys)

    def merge(self, other: SparseCounts) -> SparseCounts:
        """The exact sum of two tables (a new table; neither input is modified)."""
        if not len(other):
            return self
        if not len(self):
            return other
        keys = np.concatenate([self.keys, other.keys])
        counts = np.concatenate([self.counts, other.counts])
        # two sorted runs: the stable sort (timsort) merges them in linear time
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        starts = _starts(keys)
        return SparseCounts(keys[starts], np.add.reduceat(counts, starts))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SparseCounts)
            and np.array_equal(self.keys, other.keys)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new key starts in a sorted array (first index included)."""
    if not len(sorted_keys):
        return np.empty(0, np.int64)
    change = np.empty(len(sorted_keys), dtype=bool)
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def _run_lengths(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = _starts(sorted_keys)
    counts = np.diff(np.append(starts, len(sorted_keys))).astype(np.int64)
    return sorted_keys[starts], counts


def window_pair_mask(n_tokens: int, seq_len: int, start: int = 0) -> np.ndarray:
    """Which adjacent pairs (i, i+1) of a token run lie inside one window, bool [max(n_tokens - 1, 0)].

    The run starts at position `start` of a stream cut into windows of `seq_len` tokens; the pair at
    positions (p, p+1) is inside a window unless p + 1 is a multiple of `seq_len`.
    """
    if seq_len < 2:
        raise ValueError("seq_len must be at least 2 (a window of one token has no pairs)")
    positions = np.arange(start + 1, start + max(n_tokens, 1), dtype=np.int64)
    return positions % seq_len != 0


def pair_key_dtype(vocab_size: int) -> np.dtype:
    """uint32 when every key `x * V + x'` fits (V <= 65,536: GPT-2, NeoX, BPE-8k), else int64."""
    return np.dtype(np.uint32) if vocab_size * vocab_size <= 1 << 32 else np.dtype(np.int64)


def pair_keys(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Keys `x * V + x'` of adjacent pairs along the last axis of `tokens` ([n] -> [n - 1], or
    [k, L] windows -> [k, L - 1]), in `pair_key_dtype(V)`."""
    tokens = np.asarray(tokens)
    dtype = pair_key_dtype(vocab_size)
    if tokens.shape[-1] < 2:
        return np.empty((*tokens.shape[:-1], 0), dtype)
    return tokens[..., :-1].astype(dtype) * dtype.type(vocab_size) + tokens[..., 1:]


def count_window_pairs(tokens: np.ndarray, vocab_size: int, seq_len: int) -> SparseCounts:
    """Adjacent pairs inside `seq_len`-token windows of one packed stream `tokens` [n]."""
    keys = pair_keys(tokens, vocab_size)
    return SparseCounts.from_keys(keys[window_pair_mask(len(tokens), seq_len)])


def joint_entropy(pair_counts: SparseCounts | np.ndarray, miller_madow: bool = False) -> float:
    """JE (nats): Shannon entropy of the adjacent-pair distribution (a SparseCounts or its counts)."""
    counts = pair_counts.counts if isinstance(pair_counts, SparseCounts) else pair_counts
    return shannon_entropy(counts, miller_madow)


def conditional_entropy(pairs: SparseCounts, vocab_size: int, miller_madow: bool = False) -> float:
    """CE (nats): -sum P(x,x') log P(x'|x), P(x'|x) = c(x,x') / c_first(x).

    `pairs` keys are `x * V + x'` with `vocab_size` = V. Computed as JE - H(first-position marginal),
    which is the same sum regrouped (log P(x'|x) = log P(x,x') - log P_first(x)); with `miller_madow`
    both terms get their Miller-Madow correction, so JE = H(first) + CE holds either way.
    """
    return token_entropies(np.empty(0, np.int64), pairs, vocab_size, miller_madow)["ce"]


def first_position_entropy(pairs: SparseCounts, vocab_size: int, miller_madow: bool = False) -> float:
    """H of the first-position marginal of `pairs` (nats): JE = this + CE."""
    return token_entropies(np.empty(0, np.int64), pairs, vocab_size, miller_madow)["first"]


def token_entropies(
    unigrams: np.ndarray, pairs: SparseCounts, vocab_size: int, miller_madow: bool = False
) -> dict[str, float]:
    """SE, CE, JE and H(first) (nats) of one sample, each log computed once.

    `unigrams` [V] token counts; `pairs` in-window pair counts (keys `x * V + x'`). Returns
    {"se", "ce", "je", "first"} with CE = JE - H(first) (clipped at 0 against round-off).
    """
    if len(pairs):
        # keys are sorted, so the pairs sharing a first token are contiguous: row totals by reduceat
        first_counts = np.add.reduceat(pairs.counts, _starts(pairs.keys // vocab_size))
    else:
        first_counts = np.empty(0, np.int64)
    je = shannon_entropy(pairs.counts, miller_madow)
    first = shannon_entropy(first_counts, miller_madow)
    return {
        "se": shannon_entropy(unigrams, miller_madow),
        "ce": max(je - first, 0.0),
        "je": je,
        "first": first,
    }


def embedding_gram(embeddings: np.ndarray) -> tuple[np.ndarray, int]:
    """(XᵀX float64 [d, d], N) of the unit-normalised non-zero rows of `embeddings` [n, d].

    Grams of disjoint row sets add up, so a corpus pass sums them per shard. All-zero rows (nothing to
    normalise) are left out and not counted in N.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [n, d], got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    keep = norms > 0
    x = x[keep] / norms[keep, None]
    return x.T @ x, int(keep.sum())


def von_neumann_entropy_from_gram(gram: np.ndarray, n: int) -> float:
    """VNE (nats) from the summed gram XᵀX [d, d] of N unit rows: -sum λ log λ over eig(XᵀX / N).

    The non-zero eigenvalues of XᵀX/N equal those of the cosine-kernel density matrix XXᵀ/N, whose trace
    is 1; tiny negative eigenvalues from round-off are clipped to 0.
    """
    if n <= 0:
        return 0.0
    eigenvalues = np.linalg.eigvalsh(np.asarray(gram, dtype=np.float64) / n)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    eigenvalues = eigenvalues / eigenvalues.sum()
    positive = eigenvalues[eigenvalues > 0]
    return float(max(-np.dot(positive, np.log(positive)), 0.0))


def von_neumann_entropy(embeddings: np.ndarray) -> float:
    """VNE (nats) of a set of document embeddings [n, d]: rows unit-normalised, cosine kernel.

    Between 0 (all vectors parallel) and log(min(n, d)) (orthonormal vectors).
    """
    return von_neumann_entropy_from_gram(*embedding_gram(embeddings))


def entropy_mixture(entropies: Mapping[str, float]) -> dict[str, float]:
    """Domain proportions r_i = exp(H_i) / sum_j exp(H_j) (temperature-1 softmax of nats)."""
    if not entropies:
        raise ValueError("no entropies to mix")
    names = list(entropies)
    h = np.array([float(entropies[d]) for d in names])
    if not np.all(np.isfinite(h)):
        raise ValueError("entropies must be finite")
    w = np.exp(h - h.max())
    w /= w.sum()
    return dict(zip(names, w.tolist(), strict=True))


__all__ = [
    "SparseCounts",
    "conditional_entropy",
    "count_window_pairs",
    "embedding_gram",
    "entropy_mixture",
    "first_position_entropy",
    "joint_entropy",
    "miller_madow_bias",
    "pair_key_dtype",
    "pair_keys",
    "shannon_entropy",
    "token_entropies",
    "von_neumann_entropy",
    "von_neumann_entropy_from_gram",
    "window_pair_mask",
]
