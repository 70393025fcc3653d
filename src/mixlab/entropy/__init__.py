"""Entropy proxies (BiMix §1.5): the pure measures, the counting pass over a corpus, its profile and plot.

`mixlab.entropy.measures` (pure numpy: SE, CE, JE, VNE, the softmax mixture), `.counting` (one shard's counts and
their exact merge), `.profile` (the pass behind `mixlab entropy`: `profile_corpus`, `EntropyProfile`,
`profile_to_dir` which also writes the outputs), `.plots` (`plot_mixtures`).
"""

from mixlab.entropy.measures import (
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
from mixlab.entropy.profile import MEASURES, EntropyProfile, profile_corpus, profile_to_dir, write_profile

__all__ = [
    "MEASURES",
    "EntropyProfile",
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
    "profile_corpus",
    "profile_to_dir",
    "shannon_entropy",
    "token_entropies",
    "von_neumann_entropy",
    "von_neumann_entropy_from_gram",
    "window_pair_mask",
    "write_profile",
]
