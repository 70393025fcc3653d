"""A mixture in a trainer's or a loader's format, as text: the one dispatch over the export formats.

megatron: Megatron-LM / NeMo `--data-path` blend `w1 prefix1 w2 prefix2 ...` (`exports.megatron`)
olmix:    olmix launch-config YAML, `data.sources[].paths` and `mix` (`exports.olmix`)
doremi:   JSON `{"train_domain_weights": {domain: w}}`
hf:       JSON arguments of `datasets.interleave_datasets`: document probabilities (`exports.hf`)
yaml:     `name:` and `weights:` mapping
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixlab.errors import BadInput
from mixlab.mixture import Mixture, export_doremi, export_yaml

EXPORT_FORMATS = ("megatron", "olmix", "doremi", "hf", "yaml")
NEEDS_PATHS = ("megatron", "olmix")


def export_mixture(
    mixture: Mixture,
    fmt: str,
    paths: Mapping[str, str | Sequence[str]] | None = None,
    *,
    mean_tokens: Mapping[str, float] | None = None,
    token_counts: Mapping[str, int] | None = None,
    base: Mapping[str, Any] | None = None,
) -> str:
    """`mixture` as `fmt` text. megatron/olmix need `paths` for every domain with a positive weight; hf needs
    each domain's `mean_tokens` per document (`exports.hf.read_mean_tokens`); megatron splits a domain over
    its prefixes by `token_counts` or their `.idx` files; olmix keeps `base`'s other launch-config sections."""
    if fmt not in EXPORT_FORMATS:
        raise BadInput(f"unknown export format '{fmt}' (choose from {', '.join(EXPORT_FORMATS)})")
    if fmt in NEEDS_PATHS and paths is None:
        raise BadInput(f"`paths`: the {fmt} export needs the data path(s) of every domain")
    if fmt == "megatron":
        from mixlab.exports.megatron import export_megatron

        return export_megatron(mixture, paths or {}, token_counts)
    if fmt == "olmix":
        from mixlab.exports.olmix import export_olmix

        return export_olmix(mixture, paths or {}, base)
    if fmt == "hf":
        from mixlab.exports.hf import export_hf

        if mean_tokens is None:
            raise BadInput(
                "`mean_tokens`: the hf export needs each domain's mean tokens per document "
                "(interleave_datasets samples documents, the mixture holds token shares)"
            )
        return export_hf(mixture, mean_tokens, paths)  # type: ignore[arg-type]
    if paths:
        raise BadInput(f"`paths`: the {fmt} export takes no paths")
    return export_doremi(mixture) if fmt == "doremi" else export_yaml(mixture)
