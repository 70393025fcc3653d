"""Hugging Face `datasets.interleave_datasets` export: document probabilities that realise a token mix.

`interleave_datasets(probabilities=p)` draws one ROW (document) per step, so the token share of domain i
is p_i·L_i / Σ_j p_j·L_j with L_i its mean tokens per document. To realise token shares w the document
probabilities are p_i ∝ w_i / L_i. The mean lengths come from `corpus stats --json` or the corpus itself.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixlab.errors import BadInput
from mixlab.files import read_json
from mixlab.mixture import Mixture


def document_probabilities(
    token_shares: Mapping[str, float], mean_tokens: Mapping[str, float]
) -> dict[str, float]:
    """p_i ∝ w_i / L_i over the domains with w_i > 0 (zero-weight domains are dropped)."""
    raw = {}
    for domain, w in token_shares.items():
        if w <= 0:
            continue
        if domain not in mean_tokens:
            raise BadInput(f"`mean_tokens`: no mean tokens per document for domain '{domain}'")
        length = float(mean_tokens[domain])
        if not math.isfinite(length) or length <= 0:
            raise BadInput(f"`mean_tokens`: domain '{domain}' has mean tokens per document {length}")
        raw[domain] = w / length
    if not raw:
        raise BadInput("`token_shares`: weights are all zero")
    total = sum(raw.values())
    return {d: v / total for d, v in raw.items()}


def mean_tokens_from_stats(stats: Mapping[str, Any], where: str = "stats") -> dict[str, float]:
    """Mean tokens per document of each domain from `corpus_stats` output (needs a tokenizer's counts)."""
    domains = stats.get("domains") if isinstance(stats, Mapping) else None
    if not isinstance(domains, Mapping):
        raise BadInput(f"{where}: not `corpus stats --json` output (no 'domains' object)")
    out = {}
    for domain, row in domains.items():
        tokens, docs = (row.get("tokens"), row.get("documents")) if isinstance(row, Mapping) else (None, None)
        if tokens is None:
            raise BadInput(
                f"{where}: domain '{domain}' has no token count (run corpus stats with --tokenizer)"
            )
        if not isinstance(docs, int) or docs <= 0:
            raise BadInput(f"{where}: domain '{domain}' has {docs!r} documents")
        out[str(domain)] = float(tokens) / docs
    return out


def read_mean_tokens(path: str | os.PathLike[str]) -> dict[str, float]:
    """Mean tokens per document from a `corpus stats --json` file."""
    return mean_tokens_from_stats(read_json(Path(path), "corpus stats"), where=str(path))


def hf_interleave_spec(
    mixture: Mixture, mean_tokens: Mapping[str, float], paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `interleave_datasets` arguments for `mixture` (token shares), plus what they were derived from."""
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(mixture.weights))
    if unknown:
        raise BadInput(f"`paths`: domain '{unknown[0]}' is not in mixture '{mixture.name}'")
    probs = document_probabilities(mixture.weights, mean_tokens)
    return {
        "name": mixture.name,
        "datasets": [paths.get(d, d) for d in probs],
        "probabilities": list(probs.values()),
        "domains": list(probs),
        "token_weights": {d: mixture.weights[d] for d in probs},
        "mean_tokens_per_document": {d: float(mean_tokens[d]) for d in probs},
    }


def export_hf(
    mixture: Mixture, mean_tokens: Mapping[str, float], paths: Mapping[str, str] | None = None
) -> str:
    return json.dumps(hf_interleave_spec(mixture, mean_tokens, paths), indent=2) + "\n"
