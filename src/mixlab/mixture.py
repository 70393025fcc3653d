"""The Mixture type: named domain proportions on the simplex, and its files.

`mixtures.csv`: `name,<domain1>,<domain2>,...`, one row per mixture. Weights may be any non-negative
numbers with a positive sum; they are normalised. Negative, NaN/inf or all-zero rows are rejected with
BadInput naming the file and row. A single mixture may also be JSON: {"name": ..., "weights": {domain: w}}.

Wherever ONE mixture is read (`export`, `sample --target-mixture`, `sweep`, `doremi --reference`, `optimize
--reference`), `read_mixture_ref` takes a spec: a file, or `FILE.csv:ROW` to pick row ROW (by name):
- `.json`: mixlab `{"name", "weights"}`, olmix `*_optimal.json` `[{"domain", "weight"}]`, DoReMi
  `{"train_domain_weights"}`, or mixlab's hf export (its `token_weights`);
- `.yaml`/`.yml`: mixlab's yaml export (`name`, `weights`) or an olmix launch config (its `mix`);
- `.csv`: a mixtures CSV of one row, or of any number with `:ROW`.
A CSV of several rows without `:ROW` is an error listing the row names: there is no silent first row.
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
    return mixture_from_json_object(read_json(path, "mixture"), str(path), path.stem)


def mixture_from_json_object(obj: Any, where: str, default_name: str) -> Mixture:
    """mixlab's mixture JSON object {"name": ..., "weights": {domain: w}, "meta": {...}?}."""
    if not isinstance(obj, dict) or not isinstance(obj.get("weights"), dict):
        raise BadInput(f'{where}: expected {{"name": ..., "weights": {{domain: weight}}}}')
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise BadInput(f"{where}: field 'meta' must be a JSON object, got {json.dumps(meta)[:40]}")
    mixture = Mixture.from_weights(obj.get("name", default_name), obj["weights"], where=where)
    return replace(mixture, meta=dict(meta))


def write_mixture_json(path: str | os.PathLike[str], mixture: Mixture) -> None:
    write_json(path, mixture.to_dict())


YAML_SUFFIXES = (".yaml", ".yml")


def split_row(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """`FILE.csv:ROW` → (FILE.csv, ROW); an existing file (even one with ':' in its name) → (file, None)."""
    text = os.fspath(spec)
    path = Path(text)
    if path.is_file() or ":" not in text:
        return path, None
    head, row = text.rsplit(":", 1)
    if not head.endswith(".csv"):
        return path, None
    if not row:
        raise BadInput(f"{text}: empty row name after ':'")
    return Path(head), row


def read_mixture_ref(spec: str | os.PathLike[str], what: str = "mixture") -> Mixture:
    """The single mixture `spec` names (see the module doc); BadInput names the file and what is wrong."""
    path, row = split_row(spec)
    if not path.is_file():
        raise BadInput(f"{path}: {what} file does not exist")
    suffix = path.suffix.lower()
    if row is not None or suffix == ".csv":
        mixtures = read_mixtures(path)
        names = [m.name for m in mixtures]
        if row is not None:
            if row not in names:
                raise BadInput(f"{path}: no row named '{row}' (rows: {', '.join(names)})")
            return mixtures[names.index(row)]
        if len(mixtures) > 1:
            raise BadInput(
                f"{path}: {len(mixtures)} mixtures; pick one as {path}:ROW (rows: {', '.join(names)})"
            )
        return mixtures[0]
    if suffix == ".json":
        return mixture_from_object(read_json(path, what), str(path), path.stem)
    if suffix in YAML_SUFFIXES:
        import yaml

        try:
            obj = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return mixture_from_object(obj, str(path), path.stem)
    raise BadInput(f"{path}: unknown {what} file type '{suffix}' (use .json, .yaml, .csv or FILE.csv:ROW)")


def read_mixture_set(spec: str | os.PathLike[str]) -> list[Mixture]:
    """Every row of a mixtures CSV, else the one mixture `read_mixture_ref` reads (`FILE.csv:ROW`, JSON, YAML)."""
    path, row = split_row(spec)
    if row is None and path.suffix.lower() == ".csv":
        return read_mixtures(path)
    return [read_mixture_ref(spec)]


def flatten_olmix_mix(mix: Mapping[str, Any], where: str) -> dict[str, float]:
    """Leaf weights of an olmix `mix` (nested nodes multiply weights down the path, keys joined with ':')."""
    out: dict[str, float] = {}

    def walk(prefix: str, node: Any, scale: float) -> None:
        if not isinstance(node, Mapping):
            out[prefix] = scale * _number(node, where, prefix)
            return
        weight = scale * _number(node.get("weight", 1.0), where, prefix)
        children = {k: v for k, v in node.items() if k not in ("weight", "repetition_factor")}
        if not children:
            out[prefix] = weight
        for key, child in children.items():
            walk(f"{prefix}:{key}", child, weight)

    for key, node in mix.items():
        walk(str(key), node, 1.0)
    return out


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{where}: mix entry '{key}' has a weight that is not a number ({value!r})")
    return float(value)


def olmix_optimal_mixture(obj: Any, where: str, name: str) -> Mixture:
    if (
        not isinstance(obj, list)
        or not obj
        or not all(isinstance(e, dict) and set(e) == {"domain", "weight"} for e in obj)
    ):
        raise BadInput(f'{where}: expected olmix optimal weights [{{"domain": ..., "weight": ...}}, ...]')
    domains = [str(e["domain"]) for e in obj]
    if len(set(domains)) != len(domains):
        raise BadInput(f"{where}: domain '{next(d for d in domains if domains.count(d) > 1)}' appears twice")
    return Mixture.from_weights(name, {str(e["domain"]): e["weight"] for e in obj}, where=where)


def mixture_from_object(obj: Any, where: str, default_name: str) -> Mixture:
    """A parsed JSON/YAML document in any of the single-mixture shapes of the module doc."""
    if isinstance(obj, list):
        return olmix_optimal_mixture(obj, where, default_name.removesuffix("_optimal") or default_name)
    if not isinstance(obj, Mapping):
        raise BadInput(f"{where}: not a mixture (expected an object or an olmix optimal list)")
    name = str(obj.get("name", default_name))
    shapes = [
        k
        for k in ("weights", "mix", "train_domain_weights", "token_weights")
        if isinstance(obj.get(k), Mapping)
    ]
    if len(shapes) != 1:
        raise BadInput(
            f"{where}: expected exactly one of 'weights' (mixlab), 'mix' (olmix), 'train_domain_weights' "
            f"(DoReMi) or 'token_weights' (hf export); found {', '.join(shapes) or 'none'}"
        )
    key = shapes[0]
    if key == "weights":
        return mixture_from_json_object(dict(obj), where, default_name)
    if key == "mix":
        mixture = Mixture.from_weights(name, flatten_olmix_mix(obj["mix"], where), where=where)
        epochs = {
            d: float(e["repetition_factor"])
            for d, e in obj["mix"].items()
            if isinstance(e, Mapping) and "repetition_factor" in e
        }
        return replace(mixture, meta={"epochs": epochs})
    return Mixture.from_weights(name, obj[key], where=where)


def export_doremi(mixture: Mixture) -> str:
    """DoReMi's `{"train_domain_weights": {domain: w}}` (zero weights dropped)."""
    return json.dumps({"train_domain_weights": positive_weights(mixture)}, indent=2) + "\n"


def export_yaml(mixture: Mixture) -> str:
    """`name:` and a `weights:` mapping (zero weights dropped)."""
    import yaml

    return yaml.safe_dump({"name": mixture.name, "weights": positive_weights(mixture)}, sort_keys=False)


def positive_weights(mixture: Mixture) -> dict[str, float]:
    return {d: float(f"{w:.12g}") for d, w in mixture.weights.items() if w > 0}
