"""Ray Data hand-off: `mixed_dataset` returns a Ray Dataset whose TOKEN mix is a mixlab mixture.

`Dataset.mix(*others, weights=...)` (Ray ≥ 2.60, alpha API) mixes ROWS in the weights' ratio, block by
block, so mixlab's token shares w become row weights p_i ∝ w_i / L_i (L_i: mean tokens per document) and
zero-weight domains are dropped (Ray rejects weights ≤ 0). `STOP_ON_SHORTEST` ends the stream when the
first domain runs out; Ray's default keeps draining the others and returns their union, not the mix.
Each output block comes whole from one input, so the realised mix moves in steps of one block: inputs are
cut into blocks of at most `rows_per_block` rows.

    import ray
    from mixlab.integrations.ray import mixed_dataset
    ds = mixed_dataset("corpus/", read_mixture_ref("mixtures.csv:ce"), tokenizer="gpt2")
    for batch in ds.iter_batches(batch_size=256): ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from mixlab.corpus.reader import Corpus, read_shard
from mixlab.corpus.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer
from mixlab.errors import BadInput
from mixlab.exports.hf import document_probabilities
from mixlab.mixture import Mixture


def _corpus_datasets(
    corpus: Corpus, domains: list[str], tokenizer: Tokenizer, skip_bad_rows: bool
) -> tuple[dict[str, Any], dict[str, float]]:
    """One in-memory Ray Dataset per domain (rows `text`, `domain`, `n_tokens`) and its mean tokens per row."""
    import ray.data

    out, means = {}, {}
    for d in domains:
        texts = [
            t for s in corpus.shards([d]) for b in read_shard(s, skip_bad_rows=skip_bad_rows) for t in b.texts
        ]
        counts = tokenizer.count_tokens(texts)
        means[d] = sum(counts) / len(counts)
        out[d] = ray.data.from_items(
            [{"text": t, "domain": d, "n_tokens": n} for t, n in zip(texts, counts, strict=True)]
        )
    return out, means


def mixed_dataset(
    corpus_or_datasets: Corpus | str | os.PathLike[str] | Mapping[str, Any],
    mixture: Mixture,
    *,
    mean_tokens: Mapping[str, float] | None = None,
    tokenizer: Tokenizer | str = DEFAULT_TOKENIZER,
    tokens_column: str = "n_tokens",
    rows_per_block: int = 8,
    text_field: str = "text",
    skip_bad_rows: bool = False,
) -> Any:
    """A Ray Dataset mixing `mixture`'s domains by tokens.

    corpus_or_datasets: a mixlab corpus (path or `Corpus`; rows get `text`, `domain`, `n_tokens` from
    `tokenizer`) or {domain: ray.data.Dataset}. For datasets, `mean_tokens` gives each domain's mean tokens
    per row, else it is the mean of `tokens_column`."""
    from ray.data import MixStoppingCondition

    if isinstance(rows_per_block, bool) or not isinstance(rows_per_block, int) or rows_per_block < 1:
        raise BadInput(f"`rows_per_block`: must be a positive integer (got {rows_per_block!r})")
    active = [d for d, w in mixture.weights.items() if w > 0]
    if isinstance(corpus_or_datasets, Mapping):
        missing = [d for d in active if d not in corpus_or_datasets]
        if missing:
            raise BadInput(
                f"`corpus_or_datasets`: no dataset for domain '{missing[0]}' of mixture '{mixture.name}'"
            )
        per_domain = {d: corpus_or_datasets[d] for d in active}
    else:
        corpus = (
            corpus_or_datasets
            if isinstance(corpus_or_datasets, Corpus)
            else Corpus.open(corpus_or_datasets, text_field)
        )
        missing = [d for d in active if d not in corpus.domains]
        if missing:
            raise BadInput(f"`corpus_or_datasets`: no domain '{missing[0]}' of mixture '{mixture.name}'")
        tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer, corpus=corpus)
        per_domain, counted = _corpus_datasets(corpus, active, tok, skip_bad_rows)
        mean_tokens = counted if mean_tokens is None else mean_tokens
    if mean_tokens is None:
        mean_tokens = {}
        for d, ds in per_domain.items():
            if tokens_column not in ds.columns():
                raise BadInput(f"`tokens_column`: dataset of domain '{d}' has no column '{tokens_column}'")
            mean_tokens[d] = ds.mean(tokens_column)
    probs = document_probabilities({d: mixture.weights[d] for d in active}, mean_tokens)
    blocks = [ds.repartition(max(1, math.ceil(ds.count() / rows_per_block))) for ds in per_domain.values()]
    if len(blocks) == 1:
        return blocks[0]
    return blocks[0].mix(
        *blocks[1:], weights=list(probs.values()), stopping_condition=MixStoppingCondition.STOP_ON_SHORTEST
    )
