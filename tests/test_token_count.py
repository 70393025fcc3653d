"""`Tokenizer.count_tokens` (cached per pre-token piece) agrees with encoding every text in full."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mixlab.corpus import load_tokenizer

GPT2 = load_tokenizer("gpt2")


def test_piece_counts_match_full_encoding_on_mixed_text() -> None:
    texts = [
        "",
        "Hello, world! It's 2026 and we'll see.",
        "  \n\t  indented\n\n\ncode(x) -> y  ",
        "émoji 🎉 ĠÄ 'S 'LL 中文字符 числа 123456789",
        "a" * 5000,
        "def f(x):\n    return x ** 2  # square\n",
    ]
    assert GPT2._counts_by_piece()
    assert GPT2.count_tokens(texts) == GPT2.count_tokens_encoded(texts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_piece_counts_match_full_encoding_on_any_unicode(texts: list[str]) -> None:
    assert GPT2.count_tokens(texts) == GPT2.count_tokens_encoded(texts)
