"""On-disk annotation cache: labels keyed by (annotator identity, rubric version, document hash).

One append-only JSONL file per annotator identity under `$MIXLAB_CACHE/annotations/`; each line is
{"doc": sha256 of the text, "labels": [7 numbers]}. Lines are appended and flushed one by one under a lock, so
an interrupted run keeps what it finished; a torn last line is ignored on load.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from mixlab.corpus.tokenizer import cache_dir
from mixlab.samplemix.quality.rubric import RUBRIC_VERSION


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AnnotationCache:
    """Cached labels of one annotator configuration (`identity` names model, endpoint, prompt options)."""

    def __init__(self, identity: str, directory: Path | None = None) -> None:
        key = hashlib.blake2b(f"{identity}\x00{RUBRIC_VERSION}".encode(), digest_size=10).hexdigest()
        self.path = (directory or cache_dir("annotations")) / f"{key}.jsonl"
        self._lock = threading.Lock()
        self._labels: dict[str, list[float]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._labels[row["doc"]] = row["labels"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def get(self, text: str) -> np.ndarray | None:
        labels = self._labels.get(text_hash(text))
        return None if labels is None else np.asarray(labels, dtype=np.float64)

    def put(self, text: str, labels: np.ndarray) -> None:
        doc = text_hash(text)
        values = [float(v) for v in labels]
        with self._lock:
            self._labels[doc] = values
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"doc": doc, "labels": values}) + "\n")

    def __len__(self) -> int:
        return len(self._labels)
