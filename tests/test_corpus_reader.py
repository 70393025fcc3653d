"""Corpus reading: formats, manifests, ids, and every bad-input path (BadInput naming file and line)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixlab.corpus import Corpus, ReadStats, document_id, read_shard
from mixlab.errors import BadInput

TEXTS = {
    "jsonl": ["The cat sat on the mat.", "A second line of prose.", "Third."],
    "gz": ["def f(x):\n    return x + 1\n", "class A:\n    pass\n"],
    "parquet": ["Row zero of the table.", "Row one.", "Row two.", "Row three."],
}


def write_jsonl(path: Path, rows: list, compress: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_parquet(path: Path, table: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)
    return path


@pytest.fixture
def mixed_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_jsonl(
        root / "prose" / "a.jsonl", [{"text": t, "year": 2000 + i} for i, t in enumerate(TEXTS["jsonl"])]
    )
    write_jsonl(
        root / "code" / "b.jsonl.gz",
        [{"text": t, "id": f"code-{i}"} for i, t in enumerate(TEXTS["gz"])],
        True,
    )
    write_parquet(root / "table" / "c.parquet", {"text": TEXTS["parquet"], "score": [0.1, 0.2, 0.3, 0.4]})
    (root / "notes").mkdir()
    (root / "notes" / "n1.txt").write_text("A whole text file is one document.\nWith two lines.\n")
    (root / "notes" / "n2.txt").write_text("Another note.")
    (root / "SOURCES.json").write_text("{}")  # files at the top are not domains
    return root


def read_all(corpus: Corpus, **kwargs) -> dict[str, list]:
    out: dict[str, list] = {}
    for shard in corpus.shards():
        for batch in read_shard(shard, batch_size=2, **kwargs):
            out.setdefault(shard.domain, []).extend(zip(batch.ids, batch.texts, batch.rows, strict=True))
    return out


def test_directory_corpus_reads_every_format(mixed_corpus: Path) -> None:
    corpus = Corpus.open(mixed_corpus)
    assert corpus.domains == ["code", "notes", "prose", "table"]
    docs = read_all(corpus)
    assert [t for _, t, _ in docs["prose"]] == TEXTS["jsonl"]
    assert [t for _, t, _ in docs["code"]] == TEXTS["gz"]
    assert [t for _, t, _ in docs["table"]] == TEXTS["parquet"]
    assert [t for _, t, _ in docs["notes"]] == [
        "A whole text file is one document.\nWith two lines.\n",
        "Another note.",
    ]
    assert [r for _, _, r in docs["table"]] == [0, 1, 2, 3]
    assert {s.format for s in corpus.shards()} == {"jsonl", "jsonl.gz", "parquet", "txt"}


def test_ids_are_the_id_field_or_a_stable_hash(mixed_corpus: Path) -> None:
    docs = read_all(Corpus.open(mixed_corpus))
    assert [i for i, _, _ in docs["code"]] == ["code-0", "code-1"]
    prose_ids = [i for i, _, _ in docs["prose"]]
    assert prose_ids == [document_id("prose", "prose/a.jsonl", row) for row in range(3)]
    assert len(set(prose_ids)) == 3 and all(len(i) == 16 for i in prose_ids)
    assert prose_ids == [i for i, _, _ in read_all(Corpus.open(mixed_corpus))["prose"]]  # stable
    assert document_id("prose", "prose/a.jsonl", 0) != document_id("prose", "prose/b.jsonl", 0)


def test_batches_and_kept_fields(mixed_corpus: Path) -> None:
    corpus = Corpus.open(mixed_corpus)
    (shard,) = corpus.shards(["table"])
    batches = list(read_shard(shard, batch_size=3, keep_fields=True))
    assert [len(b) for b in batches] == [3, 1]
    assert batches[0].records == [{"score": 0.1}, {"score": 0.2}, {"score": 0.3}]
    (shard,) = corpus.shards(["prose"])
    (batch,) = list(read_shard(shard, keep_fields=True))
    assert [r["year"] for r in batch.records] == [2000, 2001, 2002]
    assert next(read_shard(shard)).records is None


def test_read_stats_count_documents_and_bytes(mixed_corpus: Path) -> None:
    corpus = Corpus.open(mixed_corpus)
    stats = ReadStats()
    for shard in corpus.shards(["prose"]):
        list(read_shard(shard, stats=stats))
    assert stats.documents == 3
    assert stats.bytes == sum(len(t.encode()) for t in TEXTS["jsonl"])


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_manifest_maps_domains_to_globs(mixed_corpus: Path, suffix: str) -> None:
    if suffix == ".toml":
        text = (
            'text_field = "text"\n[domains]\nprose = ["prose/*.jsonl"]\n'
            'code = { paths = ["code/**/*.jsonl.gz"] }\ntable = "table"\n'
        )
    else:
        text = "domains:\n  prose: [prose/*.jsonl]\n  code: {paths: ['code/**/*.jsonl.gz']}\n  table: table\n"
    manifest = mixed_corpus / f"corpus{suffix}"
    manifest.write_text(text)
    corpus = Corpus.open(manifest)
    assert corpus.domains == ["prose", "code", "table"]
    docs = read_all(corpus)
    assert [t for _, t, _ in docs["prose"]] == TEXTS["jsonl"]
    assert [t for _, t, _ in docs["table"]] == TEXTS["parquet"]
    # same relative shard names as the directory layout, so the same ids
    assert docs["prose"] == read_all(Corpus.open(mixed_corpus))["prose"]


def test_manifest_text_field_per_domain(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "x.jsonl", [{"content": "print(1)", "text": "not this"}])
    write_jsonl(tmp_path / "y.jsonl", [{"body": "hello"}])
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        'text_field = "body"\n[domains]\ncode = { paths = "x.jsonl", text_field = "content" }\nweb = "y.jsonl"\n'
    )
    docs = read_all(Corpus.open(manifest))
    assert [t for _, t, _ in docs["code"]] == ["print(1)"]
    assert [t for _, t, _ in docs["web"]] == ["hello"]


# ---------------------------------------------------------------------------------------------- bad input


def one_domain(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / "c" / "d").mkdir(parents=True)
    (tmp_path / "c" / "d" / name).write_bytes(data)
    return tmp_path / "c"


def read_everything(root: Path, **kwargs) -> ReadStats:
    stats = ReadStats()
    for shard in Corpus.open(root).shards():
        for _ in read_shard(shard, stats=stats, **kwargs):
            pass
    return stats


GOOD = b'{"text": "fine"}\n'


@pytest.mark.parametrize(
    ("name", "data", "cause"),
    [
        ("a.jsonl", GOOD + b'{"text": "unterminated\n' + GOOD, r"a\.jsonl:2: malformed JSON"),
        ("a.jsonl", GOOD + GOOD + b'{"body": "x"}\n', r"a\.jsonl:3: missing field 'text'"),
        ("a.jsonl", GOOD + b'{"text": 5}\n', r"a\.jsonl:2: field 'text' is int"),
        ("a.jsonl", GOOD + b'["text"]\n', r"a\.jsonl:2: expected a JSON object"),
        ("a.jsonl", GOOD + b'{"text": "caf\xe9"}\n', r"a\.jsonl:2: undecodable bytes"),
        ("a.jsonl", GOOD + b'{"text": "  "}\n', r"a\.jsonl:2: empty document"),
        (
            "a.jsonl.gz",
            gzip.compress(GOOD * 200, mtime=0)[:-30],
            r"a\.jsonl\.gz:\d+: truncated or corrupt file after line \d+",
        ),
        (
            "a.jsonl.gz",
            b"this is not gzip at all\n",
            r"a\.jsonl\.gz:1: truncated or corrupt file after line 0",
        ),
        ("a.parquet", b"PAR1 garbage that is no parquet PAR1", r"a\.parquet: not a readable parquet"),
        ("a.txt", b"caf\xe9 latin-1", r"a\.txt: undecodable bytes"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, name: str, data: bytes, cause: str) -> None:
    root = one_domain(tmp_path, name, data)
    with pytest.raises(BadInput, match=cause) as info:
        read_everything(root)
    assert "\n" not in str(info.value)
    stats = read_everything(root, skip_bad_rows=True)
    assert stats.skipped == 1
    assert stats.skipped_examples and __import__("re").search(cause, stats.skipped_examples[0])


def test_skip_bad_rows_keeps_the_good_ones(tmp_path: Path) -> None:
    root = one_domain(tmp_path, "a.jsonl", GOOD + b"{oops\n" + GOOD + b'{"x": 1}\n' + GOOD)
    stats = read_everything(root, skip_bad_rows=True)
    assert (stats.documents, stats.skipped) == (3, 2)
    rows = [r for s in Corpus.open(root).shards() for b in read_shard(s, skip_bad_rows=True) for r in b.rows]
    assert rows == [0, 2, 4]  # row numbers (and so ids) of good rows do not shift when bad ones are skipped


def test_parquet_without_text_column(tmp_path: Path) -> None:
    write_parquet(tmp_path / "c" / "d" / "a.parquet", {"body": ["x"]})
    with pytest.raises(BadInput, match=r"a\.parquet: missing column 'text' \(has body\)"):
        read_everything(tmp_path / "c")


def test_missing_path_and_empty_domains(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        Corpus.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no domain sub-directories"):
        Corpus.open(tmp_path / "empty")
    (tmp_path / "empty" / "web").mkdir()
    (tmp_path / "empty" / "web" / ".gitkeep").write_text("hidden: not part of the corpus")
    with pytest.raises(BadInput, match=r"empty/web: empty domain"):
        Corpus.open(tmp_path / "empty")
    (tmp_path / "empty" / "web" / "README.md").write_text("not a shard")  # refused, not skipped (issue 12)
    with pytest.raises(BadInput, match=r"empty/web/README\.md: unsupported file type"):
        Corpus.open(tmp_path / "empty")
    (tmp_path / "empty" / "web" / "README.md").unlink()
    (tmp_path / "empty" / "web" / "a.jsonl").write_text("")
    with pytest.raises(BadInput, match="empty domain"):
        Corpus.open(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(BadInput, match="not a corpus directory"):
        Corpus.open(tmp_path / "x.csv")


def test_unknown_domain_is_bad_input(mixed_corpus: Path) -> None:
    with pytest.raises(BadInput, match="unknown domain.*nope"):
        Corpus.open(mixed_corpus).shards(["nope"])


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("domains = [", "cannot parse manifest"),
        ("text_field = 'x'\n", "non-empty 'domains' table"),
        ("[domains]\nweb = ['nothing/*.jsonl']\n", r"domains\.web: 'nothing/\*\.jsonl' matches no file"),
        ("[domains]\nweb = 3\n", r"domains\.web: expected a path"),
        ("[domains]\nweb = 'm.toml'\n", "unsupported file type"),
    ],
)
def test_bad_manifests(tmp_path: Path, text: str, cause: str) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text(text)
    with pytest.raises(BadInput, match=cause):
        Corpus.open(manifest)


def test_fingerprint_changes_with_content(mixed_corpus: Path) -> None:
    before = Corpus.open(mixed_corpus).fingerprint()
    assert before == Corpus.open(mixed_corpus).fingerprint()
    write_jsonl(mixed_corpus / "prose" / "a.jsonl", [{"text": "changed and longer than before"}])
    assert Corpus.open(mixed_corpus).fingerprint() != before
