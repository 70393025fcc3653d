"""Tokenizer specs: gpt2 (offline, known ids), tokenizer.json, HF directory, bpe:N trained and cached."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixlab.corpus import Corpus, load_tokenizer
from mixlab.errors import BadInput


@pytest.fixture(scope="module")
def gpt2():
    return load_tokenizer("gpt2")


def test_gpt2_ids_match_gpt2(gpt2) -> None:
    # reference ids of the original GPT-2 encoder (openai/gpt-2 encoder.json + vocab.bpe)
    assert gpt2.encode_batch(["Hello world", " Hello world", "Hello, world!"]) == [
        [15496, 995],
        [18435, 995],
        [15496, 11, 995, 0],
    ]
    assert gpt2.vocab_size == 50257 and gpt2.eos_id == 50256
    assert gpt2.token_dtype == np.uint16
    assert gpt2.hf.decode(gpt2.encode_batch(["naïve café — ünïcode ✓"])[0]) == "naïve café — ünïcode ✓"


def test_encode_flat_offsets_and_eos(gpt2) -> None:
    texts = ["Hello world", "", "Hello, world!"]
    ids, offsets = gpt2.encode_flat(texts)
    assert offsets.tolist() == [0, 3, 4, 9]
    assert ids.tolist() == [15496, 995, 50256, 50256, 15496, 11, 995, 0, 50256]
    ids, offsets = gpt2.encode_flat(texts, append_eos=False)
    assert offsets.tolist() == [0, 2, 2, 6] and ids.dtype == np.uint16
    assert gpt2.count_tokens(texts) == [2, 0, 4]


def test_tokenizer_json_path_and_directory(gpt2, tmp_path: Path) -> None:
    path = tmp_path / "tok" / "tokenizer.json"
    path.parent.mkdir()
    gpt2.hf.save(str(path))
    for spec in (str(path), str(path.parent)):
        tok = load_tokenizer(spec)
        assert tok.encode_batch(["Hello world"]) == [[15496, 995]]
        assert tok.spec == spec


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown tokenizer"):
        load_tokenizer("gpt7")
    with pytest.raises(BadInput, match="directory has no tokenizer.json"):
        load_tokenizer(str(tmp_path))
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(BadInput, match="not a valid tokenizer.json"):
        load_tokenizer(str(bad))
    for spec in ("bpe:x", "bpe:100", "bpe:"):
        with pytest.raises(BadInput, match="bpe"):
            load_tokenizer(spec)
    with pytest.raises(BadInput, match="needs a corpus"):
        load_tokenizer("bpe:1000")


def test_bpe_is_trained_on_the_corpus_and_cached(demo_corpus: Path, tmp_path: Path, monkeypatch) -> None:
    corpus_dir = tmp_path / "corpus"
    os.makedirs(corpus_dir)
    for domain in ("wiki", "code"):
        shutil.copytree(demo_corpus / domain, corpus_dir / domain)
    corpus = Corpus.open(corpus_dir)
    monkeypatch.setenv("MIXLAB_CACHE", str(tmp_path / "cache"))
    tok = load_tokenizer("bpe:600", corpus=corpus, sample_bytes=200_000)
    assert tok.vocab_size == 600 and tok.eos_id == 0 and tok.token_dtype == np.uint16
    (cached,) = (tmp_path / "cache" / "tokenizers").glob("bpe600-*.json")
    assert json.loads(cached.read_text())["model"]["type"] == "BPE"
    text = "def main():\n    return the_result"
    ids = tok.encode_batch([text])[0]
    assert tok.hf.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # learned merges compress the training domains
    mtime = cached.stat().st_mtime_ns
    again = load_tokenizer("bpe:600", corpus=corpus, sample_bytes=200_000)
    assert (
        again.encode_batch([text])[0] == ids and cached.stat().st_mtime_ns == mtime
    )  # loaded, not retrained
