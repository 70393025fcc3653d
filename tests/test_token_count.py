"""`Tokenizer.count_tokens` (cached per whitespace-delimited chunk) agrees with encoding every text in full."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mixcli import stdlib_texts
from mixlab.corpus import load_tokenizer
from mixlab.corpus.tokenizer import BYTE_LEVEL_CHUNKS, Tokenizer, train_bpe

GPT2 = load_tokenizer("gpt2")


MIXED = [
    "",
    "Hello, world! It's 2026 and we'll see.",
    "  \n\t  indented\n\n\ncode(x) -> y  ",
    "émoji 🎉 ĠÄ 'S 'LL 中文字符 числа 123456789",
    "a" * 5000,
    "def f(x):\n    return x ** 2  # square\n",
]


def test_chunk_counts_match_full_encoding_on_mixed_text() -> None:
    texts = MIXED
    assert GPT2._counts_by_chunk()
    assert GPT2.count_tokens(texts) == GPT2.count_tokens_encoded(texts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_chunk_counts_match_full_encoding_on_any_unicode(texts: list[str]) -> None:
    assert GPT2.count_tokens(texts) == GPT2.count_tokens_encoded(texts)


def test_chunk_counts_match_full_encoding_around_every_kind_of_whitespace() -> None:
    """Python's str.isspace() and the tokenizer's `\\s` (Unicode White_Space) differ on U+001C..U+001F: every
    space-like code point, alone, doubled, before a space and between words, splits exactly as the encoder."""
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()] + ["\x1c", "\x1d", "\x1e", "\x1f", "\u200b"]
    texts = (
        [f"{s}a{s}{s}b {s}c{s} d{s}\n{s}'s{s}12{s}.!{s}" for s in spaces]
        + [f"word{s}" for s in spaces]
        + [s * 3 for s in spaces]
    )
    assert GPT2.count_tokens(texts) == GPT2.count_tokens_encoded(texts)


TRAINED = Tokenizer(train_bpe(iter(MIXED * 50 + stdlib_texts("prose", 40)), 600), "bpe-test", None)


def test_chunk_counts_match_full_encoding_for_a_trained_bpe() -> None:
    """The HF-encoder path (any byte-level BPE but gpt2): new chunks counted from their concatenation."""
    texts = MIXED + stdlib_texts("code", 30) + stdlib_texts("prose", 30, offset=40)
    assert TRAINED._counts_by_chunk()
    assert TRAINED.count_tokens(texts) == TRAINED.count_tokens_encoded(texts)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_trained_bpe_chunk_counts_match_full_encoding_on_any_unicode(texts: list[str]) -> None:
    assert TRAINED.count_tokens(texts) == TRAINED.count_tokens_encoded(texts)


def test_new_chunks_are_counted_from_their_concatenation() -> None:
    """The fast path itself, not its per-chunk fallback: tokens of the joined chunks fall inside them."""
    texts = MIXED + stdlib_texts("code", 10) + stdlib_texts("prose", 10)
    chunks = [c for t in texts for c in BYTE_LEVEL_CHUNKS.findall(t) if not c[-1].isspace()]
    for tok in (GPT2, TRAINED):
        joined = tok._counts_joined(chunks)
        assert joined is not None
        assert joined.tolist() == tok.count_tokens_encoded(chunks)
