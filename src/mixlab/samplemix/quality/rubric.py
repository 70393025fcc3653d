"""The SampleMix quality rubric as data: seven dimensions, their definitions and allowed scores (versioned).

The dimension names and score ranges are the paper's (Xi et al. 2025, Table 1); the one-line definitions are
ours, written for the annotators' prompts. Bump `RUBRIC_VERSION` whenever a definition or range changes:
annotation caches are keyed by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mixlab.errors import BadInput

RUBRIC_VERSION = "samplemix-rubric-1"


@dataclass(frozen=True)
class Dimension:
    """One rubric dimension: short `key` (column `q_<key>`), the paper's `title`, a definition, max score."""

    key: str
    title: str
    definition: str
    max_score: int

    @property
    def scores(self) -> tuple[int, ...]:
        """Allowed integer scores, 0..max_score."""
        return tuple(range(self.max_score + 1))

    @property
    def column(self) -> str:
        return f"q_{self.key}"


RUBRIC: tuple[Dimension, ...] = (
    Dimension(
        "clarity",
        "Clarity of Expression and Accuracy",
        "The text is clearly written, grammatical and precise, without garbled, spammy or broken language.",
        1,
    ),
    Dimension(
        "coherence",
        "Completeness and Coherence",
        "The text is complete and hangs together: sentences and parts follow from each other on one subject.",
        1,
    ),
    Dimension(
        "structure",
        "Structure and Style",
        "The text is well organised (paragraphs, sections, lists or code layout) in a consistent, fitting style.",
        1,
    ),
    Dimension(
        "credibility",
        "Content Accuracy and Credibility",
        "The content is factually correct and trustworthy, not misleading, manipulative or promotional.",
        1,
    ),
    Dimension(
        "significance",
        "Significance",
        "The content matters: it is useful, informative or important to many readers, not trivial chatter.",
        1,
    ),
    Dimension(
        "knowledge",
        "Knowledge Richness",
        "The amount of knowledge the text carries: 0 none, 1 some facts or explanations, 2 dense, rich knowledge.",
        2,
    ),
    Dimension(
        "logic",
        "Logicality and Analytical Depth",
        "The depth of reasoning: 0 none, 1 simple reasoning or explanation, 2 careful multi-step analysis.",
        2,
    ),
)
DIMENSIONS: tuple[str, ...] = tuple(d.key for d in RUBRIC)
COLUMNS: tuple[str, ...] = tuple(d.column for d in RUBRIC)
MAX_SCORES = np.array([d.max_score for d in RUBRIC], dtype=np.int64)
MAX_TOTAL = int(MAX_SCORES.sum())  # 9: the overall label is the sum of the dimensions, 0..9


def rubric_table() -> list[dict[str, object]]:
    """The rubric as JSON-ready rows (for prompts, reports and `mixlab score --help`)."""
    return [
        {"key": d.key, "title": d.title, "definition": d.definition, "scores": list(d.scores)} for d in RUBRIC
    ]


def validate_labels(labels: Mapping[str, object], where: str) -> np.ndarray:
    """Check one annotation {dimension key or title: integer score} against the rubric.

    Returns int64 [7] in rubric order; raises BadInput naming `where` and the offending field.
    """
    by_name = {d.key: d for d in RUBRIC} | {d.title.lower(): d for d in RUBRIC}
    out = np.full(len(RUBRIC), -1, dtype=np.int64)
    for name, value in labels.items():
        dim = by_name.get(str(name).strip().lower())
        if dim is None:
            raise BadInput(f"{where}: unknown rubric dimension '{name}' (expected {', '.join(DIMENSIONS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise BadInput(f"{where}: '{dim.key}' must be an integer score, got {value!r}")
        if int(value) not in dim.scores:
            raise BadInput(
                f"{where}: '{dim.key}' = {int(value)} is outside the allowed scores {list(dim.scores)}"
            )
        out[DIMENSIONS.index(dim.key)] = int(value)
    missing = [DIMENSIONS[i] for i in np.flatnonzero(out < 0)]
    if missing:
        raise BadInput(f"{where}: missing rubric dimension(s) {', '.join(missing)}")
    return out


__all__ = [
    "COLUMNS",
    "DIMENSIONS",
    "MAX_SCORES",
    "MAX_TOTAL",
    "RUBRIC",
    "RUBRIC_VERSION",
    "Dimension",
    "rubric_table",
    "validate_labels",
]
