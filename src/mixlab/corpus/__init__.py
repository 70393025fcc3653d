"""Corpus I/O: reading domains of documents, tokenizers, writing sampled datasets."""

from mixlab.corpus.reader import (
    Corpus,
    DocumentBatch,
    ReadStats,
    Shard,
    document_id,
    iter_texts,
    open_corpus,
    read_shard,
)
from mixlab.corpus.stats import corpus_stats, natural_mixture
from mixlab.corpus.tokenizer import Tokenizer, cache_dir, load_tokenizer
from mixlab.corpus.writer import ParquetShardWriter

__all__ = [
    "Corpus",
    "DocumentBatch",
    "ParquetShardWriter",
    "ReadStats",
    "Shard",
    "Tokenizer",
    "cache_dir",
    "corpus_stats",
    "document_id",
    "iter_texts",
    "load_tokenizer",
    "natural_mixture",
    "open_corpus",
    "read_shard",
]
