"""Megatron-LM / NeMo `--data-path` blends: `w1 prefix1 w2 prefix2 ...` over indexed-dataset prefixes.

A domain maps to one prefix, a list of prefixes, or a glob over `PREFIX.idx` files (real domains are many
`*_text_document` shards). A domain's weight is split over its prefixes by their tokens, read from each
`.idx` header or given as counts. Megatron splits `--data-path` on whitespace, so a path holding any is
refused, as is a mixture domain that `paths` does not map.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mixlab.errors import BadInput
from mixlab.mixture import Mixture

IDX_MAGIC = b"MMIDIDX\x00\x00"
IDX_DTYPE_CODES = {1, 2, 3, 4, 5, 6, 7, 8}  # uint8 int8 int16 int32 int64 float64 float32 uint16
_HEADER = np.dtype(
    [("magic", "S9"), ("version", "<u8"), ("dtype", "u1"), ("sequences", "<u8"), ("documents", "<u8")]
)
_GLOB_CHARS = re.compile(r"[*?\[]")


def idx_token_count(prefix: str | os.PathLike[str]) -> int:
    """Tokens in a Megatron indexed dataset: the sum of its int32 sequence lengths in `PREFIX.idx`."""
    path = Path(f"{prefix}.idx")
    if not path.is_file():
        raise BadInput(f"{path}: index file does not exist")
    raw = path.read_bytes()
    if len(raw) < _HEADER.itemsize or raw[:9] != IDX_MAGIC:
        raise BadInput(f"{path}: not a Megatron MMIDIDX index (bad magic)")
    header = np.frombuffer(raw, _HEADER, count=1)[0]
    if int(header["version"]) != 1 or int(header["dtype"]) not in IDX_DTYPE_CODES:
        raise BadInput(
            f"{path}: unsupported index version {header['version']} or dtype code {header['dtype']}"
        )
    n = int(header["sequences"])
    end = _HEADER.itemsize + 4 * n
    if len(raw) < end + 8 * n + 8 * int(header["documents"]):
        raise BadInput(f"{path}: truncated ({len(raw)} bytes for {n} sequences)")
    return int(np.frombuffer(raw, "<i4", count=n, offset=_HEADER.itemsize).sum(dtype=np.int64))


def expand_prefixes(domain: str, spec: str | Sequence[str]) -> list[str]:
    """The prefixes of one domain: a prefix, a list of them, or globs matched against `*.idx` files."""
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items or not all(isinstance(s, str) and s for s in items):
        raise BadInput(f"`paths`: domain '{domain}' needs a prefix, a list of prefixes or a glob")
    prefixes: list[str] = []
    for item in items:
        if _GLOB_CHARS.search(item):
            pattern = item if item.endswith(".idx") else f"{item}.idx"
            found = sorted(m[: -len(".idx")] for m in glob.glob(pattern))
            if not found:
                raise BadInput(f"`paths`: glob '{item}' of domain '{domain}' matches no .idx file")
            prefixes += found
        else:
            prefixes.append(item)
    for p in prefixes:
        if any(c.isspace() for c in p):
            raise BadInput(
                f"`paths`: prefix {p!r} of domain '{domain}' holds whitespace (Megatron splits on it)"
            )
    dup = [p for p in set(prefixes) if prefixes.count(p) > 1]
    if dup:
        raise BadInput(f"`paths`: prefix '{dup[0]}' is given twice for domain '{domain}'")
    return prefixes


def megatron_blend(
    mixture: Mixture,
    paths: Mapping[str, str | Sequence[str]],
    token_counts: Mapping[str, int] | None = None,
) -> list[str]:
    """`[w1, prefix1, w2, prefix2, ...]` as strings (what `get_blend_from_list` parses); weights sum to 1.

    A domain with several prefixes shares its weight by tokens: `token_counts[prefix]` if given, else the
    prefix's `.idx` header. Zero-weight domains are dropped."""
    unknown = sorted(set(paths) - set(mixture.weights))
    if unknown:
        raise BadInput(f"`paths`: domain '{unknown[0]}' is not in mixture '{mixture.name}'")
    counts = dict(token_counts or {})
    out: list[str] = []
    seen: dict[str, str] = {}
    for domain, w in mixture.weights.items():
        if w <= 0:
            continue
        if domain not in paths:
            raise BadInput(f"`paths`: domain '{domain}' of mixture '{mixture.name}' has no prefix")
        prefixes = expand_prefixes(domain, paths[domain])
        for p in prefixes:
            if p in seen:
                raise BadInput(f"`paths`: prefix '{p}' is given for both '{seen[p]}' and '{domain}'")
            seen[p] = domain
        if len(prefixes) == 1:
            shares = np.array([1.0])
        else:
            tokens = np.array(
                [counts[p] if p in counts else idx_token_count(p) for p in prefixes], dtype=float
            )
            if not np.all(np.isfinite(tokens)) or np.any(tokens < 0) or tokens.sum() <= 0:
                raise BadInput(f"`token_counts`: prefixes of domain '{domain}' have no tokens")
            shares = tokens / tokens.sum()
        out += [x for p, s in zip(prefixes, shares, strict=True) if s > 0 for x in (f"{w * s:.12g}", p)]
    return out


def export_megatron(
    mixture: Mixture, paths: Mapping[str, str | Sequence[str]], token_counts: Mapping[str, int] | None = None
) -> str:
    return " ".join(megatron_blend(mixture, paths, token_counts)) + "\n"
