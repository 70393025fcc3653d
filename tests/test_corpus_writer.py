"""ParquetShardWriter: shard boundaries, order, schema checks, atomicity, and a round trip through Corpus."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixlab.corpus import Corpus, ParquetShardWriter, read_shard
from mixlab.errors import BadInput


def test_rows_split_into_numbered_shards_in_order(tmp_path) -> None:
    out = tmp_path / "data"
    with ParquetShardWriter(out, rows_per_shard=4) as writer:
        writer.write({"id": [str(i) for i in range(3)], "text": [f"doc {i}" for i in range(3)]})
        writer.write({"id": [str(i) for i in range(3, 10)], "text": [f"doc {i}" for i in range(3, 10)]})
    assert [p.name for p in writer.paths] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [pq.read_metadata(p).num_rows for p in writer.paths] == [4, 4, 2]
    ids = [i for p in writer.paths for i in pq.read_table(p).column("id").to_pylist()]
    assert ids == [str(i) for i in range(10)] and writer.rows_written == 10
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in writer.paths]  # no temp files left


def test_byte_limit_bounds_a_shard(tmp_path) -> None:
    with ParquetShardWriter(tmp_path, rows_per_shard=10**6, shard_bytes=10_000) as writer:
        for _ in range(10):
            writer.write({"text": ["x" * 1000] * 5})
    assert 4 <= len(writer.paths) <= 10
    assert sum(pq.read_metadata(p).num_rows for p in writer.paths) == 50


def test_round_trip_through_the_corpus_reader(tmp_path) -> None:
    with ParquetShardWriter(tmp_path / "corpus" / "web") as writer:
        writer.write(pa.table({"text": ["alpha beta", "gamma"], "score": [0.5, 1.5]}))
    corpus = Corpus.open(tmp_path / "corpus")
    [shard] = corpus.shards()
    [batch] = read_shard(shard, keep_fields=True)
    assert batch.texts == ["alpha beta", "gamma"] and batch.records == [{"score": 0.5}, {"score": 1.5}]


def test_mismatched_batches_are_bad_input_and_an_error_writes_nothing(tmp_path) -> None:
    writer = ParquetShardWriter(tmp_path / "d", rows_per_shard=100)
    writer.write({"id": ["a"], "text": ["x"]})
    with pytest.raises(BadInput, match="do not match"):
        writer.write({"other": [1]})
    with pytest.raises(BadInput, match="unequal length"):
        writer.write({"id": ["a", "b"], "text": ["x"]})
    with pytest.raises(RuntimeError), ParquetShardWriter(tmp_path / "e") as failing:
        failing.write({"text": ["never flushed"]})
        raise RuntimeError("boom")
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())
