"""Reading a corpus: domains of documents, streamed shard by shard in bounded memory.

A corpus is either a directory `CORPUS/<domain>/*.{jsonl,jsonl.gz,parquet,txt}` or a manifest file
(TOML or YAML) mapping domain -> paths/globs:

    text_field = "text"            # optional, default "text"
    [domains]
    web = ["crawl/*.jsonl.gz"]
    code = { paths = ["code/**/*.parquet"], text_field = "content" }

A shard is one file. Document ids are the row's `id` field when present, otherwise a stable hash of
(domain, shard path relative to the corpus root, row index).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixlab.errors import BadInput

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".txt")
MANIFEST_SUFFIXES = (".toml", ".yaml", ".yml")


def shard_format(path: str | os.PathLike[str]) -> str | None:
    """The format of a shard file from its name: 'jsonl', 'jsonl.gz', 'parquet', 'txt' or None."""
    name = os.fspath(path)
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix[1:]
    return None


def _check_link(path: Path) -> None:
    """Refuse a symbolic link that leads nowhere (dangling, or a loop such as `web -> web`)."""
    if path.is_symlink() and not path.exists():
        raise BadInput(f"{path}: broken or self-referencing symbolic link ({os.readlink(path)})")


def shard_files(path: Path) -> list[Path]:
    """The shards a corpus path stands for: a shard file itself, or every shard below a directory.

    The one rule of directory corpora and manifests: symbolic links are followed; names starting with "."
    (hidden files and directories) are not part of the corpus; every other entry must be a shard
    (`SUFFIXES`) - an unsupported file, a broken link, a link loop or a special file raises BadInput.
    Empty (0-byte) shards are read as shards without documents.
    """
    _check_link(path)
    if path.is_file():
        if shard_format(path) is None:
            raise BadInput(f"{path}: unsupported file type (a shard is {', '.join(SUFFIXES)})")
        return [path]
    if not path.is_dir():
        raise BadInput(f"{path}: not a regular file or directory")
    files: list[Path] = []
    ancestors = {os.path.realpath(path)}

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            _check_link(entry)
            if entry.is_dir():
                real = os.path.realpath(entry)
                if real in ancestors:
                    raise BadInput(f"{entry}: symbolic link loop (leads back to {real})")
                ancestors.add(real)
                walk(entry)
                ancestors.discard(real)
            else:
                files.extend(shard_files(entry))

    walk(path)
    return files


@dataclass(frozen=True)
class Shard:
    """One file of one domain. `name` is its path relative to the corpus root (used in ids)."""

    domain: str
    path: str
    name: str
    format: str
    text_field: str = "text"

    @property
    def size(self) -> int:
        return os.path.getsize(self.path)


@dataclass
class DocumentBatch:
    """Up to `batch_size` consecutive documents of one shard.

    `rows` are 0-based row indices in the shard (JSONL line number = row + 1); `records` holds the
    other fields of each row when the reader was asked to keep them.
    """

    domain: str
    shard: str
    rows: list[int]
    ids: list[str]
    texts: list[str]
    records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class ReadStats:
    """What a pass read and, with `skip_bad_rows`, what it skipped (mergeable across shards)."""

    documents: int = 0
    bytes: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def skip(self, cause: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(cause)

    def merge(self, other: ReadStats) -> ReadStats:
        examples = (self.skipped_examples + other.skipped_examples)[:5]
        return ReadStats(
            self.documents + other.documents, self.bytes + other.bytes, self.skipped + other.skipped, examples
        )


def document_id(domain: str, shard_name: str, row: int) -> str:
    """Stable id of a row without an `id` field: 16 hex digits of blake2b(domain, shard, row)."""
    key = f"{domain}\x00{shard_name}\x00{row}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


@dataclass(frozen=True)
class Corpus:
    """Domains of documents. Open with `Corpus.open(path)`; iterate with `read_shard`."""

    root: str
    shards_by_domain: dict[str, tuple[Shard, ...]]

    @classmethod
    def open(cls, path: str | os.PathLike[str], text_field: str = "text") -> Corpus:
        """Open a corpus directory or manifest; raises BadInput for a missing path or an empty domain."""
        path = Path(path)
        if not path.exists():
            raise BadInput(f"{path}: corpus path does not exist")
        if path.is_file():
            if not path.name.endswith(MANIFEST_SUFFIXES):
                raise BadInput(f"{path}: not a corpus directory or a .toml/.yaml manifest")
            return cls._from_manifest(path, text_field)
        domains: dict[str, tuple[Shard, ...]] = {}
        for entry in sorted(path.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            _check_link(entry)
            if entry.is_dir():
                domains[entry.name] = tuple(
                    Shard(entry.name, str(f), f.relative_to(path).as_posix(), shard_format(f), text_field)
                    for f in shard_files(entry)
                )
            elif shard_format(entry):
                raise BadInput(
                    f"{entry}: a shard at the corpus root belongs to no domain (move it into CORPUS/<domain>/)"
                )
        if not domains:
            raise BadInput(f"{path}: no domain sub-directories (expected CORPUS/<domain>/*.jsonl|parquet)")
        corpus = cls(str(path), domains)
        corpus._check_nonempty()
        return corpus

    @classmethod
    def _from_manifest(cls, path: Path, default_field: str) -> Corpus:
        try:
            if path.suffix == ".toml":
                spec = tomllib.loads(path.read_text(encoding="utf-8"))
            else:
                spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: cannot parse manifest ({str(exc).splitlines()[0]})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("domains"), dict) or not spec["domains"]:
            raise BadInput(f"{path}: manifest needs a non-empty 'domains' table (domain -> paths)")
        base_field = spec.get("text_field", default_field)
        root = path.parent
        domains: dict[str, tuple[Shard, ...]] = {}
        for domain, entry in spec["domains"].items():
            text_field = base_field
            if isinstance(entry, dict):
                text_field = entry.get("text_field", base_field)
                entry = entry.get("paths")
            if isinstance(entry, str):
                entry = [entry]
            if not isinstance(entry, list) or not all(isinstance(p, str) for p in entry):
                raise BadInput(
                    f"{path}: domains.{domain}: expected a path, a list of paths or {{paths=[...]}}"
                )
            files: list[Path] = []
            for pattern in entry:
                full = pattern if os.path.isabs(pattern) else str(root / pattern)
                matched = sorted(glob.glob(full, recursive=True))
                if not matched:
                    raise BadInput(f"{path}: domains.{domain}: '{pattern}' matches no file")
                for m in matched:
                    try:
                        files.extend(shard_files(Path(m)))
                    except BadInput as exc:
                        raise BadInput(f"{path}: domains.{domain}: {exc}") from None
            seen: dict[str, Shard] = {}
            for f in files:
                rel = os.path.relpath(f, root).replace(os.sep, "/")
                seen.setdefault(rel, Shard(str(domain), str(f), rel, shard_format(f), text_field))
            domains[str(domain)] = tuple(seen.values())
        corpus = cls(str(root), domains)
        corpus._check_nonempty()
        return corpus

    def _check_nonempty(self) -> None:
        for domain, shards in self.shards_by_domain.items():
            if not shards or all(s.size == 0 for s in shards):
                raise BadInput(
                    f"{self.root}/{domain}: empty domain (no non-empty .jsonl/.jsonl.gz/.parquet/.txt)"
                )

    @property
    def domains(self) -> list[str]:
        return list(self.shards_by_domain)

    def shards(self, domains: Sequence[str] | None = None) -> list[Shard]:
        """All shards, domain by domain in corpus order; `domains` restricts (unknown names: BadInput)."""
        if domains is None:
            domains = self.domains
        unknown = [d for d in domains if d not in self.shards_by_domain]
        if unknown:
            raise BadInput(
                f"{self.root}: unknown domain(s) {', '.join(unknown)}; corpus has {', '.join(self.domains)}"
            )
        return [s for d in domains for s in self.shards_by_domain[d]]

    def fingerprint(self) -> str:
        """A cache key that changes when any shard's name, size, modification time or text field changes
        (the default field "text" adds nothing, so keys made before fields counted stay valid)."""
        h = hashlib.blake2b(digest_size=10)
        for shard in self.shards():
            st = os.stat(shard.path)
            h.update(f"{shard.domain}\x00{shard.name}\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
            if shard.text_field != "text":
                h.update(f"field\x00{shard.text_field}\n".encode())
        return h.hexdigest()


def _bad(stats: ReadStats | None, skip_bad_rows: bool, cause: str) -> None:
    if not skip_bad_rows:
        raise BadInput(cause)
    if stats is not None:
        stats.skip(cause)


def _check_text(shard: Shard, where: str, record: Any) -> str | None:
    """The document text of a record, or a one-line cause why it is unusable."""
    if not isinstance(record, dict):
        return f"{where}: expected a JSON object, got {type(record).__name__}"
    if shard.text_field not in record:
        return f"{where}: missing field '{shard.text_field}'"
    text = record[shard.text_field]
    if not isinstance(text, str):
        return f"{where}: field '{shard.text_field}' is {type(text).__name__}, not a string"
    if not text.strip():
        return f"{where}: empty document (field '{shard.text_field}' is blank)"
    return None


def _iter_jsonl_records(shard: Shard) -> Iterator[tuple[int, str, Any]]:
    """(row, location, record-or-exception) for each line; blank lines are not rows."""
    opener = gzip.open if shard.format == "jsonl.gz" else open
    row = 0
    lineno = 0
    try:
        with opener(shard.path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):  # noqa: B007 - lineno is reported after the loop
                if not raw.strip():
                    continue
                where = f"{shard.path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield (
                        row,
                        where,
                        BadInput(f"{where}: undecodable bytes (invalid UTF-8 at byte {exc.start})"),
                    )
                    row += 1
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield row, where, BadInput(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})")
                    row += 1
                    continue
                yield row, where, record
                row += 1
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        where = f"{shard.path}:{lineno + 1}"
        yield row, where, BadInput(f"{where}: truncated or corrupt file after line {lineno} ({exc})")


def _iter_parquet_records(shard: Shard, keep_fields: bool) -> Iterator[tuple[int, str, Any]]:
    try:
        import pyarrow.parquet as pq  # deferred: pyarrow costs ~0.3 s of every CLI start

        pf = pq.ParquetFile(shard.path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        yield (
            0,
            shard.path,
            BadInput(f"{shard.path}: not a readable parquet file ({str(exc).splitlines()[0]})"),
        )
        return
    names = pf.schema_arrow.names
    if shard.text_field not in names:
        yield (
            0,
            shard.path,
            BadInput(f"{shard.path}: missing column '{shard.text_field}' (has {', '.join(names)})"),
        )
        return
    columns = None if keep_fields else [c for c in (shard.text_field, "id") if c in names]
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=2048, columns=columns):
            for record in batch.to_pylist():
                yield row, f"{shard.path}: row {row}", record
                row += 1
    except Exception as exc:
        yield (
            row,
            shard.path,
            BadInput(f"{shard.path}: row {row}: corrupt parquet data ({str(exc).splitlines()[0]})"),
        )


def _iter_txt_records(shard: Shard) -> Iterator[tuple[int, str, Any]]:
    raw = Path(shard.path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield 0, shard.path, BadInput(f"{shard.path}: undecodable bytes (invalid UTF-8 at byte {exc.start})")
        return
    yield 0, shard.path, {shard.text_field: text}


def read_shard(
    shard: Shard,
    batch_size: int = 1024,
    *,
    skip_bad_rows: bool = False,
    keep_fields: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[DocumentBatch]:
    """Stream a shard as DocumentBatch objects of at most `batch_size` documents.

    Bad rows (malformed JSON, undecodable bytes, missing/blank/non-string text) raise BadInput naming the
    file and line, or with `skip_bad_rows` are counted in `stats` and left out.
    """
    if shard.format in ("jsonl", "jsonl.gz"):
        records = _iter_jsonl_records(shard)
    elif shard.format == "parquet":
        records = _iter_parquet_records(shard, keep_fields)
    else:
        records = _iter_txt_records(shard)

    batch = DocumentBatch(shard.domain, shard.name, [], [], [], [] if keep_fields else None)
    for row, where, record in records:
        if isinstance(record, BadInput):
            _bad(stats, skip_bad_rows, str(record))
            continue
        cause = _check_text(shard, where, record)
        if cause is not None:
            _bad(stats, skip_bad_rows, cause)
            continue
        text = record[shard.text_field]
        doc_id = record.get("id")
        batch.rows.append(row)
        batch.ids.append(str(doc_id) if doc_id is not None else document_id(shard.domain, shard.name, row))
        batch.texts.append(text)
        if batch.records is not None:
            batch.records.append({k: v for k, v in record.items() if k != shard.text_field})
        if stats is not None:
            stats.documents += 1
            stats.bytes += len(text.encode("utf-8"))
        if len(batch) >= batch_size:
            yield batch
            batch = DocumentBatch(shard.domain, shard.name, [], [], [], [] if keep_fields else None)
    if len(batch):
        yield batch


def iter_texts(shard: Shard, *, skip_bad_rows: bool = False) -> Iterator[str]:
    """Just the texts of a shard, in order."""
    for batch in read_shard(shard, skip_bad_rows=skip_bad_rows):
        yield from batch.texts


def open_corpus(path: str | os.PathLike[str], text_field: str = "text") -> Corpus:
    """Alias of `Corpus.open` for the functional style."""
    return Corpus.open(path, text_field)


__all__ = [
    "Corpus",
    "DocumentBatch",
    "ReadStats",
    "Shard",
    "document_id",
    "iter_texts",
    "open_corpus",
    "read_shard",
    "shard_files",
    "shard_format",
]
