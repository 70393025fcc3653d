"""SampleMix diversity: k-means clusters of document embeddings, per-cluster compactness and separation.

METHODS.md §2.2 [clustering from the paper; formula our choice]. For cluster C with centroid μ_C:
- compactness(C) = mean L2 distance of its members to μ_C (small ⇒ dense, redundant);
- separation(C)  = mean distance from μ_C to the other centroids (`separation="mean"`) or to the nearest
  one (`separation="nearest"`);
- d(x) = minmax( compactness(C(x)) · separation(C(x)) ) over the documents of the pool.

Clustering runs in two passes so it scales: `KMeans.fit` on a sample of embeddings, then `assign` shard by
shard, whose `ClusterStats` merge; `cluster_diversity` turns the merged statistics into per-cluster values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mixlab.errors import BadInput

SEPARATIONS = ("mean", "nearest")


def default_clusters(n_documents: int) -> int:
    """k for n documents: round(sqrt(n / 10)), at least 2 and at most 1024 (and never more than n)."""
    k = int(round(math.sqrt(max(n_documents, 1) / 10)))
    return max(1, min(n_documents, max(2, min(k, 1024))))


class KMeans:
    """Faiss k-means on L2 distances. Hyper-parameters in `__init__`; `centroids_` [k, dim] after `fit`."""

    def __init__(self, k: int, seed: int = 0, niter: int = 20, max_points_per_centroid: int = 256) -> None:
        if k < 1:
            raise BadInput(f"`k` {k}: must be at least 1")
        self.k = k
        self.seed = seed
        self.niter = niter
        self.max_points_per_centroid = max_points_per_centroid
        self.centroids_: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> KMeans:
        """Fit on embeddings x [n, dim] (n ≥ k); faiss subsamples to k·max_points_per_centroid rows."""
        import faiss

        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[0] < self.k:
            raise BadInput(f"`k` {self.k}: more clusters than documents ({x.shape[0]})")
        km = faiss.Kmeans(
            x.shape[1],
            self.k,
            niter=self.niter,
            seed=self.seed,
            verbose=False,
            max_points_per_centroid=self.max_points_per_centroid,
            min_points_per_centroid=1,
        )
        km.train(x)
        self.centroids_ = np.asarray(km.centroids, dtype=np.float32)
        return self

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row of x [n, dim]: (labels int64 [n], L2 distances float32 [n])."""
        import faiss

        if self.centroids_ is None:
            raise RuntimeError("KMeans.assign before fit")
        index = faiss.IndexFlatL2(self.centroids_.shape[1])
        index.add(self.centroids_)
        sq, labels = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return labels[:, 0].astype(np.int64), np.sqrt(np.maximum(sq[:, 0], 0.0)).astype(np.float32)


@dataclass
class ClusterStats:
    """Members and summed member-to-centroid distance per cluster ([k] each); merge across shards."""

    counts: np.ndarray
    distance_sums: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, distances: np.ndarray, k: int) -> ClusterStats:
        return cls(
            np.bincount(labels, minlength=k).astype(np.int64),
            np.bincount(labels, weights=distances, minlength=k).astype(np.float64),
        )

    def merge(self, other: ClusterStats) -> ClusterStats:
        return ClusterStats(self.counts + other.counts, self.distance_sums + other.distance_sums)


@dataclass
class ClusterDiversity:
    """Per-cluster values [k]: compactness, separation, raw product and d normalised over the pool."""

    compactness: np.ndarray
    separation: np.ndarray
    raw: np.ndarray
    diversity: np.ndarray


def cluster_diversity(
    centroids: np.ndarray, stats: ClusterStats, separation: str = "mean"
) -> ClusterDiversity:
    """Compactness × separation per cluster, min-max normalised over the documents of the pool.

    centroids [k, dim]; empty clusters are ignored as neighbours and get diversity 0. With a single non-empty
    cluster every document gets d = 1 (nothing to tell apart).
    """
    if separation not in SEPARATIONS:
        raise BadInput(f"`separation` {separation}: expected one of {', '.join(SEPARATIONS)}")
    c = np.asarray(centroids, dtype=np.float64)
    k = c.shape[0]
    present = stats.counts > 0
    compactness = np.divide(stats.distance_sums, stats.counts, out=np.zeros(k), where=present)
    sq = np.maximum((c * c).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * c @ c.T, 0.0)
    dist = np.sqrt(sq)
    others = present[None, :] & ~np.eye(k, dtype=bool)
    n_others = others.sum(1)
    if separation == "mean":
        sep = np.divide((dist * others).sum(1), n_others, out=np.zeros(k), where=n_others > 0)
    else:
        sep = np.where(others, dist, np.inf).min(1)
        sep[n_others == 0] = 0.0
    raw = compactness * sep
    diversity = np.zeros(k)
    if present.any():
        lo, hi = raw[present].min(), raw[present].max()
        diversity[present] = 1.0 if hi == lo else (raw[present] - lo) / (hi - lo)
    return ClusterDiversity(compactness, sep, raw, diversity)


__all__ = [
    "SEPARATIONS",
    "ClusterDiversity",
    "ClusterStats",
    "KMeans",
    "cluster_diversity",
    "default_clusters",
]
