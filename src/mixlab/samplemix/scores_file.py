"""scores.parquet, the output of `mixlab score` and the input of `mixlab sample`: its one definition,
reader (`read_scores`) and writer (`write_scores`).

One row per document, in shard order, columns `SCORE_COLUMNS`; the schema metadata key `mixlab.shards`
holds the shard layout (domain, shard name, documents per shard) that `sample` checks against the corpus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.corpus import Shard
from mixlab.errors import BadInput
from mixlab.files import atomic_path
from mixlab.samplemix.diversity import ClusterDiversity
from mixlab.samplemix.quality import COLUMNS
from mixlab.samplemix.sampler import MAX_TOKENS, sampling_weights

SCORE_COLUMNS = (
    "doc_id",
    "domain",
    "tokens",
    "quality",
    *COLUMNS,
    "cluster",
    "compactness",
    "separation",
    "diversity",
    "weight",
)
SHARDS_METADATA_KEY = b"mixlab.shards"


def read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """One parquet file as a table. (Not `pq.read_table`: its first call imports pyarrow.dataset, 0.2 s in
    every worker process.)"""
    with pq.ParquetFile(path) as file:
        return file.read(columns=columns)


def write_scores(
    out: Path,
    parts: Sequence[Path],
    shards: Sequence[Shard],
    sizes: Sequence[int],
    diversity: ClusterDiversity,
    alpha: float,
    normalisation: str,
) -> dict[str, Any]:
    """Stream the per-shard scores (`parts`, one parquet file per shard of `shards`, `sizes` documents
    each) into `out` with the global columns and the shard layout; returns per-domain summaries."""
    scored = [read_parquet(p, columns=["quality", "cluster"]) for p in parts]
    quality = np.concatenate([t.column("quality").to_numpy() for t in scored])
    clusters = np.concatenate([t.column("cluster").to_numpy() for t in scored])
    d = diversity.diversity[clusters]
    weight = sampling_weights(quality, d, alpha, normalisation)
    shard_meta = json.dumps(
        [{"domain": s.domain, "name": s.name, "documents": n} for s, n in zip(shards, sizes, strict=True)]
    )
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("tokens", pa.int64()),
        pa.field("quality", pa.float64()),
        *[pa.field(c, pa.float64()) for c in COLUMNS],
        pa.field("cluster", pa.int64()),
        pa.field("compactness", pa.float64()),
        pa.field("separation", pa.float64()),
        pa.field("diversity", pa.float64()),
        pa.field("weight", pa.float64()),
    ]
    schema = pa.schema(fields, metadata={SHARDS_METADATA_KEY: shard_meta.encode()})
    domains: dict[str, dict[str, float]] = {}
    start = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for path in parts:
            table = read_parquet(path)
            n = table.num_rows
            c = table.column("cluster").to_numpy()
            columns = {
                name: table.column(name) for name in ("doc_id", "domain", "tokens", "quality", *COLUMNS)
            }
            columns["cluster"] = table.column("cluster")
            columns["compactness"] = pa.array(diversity.compactness[c], pa.float64())
            columns["separation"] = pa.array(diversity.separation[c], pa.float64())
            columns["diversity"] = pa.array(d[start : start + n], pa.float64())
            columns["weight"] = pa.array(weight[start : start + n], pa.float64())
            writer.write_table(pa.table(columns, schema=schema))
            if n:
                name = table.column("domain")[0].as_py()
                agg = domains.setdefault(
                    name, {"documents": 0, "tokens": 0, "quality_sum": 0.0, "weight_sum": 0.0}
                )
                agg["documents"] += n
                agg["tokens"] += int(pc_sum(table.column("tokens")))
                agg["quality_sum"] += float(quality[start : start + n].sum())
                agg["weight_sum"] += float(weight[start : start + n].sum())
            start += n
    return {
        name: {
            "documents": a["documents"],
            "tokens": a["tokens"],
            "mean_quality": a["quality_sum"] / a["documents"],
            "mean_weight": a["weight_sum"] / a["documents"],
        }
        for name, a in domains.items()
    }


def pc_sum(column: pa.ChunkedArray) -> int:
    import pyarrow.compute as pc

    value = pc.sum(column).as_py()
    return int(value or 0)


def read_scores(path: str | os.PathLike[str]) -> tuple[pa.Table, list[dict[str, Any]] | None]:
    """The columns the sampler needs from scores.parquet, and its shard layout (when mixlab wrote it)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: scores file does not exist (run `mixlab score` first)")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise BadInput(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    needed = ("doc_id", "domain", "tokens", "quality", "diversity")
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise BadInput(f"{path}: missing column(s) {', '.join(missing)} (expected the `mixlab score` layout)")
    table = read_parquet(path, columns=list(needed))
    for name in needed:
        if table.column(name).null_count:
            import pyarrow.compute as pc

            row = pc.index(pc.is_null(table.column(name)), True).as_py()
            raise BadInput(f"{path}: row {row}: field '{name}' is missing (null)")
    for name in ("tokens", "quality", "diversity"):
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            raise BadInput(
                f"{path}: row {int(bad[0])}: field '{name}' is {values[bad[0]]} (must be finite, ≥ 0)"
            )
    tokens = table.column("tokens").to_numpy(zero_copy_only=False).astype(np.float64)
    fractional = np.flatnonzero(tokens != np.floor(tokens))
    if fractional.size:
        row = int(fractional[0])
        raise BadInput(f"{path}: row {row}: field 'tokens' is {tokens[row]} (must be a whole number)")
    if tokens.sum() > MAX_TOKENS:
        raise BadInput(f"{path}: field 'tokens' sums to {tokens.sum():.3g}, more than 2^60")
    layout = None
    if schema.metadata and SHARDS_METADATA_KEY in schema.metadata:
        layout = json.loads(schema.metadata[SHARDS_METADATA_KEY])
    return table, layout


__all__ = ["SCORE_COLUMNS", "SHARDS_METADATA_KEY", "read_parquet", "read_scores", "write_scores"]
