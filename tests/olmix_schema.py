"""Test oracle: olmix's launch-config models, written from olmix's source (allenai/olmix, olmix/aliases.py,
LaunchConfig/DataConfig/SourceConfig/TopicConfig/QualityConfig/MixEntry and the mix flattening validator).

olmix itself is not installable here: it is not on PyPI and pins `ai2-olmo-core` to a git branch
(`@add-inloop-evals`), so these pydantic models stand in for `olmix.aliases` in the tests. Nothing here is
imported by mixlab.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


class QualityConfig(BaseModel):
    name: str
    paths: list[str]
    weight: float | None = None
    max_repetition_factor: float = 1.0


class TopicConfig(BaseModel):
    name: str
    paths: list[str] | None = None
    quality: list[QualityConfig] | None = None
    max_repetition_factor: float = 1.0
    max_topic_ratio: float = 1.0
    weight: float | None = None

    def model_post_init(self, __context: Any) -> None:
        if (self.paths is None) == (self.quality is None):
            raise ValueError("TopicConfig must have exactly one of 'paths' or 'quality'")


class SourceConfig(BaseModel):
    name: str
    paths: list[str] | None = None
    topics: list[TopicConfig] | None = None
    quality: list[QualityConfig] | None = None
    max_repetition_factor: float = 1.0

    def model_post_init(self, __context: Any) -> None:
        if sum(x is not None for x in (self.paths, self.topics, self.quality)) != 1:
            raise ValueError("SourceConfig must have exactly one of 'paths', 'topics', or 'quality'")


class DataConfig(BaseModel):
    sources: list[SourceConfig]
    dtype: str = "uint32"


class MixEntry(BaseModel):
    weight: float
    repetition_factor: float


class LaunchData(BaseModel):
    """The `data` + `mix` part of olmix's LaunchConfig (infra/training/eval are the user's own sections)."""

    name: str
    data: DataConfig
    mix: dict[str, MixEntry] | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten_mix(cls, values: Any) -> Any:
        # olmix: at each node `weight`/`repetition_factor` are properties, any other key is a child; leaf
        # weight = product down the path; repetition inherited from the nearest ancestor; scalar = weight
        mix = values.get("mix") if isinstance(values, dict) else None
        if not isinstance(mix, dict):
            return values
        flat: dict[str, dict[str, float]] = {}

        def walk(prefix: str, node: Any, weight: float, rep: float | None) -> None:
            if not isinstance(node, dict):
                flat[prefix] = {"weight": weight * float(node), "repetition_factor": rep}
                return
            w = weight * float(node.get("weight", 1.0))
            r = node.get("repetition_factor", rep)
            children = {k: v for k, v in node.items() if k not in ("weight", "repetition_factor")}
            if not children:
                flat[prefix] = {"weight": w, "repetition_factor": r}
            for k, v in children.items():
                walk(f"{prefix}:{k}", v, w, r)

        for key, node in mix.items():
            walk(key, node, 1.0, None)
        return {**values, "mix": flat}

    def source_keys(self) -> set[str]:
        """The mix keys the data sources define (launch/utils.mk_source_instances joins with ':')."""
        keys = set()
        for s in self.data.sources:
            if s.paths is not None:
                keys.add(s.name)
            for t in s.topics or []:
                keys.add(f"{s.name}:{t.name}")
        return keys
