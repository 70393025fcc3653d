"""The Mixture type: named domain proportions on the simplex, and its files.

`mixtures.csv`: `name,<domain1>,<domain2>,...`, one row per mixture. Weights may be any non-negative
numbers with a positive sum; they are normalised. Negative, NaN/inf or all-zero rows are rejected with
BadInput naming the file and row. A single mixture may also be JSON: {"name": ..., "weights": {domain: w}}.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.files import read_json, write_json, write_text


@dataclass(frozen=True)
class Mixture:
    """Proportions per domain, summing to 1 (normalised on construction by `from_weights`)."""

    name: str
    weights: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_weights(
        cls, name: str, weights: Mapping[str, float], where: str = "mixture", **meta: Any
    ) -> Mixture:
        """Validate and normalise; `where` names the source in error messages (file and row)."""
        clean: dict[str, float] = {}
        for domain, w in weights.items():
            try:
                value = float(w)
            except (TypeError, ValueError):
                raise BadInput(f"{where}: weight of '{domain}' is not a number ({w!r})") from None
            if not math.isfinite(value):
                raise BadInput(f"{where}: weight of '{domain}' is {value}")
            if value < 0:
                raise BadInput(f"{where}: weight of '{domain}' is negative ({value})")
            clean[str(domain)] = value
        total = sum(clean.values())
        if not clean or total <= 0:
            raise BadInput(f"{where}: weights are all zero")
        return cls(str(name), {d: v / total for d, v in clean.items()}, dict(meta))

    @property
    def domains(self) -> list[str]:
        return list(self.weights)

    def vector(self, domains: Sequence[str]) -> np.ndarray:
        """Proportions in the order of `domains` (missing domains are 0), shape [len(domains)]."""
        return np.array([self.weights.get(d, 0.0) for d in domains], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "weights": dict(self.weights)}
        if self.meta:
            out["meta"] = self.meta
        return out


def read_mixtures(path: str | os.PathLike[str]) -> list[Mixture]:
    """Read `mixtures.csv` (or a single-mixture JSON file) into a list of Mixtures."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: mixtures file does not exist")
    if path.suffix == ".json":
        return [read_mixture_json(path)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: undecodable bytes (invalid UTF-8 at byte {exc.start})") from None
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise BadInput(f"{path}: empty mixtures file")
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "name" or len(header) < 2:
        raise BadInput(f"{path}: header must be 'name,<domain1>,<domain2>,...' (got {','.join(header)})")
    if len(set(header)) != len(header):
        raise BadInput(f"{path}: duplicate column in header")
    mixtures: list[Mixture] = []
    names: set[str] = set()
    for lineno, row in enumerate(rows[1:], start=2):
        where = f"{path}: row {lineno}"
        if len(row) != len(header):
            raise BadInput(f"{where}: {len(row)} fields, header has {len(header)}")
        name = row[0].strip()
        if not name:
            raise BadInput(f"{where}: empty name")
        if name in names:
            raise BadInput(f"{where}: duplicate mixture name '{name}'")
        names.add(name)
        weights = {}
        for domain, cell in zip(header[1:], row[1:], strict=True):
            try:
                weights[domain] = float(cell) if cell.strip() else 0.0
            except ValueError:
                raise BadInput(f"{where}: field '{domain}' is not a number ({cell!r})") from None
        mixtures.append(Mixture.from_weights(name, weights, where=where))
    if not mixtures:
        raise BadInput(f"{path}: no mixtures (only a header)")
    return mixtures


def write_mixtures(
    path: str | os.PathLike[str], mixtures: Sequence[Mixture], domains: Sequence[str] | None = None
) -> None:
    """Write `mixtures.csv` atomically; columns follow `domains` (default: first-seen order)."""
    if domains is None:
        domains = list(dict.fromkeys(d for m in mixtures for d in m.weights))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", *domains])
    for m in mixtures:
        writer.writerow([m.name, *(f"{m.weights.get(d, 0.0):.10g}" for d in domains)])
    write_text(path, buf.getvalue())


def read_mixture_json(path: str | os.PathLike[str]) -> Mixture:
    """Read one mixture from JSON: {"name": ..., "weights": {domain: w}, "meta": {...}?}."""
    path = Path(path)
    obj = read_json(path, "mixture")
    if not isinstance(obj, dict) or not isinstance(obj.get("weights"), dict):
        raise BadInput(f'{path}: expected {{"name": ..., "weights": {{domain: weight}}}}')
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise BadInput(f"{path}: field 'meta' must be a JSON object, got {json.dumps(meta)[:40]}")
    mixture = Mixture.from_weights(obj.get("name", path.stem), obj["weights"], where=str(path))
    return replace(mixture, meta=dict(meta))


def write_mixture_json(path: str | os.PathLike[str], mixture: Mixture) -> None:
    write_json(path, mixture.to_dict())


EXPORT_FORMATS = ("megatron", "olmix", "doremi", "hf", "yaml")


def export_mixture(mixture: Mixture, fmt: str, paths: Mapping[str, str] | None = None) -> str:
    """A mixture in a trainer's format, as text (domains in the mixture's order, zero weights dropped).

    megatron: Megatron-LM / NeMo `--data-path` blend `w1 path1 w2 path2 ...` (paths default to domain names)
    olmix:    JSON `{"name", "mix": {domain: {"weight", "repetition_factor", "paths"?}}}`
    doremi:   JSON `{"train_domain_weights": {domain: w}}`
    hf:       JSON `{"datasets": [...], "probabilities": [...]}` for `datasets.interleave_datasets`
    yaml:     `name:` and `weights:` mapping
    `paths` maps domain → data path/prefix; a domain without one keeps its name.
    """
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(mixture.weights))
    if unknown:
        raise BadInput(f"`paths`: domain '{unknown[0]}' is not in mixture '{mixture.name}'")
    weights = {d: float(f"{w:.12g}") for d, w in mixture.weights.items() if w > 0}
    if fmt == "megatron":
        return " ".join(f"{w:.10g} {paths.get(d, d)}" for d, w in weights.items()) + "\n"
    if fmt == "doremi":
        return json.dumps({"train_domain_weights": weights}, indent=2) + "\n"
    if fmt == "olmix":
        mix = {}
        for d, w in weights.items():
            entry: dict[str, Any] = {
                "weight": w,
                "repetition_factor": float(mixture.meta.get("epochs", {}).get(d, 1.0)),
            }
            if d in paths:
                entry["paths"] = [paths[d]]
            mix[d] = entry
        return json.dumps({"name": mixture.name, "mix": mix}, indent=2) + "\n"
    if fmt == "hf":
        return (
            json.dumps(
                {"datasets": [paths.get(d, d) for d in weights], "probabilities": list(weights.values())},
                indent=2,
            )
            + "\n"
        )
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump({"name": mixture.name, "weights": weights}, sort_keys=False)
    raise BadInput(f"unknown export format '{fmt}' (choose from {', '.join(EXPORT_FORMATS)})")
