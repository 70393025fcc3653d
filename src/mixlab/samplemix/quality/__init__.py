"""SampleMix quality: the rubric, annotators that label documents with it, and the scorer trained on them.

Annotators share one interface, `annotate(texts) -> float64 [n, 7]` (scores in the rubric's ranges, rubric
order): `heuristic` (rules, an approximation), `local` (a small causal LM loaded offline, expected scores
from the probabilities of the score tokens) and `llm` (any OpenAI-compatible chat endpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixlab.errors import BadInput
from mixlab.samplemix.quality.heuristic import HeuristicAnnotator
from mixlab.samplemix.quality.rubric import (
    COLUMNS,
    DIMENSIONS,
    MAX_SCORES,
    MAX_TOTAL,
    RUBRIC,
    RUBRIC_VERSION,
    rubric_table,
    validate_labels,
)
from mixlab.samplemix.quality.scorer import (
    ClassificationHead,
    OrdinalHead,
    QualityScorer,
    compare_heads,
    ordinal_metrics,
)


def _local_annotator(**options: Any):
    from mixlab.samplemix.quality.local import LocalLMAnnotator  # loads torch: only when asked for

    return LocalLMAnnotator(**options)


def _llm_annotator(**options: Any):
    from mixlab.samplemix.quality.llm import LLMAnnotator

    return LLMAnnotator(**options)


ANNOTATORS: dict[str, Callable[..., Any]] = {
    "heuristic": HeuristicAnnotator,
    "local": _local_annotator,
    "llm": _llm_annotator,
}
DEFAULT_ANNOTATE_N = {"heuristic": 2000, "local": 200, "llm": 1000}


def get_annotator(name: str, **options: Any):
    """An annotator by name (`ANNOTATORS`); `options` go to its constructor (e.g. url=, model= for `llm`)."""
    factory = ANNOTATORS.get(name)
    if factory is None:
        raise BadInput(f"`quality` {name}: unknown annotator (expected one of {', '.join(ANNOTATORS)})")
    return factory(**options)


__all__ = [
    "ANNOTATORS",
    "COLUMNS",
    "DEFAULT_ANNOTATE_N",
    "DIMENSIONS",
    "MAX_SCORES",
    "MAX_TOTAL",
    "RUBRIC",
    "RUBRIC_VERSION",
    "ClassificationHead",
    "HeuristicAnnotator",
    "OrdinalHead",
    "QualityScorer",
    "compare_heads",
    "get_annotator",
    "ordinal_metrics",
    "rubric_table",
    "validate_labels",
]
