"""The `heuristic` annotator: fast document signals mapped onto the rubric — an APPROXIMATION.

No model reads the text; rules in the spirit of the Gopher/C4 quality filters stand in for an LLM judge.
They reward English prose that is long, varied, punctuated and free of spam markers, so they
under-rate code, tables and other languages. Per dimension (integer scores, as an LLM would give):

- clarity      1 if mostly letters (≥ 60 % of non-space chars), few symbols (≤ 10 %), few capitals (≤ 30 % of
               letters), mean word length 3-10, and ≥ 15 % stop words (real sentences)
- coherence    1 if ≥ 50 words, ≤ 30 % duplicated lines and ≤ 20 % of words inside repeated 3-grams
- structure    1 if ≥ 3 non-empty lines or ≥ 2 paragraphs, mean line ≤ 400 chars, ≥ 40 % of lines ending in
               sentence punctuation (or list/heading lines), ≤ 30 % duplicated lines
- credibility  1 unless spam markers: URLs (> 1 per 100 words), money/“free”/“click”/“unsubscribe” words
               (> 1 per 100 words), ≥ 3 exclamation marks in a row or > 1 per 50 words, shouting (> 30 % caps)
- significance 1 if ≥ 40 words, type-token ratio ≥ 0.3, clarity = 1 and no spam markers
- knowledge    0 below 15 distinct content words (not stop words, ≥ 3 letters); 2 with ≥ 120 of them and a
               mean content-word length ≥ 5.5, or when dense (≥ 30 and ≥ 40 % of all words); else 1
- logic        reasoning connectives (because, therefore, however, thus, ...) per 100 words: 0 when < 0.3 or
               fewer than 30 words, 1 below 1.0, else 2
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
CONNECTIVES = frozenset(
    [
        "because",
        "therefore",
        "however",
        "thus",
        "hence",
        "although",
        "though",
        "since",
        "consequently",
        "moreover",
        "furthermore",
        "whereas",
        "nevertheless",
        "accordingly",
        "implies",
        "if",
        "unless",
        "so",
        "whether",
        "indeed",
        "instead",
        "rather",
        "despite",
        "otherwise",
    ]
)
SPAM_WORDS = frozenset(
    [
        "free",
        "click",
        "unsubscribe",
        "offer",
        "guaranteed",
        "winner",
        "cash",
        "money",
        "viagra",
        "credit",
        "cheap",
        "discount",
        "order",
        "buy",
        "limited",
        "urgent",
        "bonus",
        "prize",
        "earn",
        "income",
        "investment",
        "mortgage",
        "deal",
        "sale",
        "subscribe",
        "remove",
    ]
)
ASCII_LETTERS = string.ascii_letters.encode()
ASCII_UPPER = string.ascii_uppercase.encode()
ASCII_ALNUM = (string.ascii_letters + string.digits).encode()
PLAIN_PUNCTUATION = ".,;:'\"!?()-"  # not counted as symbols
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
URL = re.compile(r"https?://|www\.", re.IGNORECASE)
SENTENCE_END = re.compile(r"""[.!?:;"')\]]\s*$""")
LIST_OR_HEADING = re.compile(r"^\s*([-*•#>]|\d+[.)]|[A-Z][A-Za-z ]{0,60}$)")


def _char_classes(chars: str) -> tuple[int, int, int]:
    """(letters, upper-case letters, alphanumerics) among `chars`, by str.isalpha/isupper/isalnum; ASCII text
    is counted by deleting byte classes (C speed), other text character by character."""
    if chars.isascii():
        data = chars.encode()
        n = len(data)
        return (
            n - len(data.translate(None, ASCII_LETTERS)),
            n - len(data.translate(None, ASCII_UPPER)),
            n - len(data.translate(None, ASCII_ALNUM)),
        )
    return sum(map(str.isalpha, chars)), sum(map(str.isupper, chars)), sum(map(str.isalnum, chars))


def document_signals(text: str) -> dict[str, float]:
    """The raw signals of one document (ratios in [0, 1], counts as floats)."""
    words = WORD.findall(text)
    lower = [w.lower() for w in words]
    n_words = len(words)
    chars = "".join(text.split())  # the non-whitespace characters
    n_chars = max(len(chars), 1)
    letters, upper, alnum = _char_classes(chars)
    symbols = len(chars) - alnum - sum(map(chars.count, PLAIN_PUNCTUATION))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    n_lines = max(len(lines), 1)
    line_counts = Counter(lines)
    dup_lines = sum(c for c in line_counts.values() if c > 1) / n_lines
    trigrams = Counter(zip(lower, lower[1:], lower[2:], strict=False))
    repeated = sum(c for c in trigrams.values() if c > 1)
    content = [w for w in lower if w not in STOP_WORDS and len(w) >= 3]
    distinct_content = set(content)
    per100 = 100.0 / max(n_words, 1)
    return {
        "words": float(n_words),
        "lines": float(len(lines)),
        "paragraphs": float(len([p for p in re.split(r"\n\s*\n", text) if p.strip()])),
        "letter_ratio": letters / n_chars,
        "symbol_ratio": symbols / n_chars,
        "upper_ratio": upper / max(letters, 1),
        "mean_word_length": sum(map(len, words)) / n_words if words else 0.0,
        "stop_ratio": sum(map(STOP_WORDS.__contains__, lower)) / max(n_words, 1),
        "type_token": len(set(lower)) / max(n_words, 1),
        "dup_line_ratio": dup_lines,
        "repeated_trigram_ratio": repeated / max(sum(trigrams.values()), 1),
        "mean_line_length": sum(map(len, lines)) / len(lines) if lines else 0.0,
        "punct_line_ratio": sum(bool(SENTENCE_END.search(ln) or LIST_OR_HEADING.match(ln)) for ln in lines)
        / n_lines,
        "urls_per100": len(URL.findall(text)) * per100,
        "spam_words_per100": sum(map(SPAM_WORDS.__contains__, lower)) * per100 + text.count("$") * per100,
        "exclaim_runs": float(len(re.findall(r"!{3,}", text))),
        "exclaim_per50": text.count("!") * 50.0 / max(n_words, 1),
        "distinct_content": float(len(distinct_content)),
        "content_word_length": sum(map(len, distinct_content)) / len(distinct_content)
        if distinct_content
        else 0.0,
        "connectives_per100": sum(map(CONNECTIVES.__contains__, lower)) * per100,
    }


def rubric_from_signals(s: dict[str, float]) -> np.ndarray:
    """Map `document_signals` onto the 7 rubric dimensions (int64 [7], rubric order); rules in the docstring."""
    clarity = (
        s["letter_ratio"] >= 0.6
        and s["symbol_ratio"] <= 0.1
        and s["upper_ratio"] <= 0.3
        and 3.0 <= s["mean_word_length"] <= 10.0
        and s["stop_ratio"] >= 0.15
    )
    coherence = s["words"] >= 50 and s["dup_line_ratio"] <= 0.3 and s["repeated_trigram_ratio"] <= 0.2
    structure = (
        (s["lines"] >= 3 or s["paragraphs"] >= 2)
        and s["mean_line_length"] <= 400
        and s["punct_line_ratio"] >= 0.4
        and s["dup_line_ratio"] <= 0.3
    )
    spam = (
        s["urls_per100"] > 1.0
        or s["spam_words_per100"] > 1.0
        or s["exclaim_runs"] > 0
        or s["exclaim_per50"] > 1.0
        or s["upper_ratio"] > 0.3
    )
    significance = s["words"] >= 40 and s["type_token"] >= 0.3 and clarity and not spam
    dense = s["distinct_content"] >= 30 and s["distinct_content"] >= 0.4 * s["words"]
    if s["distinct_content"] < 15:
        knowledge = 0
    elif (s["distinct_content"] >= 120 and s["content_word_length"] >= 5.5) or dense:
        knowledge = 2
    else:
        knowledge = 1
    if s["words"] < 30 or s["connectives_per100"] < 0.3:
        logic = 0
    elif s["connectives_per100"] < 1.0:
        logic = 1
    else:
        logic = 2
    return np.array([clarity, coherence, structure, not spam, significance, knowledge, logic], dtype=np.int64)


class HeuristicAnnotator:
    """Rubric labels from `document_signals` (see the module docstring); documents truncated to `max_chars`."""

    name = "heuristic"
    splittable = True  # pure CPU and picklable: `annotate_sample` may spread batches over an engine's workers

    def __init__(self, max_chars: int = 20_000) -> None:
        self.max_chars = max_chars

    def annotate(self, texts: Sequence[str]) -> np.ndarray:
        """Integer labels [len(texts), 7] (float64) in rubric order."""
        out = np.zeros((len(texts), 7), dtype=np.float64)
        for i, text in enumerate(texts):
            out[i] = rubric_from_signals(document_signals(text[: self.max_chars]))
        return out


__all__ = ["HeuristicAnnotator", "document_signals", "rubric_from_signals"]
