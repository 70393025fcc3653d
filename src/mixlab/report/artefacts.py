"""Find and load the artefacts of a mixlab run directory for the report.

Files are recognised by their contract names (DESIGN.md) and, for JSON, by their content, so the report works on
one stage's output as well as on a whole `mixlab demo` directory. A file that claims a contract name but breaks the
contract raises BadInput naming the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mixlab.errors import BadInput
from mixlab.files import read_json
from mixlab.laws.observations import read_runs
from mixlab.mixture import Mixture, read_mixture_json, read_mixtures


@dataclass
class Artefacts:
    """Everything the report can show, each entry tagged with the file it came from."""

    corpus_stats: list[tuple[Path, dict]] = field(default_factory=list)
    entropy: list[tuple[Path, dict]] = field(default_factory=list)
    mixtures: list[tuple[Path, list[Mixture]]] = field(default_factory=list)
    single_mixtures: list[tuple[Path, Mixture]] = field(default_factory=list)
    runs: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    laws: list[tuple[Path, dict]] = field(default_factory=list)
    metrics: list[tuple[Path, dict]] = field(default_factory=list)
    law_comparisons: list[tuple[Path, dict]] = field(default_factory=list)
    scores: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    samples: list[tuple[Path, dict]] = field(default_factory=list)
    comparisons: list[tuple[Path, dict]] = field(default_factory=list)

    def empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)


def _is_sample_summary(path: Path, obj: dict) -> bool:
    return path.name == "summary.json" and any("budget" in k for k in obj)


def _classify_json(path: Path, obj: Any, found: Artefacts) -> None:
    if not isinstance(obj, dict):
        return
    if "comparison" in obj:
        if not isinstance(obj["comparison"], dict) or "methods" not in obj["comparison"]:
            raise BadInput(f"{path}: field 'comparison' must hold 'methods'")
        found.comparisons.append((path, obj))
    elif isinstance(obj.get("ranking"), list) and "recommended" in obj:
        for i, row in enumerate(obj["ranking"]):
            if not isinstance(row, dict) or "law" not in row:
                raise BadInput(f"{path}: field 'ranking' row {i} must be an object with 'law'")
        found.law_comparisons.append((path, obj))
    elif "law" in obj and "protocol" in obj:
        applicable = obj.get("applicable", True)
        if applicable and (
            not isinstance(obj.get("summary"), dict) or not isinstance(obj.get("domains"), dict)
        ):
            raise BadInput(f"{path}: metrics need 'domains' and 'summary' objects")
        found.metrics.append((path, obj))
    elif isinstance(obj.get("weights"), dict):
        found.single_mixtures.append((path, read_mixture_json(path)))
    elif path.name == "entropy.json":
        found.entropy.append((path, obj))
    elif isinstance(obj.get("domains"), dict) and isinstance(obj.get("total"), dict):
        found.corpus_stats.append((path, obj))
    elif _is_sample_summary(path, obj):
        found.samples.append((path, obj))
    elif "law" in obj and path.name.endswith("law.json"):
        found.laws.append((path, obj))


def _files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                # hidden entries are atomic-write temporaries, *.work/ are a verb's resumable intermediates and
                # data/ holds sampled documents: none of them is an artefact
                if (
                    f.is_file()
                    and not any(part.startswith(".") or part.endswith(".work") for part in rel)
                    and "data" not in rel[:-1]
                ):
                    files.append(f)
        else:
            raise BadInput(f"{p}: no such file or directory")
    return files


def collect(paths: Iterable[str | os.PathLike[str]]) -> Artefacts:
    """Walk the given directories (or files) and load every artefact the report knows."""
    found = Artefacts()
    for f in _files(paths):
        name = f.name
        if name in ("runs.csv", "runs.parquet"):
            found.runs.append((f, read_runs(f)))
        elif name.endswith(".csv") and name.startswith("mixtures"):
            found.mixtures.append((f, read_mixtures(f)))
        elif name == "scores.parquet":
            df = pd.read_parquet(f)
            if "domain" not in df.columns:
                raise BadInput(f"{f}: missing column 'domain'")
            found.scores.append((f, df))
        elif name.endswith(".json"):
            _classify_json(f, read_json(f), found)
    return found
