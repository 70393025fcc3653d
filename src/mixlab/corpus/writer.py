"""Writing datasets as parquet shards: `DIR/part-00000.parquet`, `DIR/part-00001.parquet`, ...

    with ParquetShardWriter(out / "data") as writer:
        for batch in batches:
            writer.write({"id": ids, "domain": domains, "text": texts})
    writer.paths   # the shards written, in order

Rows are buffered until a shard holds `rows_per_shard` rows or about `shard_bytes` bytes, then the shard is
written in one go through `atomic_path` (a temporary sibling renamed into place), so memory stays bounded
by one shard and no reader ever sees a half-written file. Every shard has the same schema (fixed by the
first batch, or given).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.errors import BadInput
from mixlab.files import atomic_path


class ParquetShardWriter:
    """Buffered writer of `part-NNNNN.parquet` shards into `directory` (created if missing)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        rows_per_shard: int = 100_000,
        shard_bytes: int = 128 << 20,
        schema: pa.Schema | None = None,
        compression: str = "zstd",
        prefix: str = "part",
    ) -> None:
        if rows_per_shard < 1 or shard_bytes < 1:
            raise ValueError("rows_per_shard and shard_bytes must be positive")
        self.directory = Path(directory)
        self.rows_per_shard = rows_per_shard
        self.shard_bytes = shard_bytes
        self.schema = schema
        self.compression = compression
        self.prefix = prefix
        self.paths: list[Path] = []
        self.rows_written = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._closed = False

    def write(self, batch: pa.Table | pa.RecordBatch | Mapping[str, Sequence[Any]]) -> None:
        """Append rows: a pyarrow Table/RecordBatch or a mapping column -> equal-length sequence."""
        if self._closed:
            raise ValueError("write() after close()")
        table = self._as_table(batch)
        if table.num_rows == 0:
            return
        offset = 0
        while offset < table.num_rows:
            take = min(table.num_rows - offset, self.rows_per_shard - self._pending_rows)
            part = table.slice(offset, take)
            self._pending.append(part)
            self._pending_rows += take
            self._pending_bytes += part.nbytes
            offset += take
            if self._pending_rows >= self.rows_per_shard or self._pending_bytes >= self.shard_bytes:
                self.flush()

    def flush(self) -> None:
        """Write the buffered rows as the next shard (nothing when the buffer is empty)."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        path = self.directory / f"{self.prefix}-{len(self.paths):05d}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression=self.compression)
        self.paths.append(path)
        self.rows_written += table.num_rows
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> list[Path]:
        """Flush the last shard; returns the paths of all shards written."""
        if not self._closed:
            self.flush()
            self._closed = True
        return self.paths

    def __enter__(self) -> ParquetShardWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pending = []
            self._closed = True

    def _as_table(self, batch: pa.Table | pa.RecordBatch | Mapping[str, Sequence[Any]]) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            table = pa.Table.from_batches([batch])
        elif isinstance(batch, pa.Table):
            table = batch
        else:
            lengths = {name: len(col) for name, col in batch.items()}
            if len(set(lengths.values())) > 1:
                raise BadInput(f"{self.directory}: columns of unequal length {lengths}")
            try:
                table = pa.table(dict(batch), schema=self.schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise BadInput(
                    f"{self.directory}: batch columns {list(batch)} do not match the shard schema"
                    f" {self.schema.names if self.schema else []} ({str(exc).splitlines()[0]})"
                ) from None
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise BadInput(
                    f"{self.directory}: batch columns {table.schema.names} do not match the shard schema"
                    f" {self.schema.names} ({str(exc).splitlines()[0]})"
                ) from None
        return table


__all__ = ["ParquetShardWriter"]
