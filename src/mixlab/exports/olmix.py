"""olmix hand-offs: the launch-config `data`/`mix` shape olmix reads, and its fit output `*_optimal.json`.

olmix keeps data locations in `data.sources[]` (a source has exactly one of `paths`, `topics`, `quality`;
a topic has `paths`) and the mixture in `mix`, keyed `source` or `source:topic`, each entry
`{weight, repetition_factor}`. A mixlab domain `src:topic` becomes topic `topic` of source `src`. Fit output
`{prefix}_optimal.json` is a bare list `[{"domain": d, "weight": w}, ...]`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixlab.errors import BadInput
from mixlab.files import read_json, write_text
from mixlab.mixture import Mixture, olmix_optimal_mixture


def _split(domain: str) -> tuple[str, str | None]:
    parts = domain.split(":")
    if len(parts) > 2 or not all(parts):
        raise BadInput(f"`paths`: domain '{domain}' must be 'source' or 'source:topic' for olmix")
    return parts[0], parts[1] if len(parts) == 2 else None


def olmix_launch_fragment(
    mixture: Mixture, paths: Mapping[str, str | Sequence[str]], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`base` (a launch config's other sections, optional) with `data.sources` and `mix` from the mixture.

    Every domain with a positive weight needs paths; `repetition_factor` comes from `meta["epochs"]` (1.0)."""
    unknown = sorted(set(paths) - set(mixture.weights))
    if unknown:
        raise BadInput(f"`paths`: domain '{unknown[0]}' is not in mixture '{mixture.name}'")
    epochs = mixture.meta.get("epochs", {})
    sources: dict[str, dict[str, Any]] = {}
    mix: dict[str, dict[str, float]] = {}
    for domain, w in mixture.weights.items():
        if w <= 0:
            continue
        if domain not in paths:
            raise BadInput(f"`paths`: domain '{domain}' of mixture '{mixture.name}' has no paths")
        listed = [paths[domain]] if isinstance(paths[domain], str) else [str(p) for p in paths[domain]]
        if not listed:
            raise BadInput(f"`paths`: domain '{domain}' has an empty path list")
        source, topic = _split(domain)
        entry = sources.setdefault(source, {"name": source})
        if topic is None:
            if "topics" in entry:
                raise BadInput(f"`paths`: '{source}' is both a source with paths and a source with topics")
            entry["paths"] = listed
        else:
            if "paths" in entry:
                raise BadInput(f"`paths`: '{source}' is both a source with paths and a source with topics")
            entry.setdefault("topics", []).append({"name": topic, "paths": listed})
        mix[domain] = {"weight": float(f"{w:.12g}"), "repetition_factor": float(epochs.get(domain, 1.0))}
    config = {k: v for k, v in dict(base or {}).items() if k not in ("mix",)}
    data = dict(config.get("data") or {})
    data["sources"] = list(sources.values())
    config.setdefault("name", mixture.name)
    config["data"] = data
    config["mix"] = mix
    return config


def export_olmix(
    mixture: Mixture, paths: Mapping[str, str | Sequence[str]], base: Mapping[str, Any] | None = None
) -> str:
    """The launch config as YAML (olmix reads launch configs with `yaml.safe_load`)."""
    import yaml

    return yaml.safe_dump(olmix_launch_fragment(mixture, paths, base), sort_keys=False)


def write_olmix_optimal(path: str | os.PathLike[str], mixture: Mixture) -> None:
    """olmix's `{prefix}_optimal.json`: `[{"domain", "weight"}]`, zero weights kept (olmix writes every domain)."""
    write_text(path, json.dumps([{"domain": d, "weight": w} for d, w in mixture.weights.items()]) + "\n")


def read_olmix_optimal(path: str | os.PathLike[str]) -> Mixture:
    path = Path(path)
    name = path.stem.removesuffix("_optimal") or path.stem
    return olmix_optimal_mixture(read_json(path, "olmix optimal weights"), str(path), name)
