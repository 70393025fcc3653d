"""Fuzzing the readers and loaders: whatever the bytes, the only way out is BadInput (the CLI's exit 2) or a
clean result. Any other exception would be a crash with a traceback (exit 1) on the user's bad file."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixlab.corpus import Corpus, ReadStats, read_shard
from mixlab.errors import BadInput
from mixlab.mixture import read_mixtures

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
)
# rows that look like documents: mostly {"text": str}, sometimes not quite
rows = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=80)}),
    st.fixed_dictionaries({"text": json_values}),
    st.dictionaries(st.sampled_from(["text", "id", "meta", "body"]), json_values, max_size=3),
    json_values,
)


def read_all(root: Path, skip_bad_rows: bool = False) -> tuple[int, ReadStats]:
    """Open the corpus at `root` and read every shard; returns (documents, stats)."""
    corpus = Corpus.open(root)
    stats = ReadStats()
    n = 0
    for shard in corpus.shards():
        for batch in read_shard(shard, batch_size=7, skip_bad_rows=skip_bad_rows, stats=stats):
            assert len(batch.ids) == len(batch.texts) == len(batch.rows)
            assert all(isinstance(t, str) and t.strip() for t in batch.texts)
            n += len(batch)
    return n, stats


def fresh(tmp_path: Path, name: str) -> Path:
    """An empty corpus directory (hypothesis reuses the function-scoped tmp_path across examples)."""
    import shutil

    root = tmp_path / name
    shutil.rmtree(root, ignore_errors=True)
    (root / "d").mkdir(parents=True)
    return root


def only_bad_input(root: Path) -> None:
    """Reading `root` either succeeds or raises BadInput; with skip_bad_rows, bad rows are counted instead."""
    try:
        n, _ = read_all(root)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        try:
            n_skip, stats = read_all(root, skip_bad_rows=True)
        except (
            BadInput
        ) as again:  # whole-file problems (corrupt gzip/parquet, empty domain) cannot be skipped
            assert "\n" not in str(again)
        else:
            assert stats.skipped + n_skip >= 1
    else:
        n_skip, stats = read_all(root, skip_bad_rows=True)
        assert (n_skip, stats.skipped) == (n, 0)


@FUZZ
@given(blob=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".jsonl.gz", ".parquet", ".txt"]))
def test_random_bytes_as_a_shard(tmp_path: Path, blob: bytes, suffix: str) -> None:
    root = fresh(tmp_path, "bytes")
    (root / "d" / f"x{suffix}").write_bytes(blob)
    only_bad_input(root)


@FUZZ
@given(blob=st.binary(min_size=1, max_size=400), cut=st.integers(min_value=0, max_value=400))
def test_random_and_truncated_gzip(tmp_path: Path, blob: bytes, cut: int) -> None:
    root = fresh(tmp_path, "gz")
    packed = gzip.compress(blob)
    (root / "d" / "x.jsonl.gz").write_bytes(packed[: min(cut, len(packed))] or packed)
    only_bad_input(root)


@FUZZ
@given(records=st.lists(rows, max_size=8), junk=st.lists(st.binary(max_size=20), max_size=2))
def test_valid_looking_jsonl_rows(tmp_path: Path, records: list, junk: list[bytes]) -> None:
    root = fresh(tmp_path, "rows")
    lines = [json.dumps(r).encode() for r in records] + junk
    (root / "d" / "x.jsonl").write_bytes(b"\n".join(lines))
    only_bad_input(root)


@FUZZ
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=2000)),
)
def test_parquet_rows_and_truncation(tmp_path: Path, texts: list, cut: int | None) -> None:
    root = fresh(tmp_path, "pq")
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array(texts, type=pa.string())}), buf)
    blob = buf.getvalue()
    (root / "d" / "x.parquet").write_bytes(blob if cut is None else blob[:cut])
    only_bad_input(root)


cells = st.one_of(
    st.sampled_from(["0", "1", "0.5", "-1", "nan", "inf", "-inf", "", " ", "1e309", "x", "1,2", '"']),
    st.text(max_size=6),
)


@FUZZ
@given(
    header=st.lists(st.one_of(st.sampled_from(["name", "web", "code", ""]), st.text(max_size=5)), max_size=4),
    body=st.lists(st.lists(cells, max_size=4), max_size=4),
)
def test_mixtures_csv_loader(tmp_path: Path, header: list[str], body: list[list[str]]) -> None:
    path = tmp_path / "mixtures.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *body]), encoding="utf-8")
    try:
        mixtures = read_mixtures(path)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        for m in mixtures:
            assert abs(sum(m.weights.values()) - 1) < 1e-9 and min(m.weights.values()) >= 0


@FUZZ
@given(blob=st.binary(max_size=200), as_json=st.booleans())
def test_mixtures_random_bytes(tmp_path: Path, blob: bytes, as_json: bool) -> None:
    path = tmp_path / ("mixture.json" if as_json else "mixtures.csv")
    path.write_bytes(blob)
    try:
        read_mixtures(path)
    except BadInput as exc:
        assert "\n" not in str(exc)


mixture_objects = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"weights": st.dictionaries(st.sampled_from(["web", "code", "", "1"]), json_scalars, max_size=3)},
        optional={
            "name": json_values,
            "meta": st.one_of(
                st.dictionaries(st.sampled_from(["seed", "source", "law", "name", "where"]), json_values),
                json_values,
            ),
        },
    ),
)


@FUZZ
@given(obj=mixture_objects)
def test_mixture_json_loader(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(obj))
    try:
        m = read_mixtures(path)[0]
    except BadInput as exc:
        assert "\n" not in str(exc)
    else:
        assert abs(sum(m.weights.values()) - 1) < 1e-9
        assert json.dumps(m.meta) == json.dumps(obj.get("meta", {}))  # type: ignore[union-attr]
