"""Diversity: k-means clusters, compactness × separation, on hand-made and synthetic Gaussian clusters."""

from __future__ import annotations

import numpy as np
import pytest

from mixlab.errors import BadInput
from mixlab.samplemix.diversity import ClusterStats, KMeans, cluster_diversity, default_clusters


def test_hand_computed_compactness_and_separation() -> None:
    centroids = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    labels = np.array([0, 0, 1, 2, 2, 2])
    distances = np.array([1.0, 3.0, 0.5, 1.0, 1.0, 4.0])
    stats = ClusterStats.of(labels[:3], distances[:3], 3).merge(ClusterStats.of(labels[3:], distances[3:], 3))
    np.testing.assert_array_equal(stats.counts, [2, 1, 3])
    mean = cluster_diversity(centroids, stats, "mean")
    np.testing.assert_allclose(mean.compactness, [2.0, 0.5, 2.0])
    np.testing.assert_allclose(mean.separation, [3.5, 4.0, 4.5])  # pairwise distances 3, 4, 5
    np.testing.assert_allclose(mean.raw, [7.0, 2.0, 9.0])
    np.testing.assert_allclose(mean.diversity, [5 / 7, 0.0, 1.0])
    nearest = cluster_diversity(centroids, stats, "nearest")
    np.testing.assert_allclose(nearest.separation, [3.0, 3.0, 4.0])
    with pytest.raises(BadInput, match="separation"):
        cluster_diversity(centroids, stats, "farthest")


def test_empty_clusters_are_ignored_as_neighbours() -> None:
    centroids = np.array([[0.0], [1.0], [100.0]])
    stats = ClusterStats(np.array([2, 2, 0]), np.array([1.0, 2.0, 0.0]))
    div = cluster_diversity(centroids, stats)
    np.testing.assert_allclose(div.separation[:2], [1.0, 1.0])
    assert div.diversity[2] == 0.0


@pytest.mark.parametrize("separation", ["mean", "nearest"])
def test_tight_crowded_cluster_scores_below_spread_isolated_one(separation: str) -> None:
    rng = np.random.default_rng(0)
    dim = 16
    centre = np.zeros(dim)
    neighbour = np.zeros(dim)
    neighbour[0] = 0.6
    far = np.full(dim, 3.0)
    crowded = centre + 0.05 * rng.standard_normal((3000, dim))
    crowded_twin = neighbour + 0.05 * rng.standard_normal((3000, dim))
    isolated = far + 0.6 * rng.standard_normal((300, dim))
    x = np.concatenate([crowded, crowded_twin, isolated]).astype(np.float32)
    km = KMeans(3, seed=0).fit(x)
    labels, distances = km.assign(x)
    div = cluster_diversity(km.centroids_, ClusterStats.of(labels, distances, 3), separation)
    d = div.diversity[labels]
    assert d[:3000].mean() < d[6000:].mean()
    assert d[6000:].mean() == pytest.approx(1.0)
    assert len(np.unique(labels[:3000])) == 1 and len(np.unique(labels[6000:])) == 1


def test_kmeans_is_deterministic_and_checks_k() -> None:
    x = np.random.default_rng(1).standard_normal((500, 8)).astype(np.float32)
    a = KMeans(5, seed=3).fit(x).centroids_
    b = KMeans(5, seed=3).fit(x).centroids_
    np.testing.assert_array_equal(a, b)
    with pytest.raises(BadInput, match="more clusters than documents"):
        KMeans(600).fit(x)
    assert default_clusters(1_000) == 10 and default_clusters(10) == 2 and default_clusters(10**9) == 1024
    assert default_clusters(1) == 1
