"""The entropy pass over a real-text corpus: streaming counts, engines, caps, convergence, VNE and the CLI."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import mixlab.entropy.counting as entropy_pass
from mixlab.cli import app
from mixlab.commands.common import cli_message
from mixlab.corpus import Corpus, corpus_stats, load_tokenizer, natural_mixture, read_shard
from mixlab.engine import Engine, LocalEngine
from mixlab.entropy import (
    SparseCounts,
    count_window_pairs,
    embedding_gram,
    entropy_mixture,
    von_neumann_entropy_from_gram,
)
from mixlab.entropy.counting import CountsStack, ShardTask, count_shard, shard_tasks
from mixlab.entropy.profile import profile_corpus
from mixlab.errors import BadInput
from mixlab.mixture import read_mixtures


def _env_with_src() -> dict[str, str]:
    """The environment for a `python -m mixlab.cli` subprocess running this checkout's source."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}


def _write_jsonl(path: Path, texts: list[str], compress: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory) -> Path:
    """Three domains of real text from the standard library: code, docstrings (prose), reference docs."""
    import pydoc_data.topics

    root = tmp_path_factory.mktemp("entropy_corpus")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    code = [p.read_text(encoding="utf-8", errors="replace") for p in files[:10]]
    _write_jsonl(root / "code" / "a.jsonl", code[:5])
    _write_jsonl(root / "code" / "b.jsonl.gz", code[5:], compress=True)
    docstrings = [
        d.strip()
        for p in files[40:100]
        for d in re.findall(r'"""(.*?)"""', p.read_text(encoding="utf-8", errors="replace"), flags=re.S)
        if len(d) > 300
    ]
    _write_jsonl(root / "prose" / "a.jsonl", docstrings[::2])
    _write_jsonl(root / "prose" / "b.jsonl", docstrings[1::2])
    topics = [t for _, t in sorted(pydoc_data.topics.topics.items())]
    (root / "reference").mkdir()
    pq.write_table(pa.table({"text": topics}), root / "reference" / "topics.parquet")
    return root


@pytest.fixture(scope="module")
def gpt2():
    return load_tokenizer("gpt2")


def test_streaming_counts_equal_counting_the_whole_shard_stream(real_corpus, gpt2, monkeypatch):
    """Small batches (pairs carried across batch edges) and tiny flush buffers give the exact counts."""
    monkeypatch.setattr(entropy_pass, "FLUSH_MIN_KEYS", 64)
    corpus = Corpus.open(real_corpus)
    shard = corpus.shards(["prose"])[0]
    texts = [t for b in read_shard(shard) for t in b.texts]
    stream, _ = gpt2.encode_flat(texts)
    seq_len = 97
    expected_pairs = count_window_pairs(stream, gpt2.vocab_size, seq_len)
    expected_unigrams = np.bincount(stream, minlength=gpt2.vocab_size)

    counts = count_shard(ShardTask(shard), gpt2, seq_len, (0.1, 0.5, 1.0), batch_size=7)[shard.domain]
    merged = SparseCounts.empty()
    for band in counts.pairs:
        merged = merged.merge(band)
    assert merged == expected_pairs
    assert np.array_equal(counts.unigrams.sum(axis=0), expected_unigrams)
    assert counts.documents == len(texts)
    assert min(len(b) for b in counts.pairs) > 0  # every band got windows

    # a token quota cuts the stream at exactly that many tokens
    capped = count_shard(ShardTask(shard, tokens=1000), gpt2, seq_len, (1.0,), batch_size=7)[shard.domain]
    assert capped.tokens == 1000
    assert capped.pairs[0] == count_window_pairs(stream[:1000], gpt2.vocab_size, seq_len)


@pytest.fixture(scope="module")
def local_profile(real_corpus, gpt2):
    return profile_corpus(Corpus.open(real_corpus), gpt2, LocalEngine(1), measures=("se", "ce", "je"))


DEMO_SETTINGS = dict(
    measures=("se", "ce", "je", "vne"),
    embedder="static",
    max_tokens_per_domain=8_000,
    vne_max_documents_per_domain=12,
    seq_len=1024,
)


DEMO_SLICE = ("code", "wiki", "news", "books", "math", "dialogue")


@pytest.fixture(scope="module")
def demo_slice(demo_corpus, tmp_path_factory) -> Path:
    """A manifest over six domains of the demo corpus (all their shards): fewer engine tasks, same text."""
    manifest = tmp_path_factory.mktemp("demo_slice") / "slice.toml"
    lines = ["[domains]"] + [f'{d} = ["{demo_corpus / d}/*"]' for d in DEMO_SLICE]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def demo_local(demo_slice, gpt2):
    return profile_corpus(Corpus.open(demo_slice), gpt2, LocalEngine(1), **DEMO_SETTINGS)


def assert_same_profile(a, b):
    """Integer counts and token entropies bit for bit; VNE (a float gram summed by BLAS) to 1e-9."""
    da, db = a.to_dict(), b.to_dict()
    for d in da["domains"]:
        va, vb = dict(da["domains"][d]), dict(db["domains"][d])
        assert va.pop("vne") == pytest.approx(vb.pop("vne"), rel=1e-9, abs=1e-12), d
        assert va == vb, d
    mix_a, mix_b = da.pop("mixtures"), db.pop("mixtures")
    assert mix_a.keys() == mix_b.keys()
    for name in mix_a:
        assert mix_a[name] == pytest.approx(mix_b[name], rel=1e-9), name
    da.pop("domains"), db.pop("domains")
    assert da == db


@pytest.mark.slow
def test_local_and_ray_engines_agree_on_the_demo_corpus(demo_slice, gpt2, demo_local):
    from mixlab.engine.ray import RayEngine

    with RayEngine(workers=2) as ray_engine:
        on_ray = profile_corpus(Corpus.open(demo_slice), gpt2, ray_engine, **DEMO_SETTINGS)
    assert_same_profile(on_ray, demo_local)


def test_local_process_pool_matches_inline(real_corpus, gpt2, local_profile):
    pooled = profile_corpus(Corpus.open(real_corpus), gpt2, LocalEngine(2), measures=("se", "ce", "je"))
    assert pooled.to_dict() == local_profile.to_dict()  # integer counts and floats, bit for bit


def test_demo_profile_budgets_and_vne(demo_local):
    assert list(demo_local.domains) == list(DEMO_SLICE)
    for d, v in demo_local.domains.items():
        assert 0.8 * 8_000 <= v["tokens"] <= 8_000, d
        # the document budget (split over the domain's shards) among the documents inside the token budget
        assert v["embedded_documents"] <= min(12, v["documents"]), d
        assert 0 < v["vne"] < math.log(384), d
    assert max(v["embedded_documents"] for v in demo_local.domains.values()) == 12
    assert [m.name for m in demo_local.mixtures()] == ["natural", "uniform", "se", "ce", "je", "vne"]
    # natural = estimated full-domain token shares, not the (equal) capped counts
    assert np.ptp(list(demo_local.natural().values())) > 0.01
    # the paper's check holds exactly once the first-position vs all-token marginal gap is removed
    mixtures = {m.name: m.weights for m in demo_local.mixtures()}
    residual = [
        math.log(mixtures["je"][d] / (mixtures["se"][d] * mixtures["ce"][d]))
        - (v["first_position_entropy"] - v["se"])
        for d, v in demo_local.domains.items()
    ]
    assert np.ptp(residual) < 1e-9


def test_counts_stack_merges_to_the_same_counts_in_any_grouping(real_corpus, gpt2):
    corpus = Corpus.open(real_corpus)
    shards = corpus.shards(["prose"])
    parts = [
        count_shard(ShardTask(shard, tokens=t), gpt2, 64, (0.5, 1.0))["prose"]
        for shard in shards
        for t in (None, 300, 5000, 64)
    ]
    stack = CountsStack()
    for p in parts:
        stack.add(p)
    assert len(stack.stack) < len(parts)  # it merged along the way
    folded = parts[0]
    for p in parts[1:]:
        folded = folded.merge(p)
    result = stack.result()
    assert np.array_equal(result.unigrams, folded.unigrams)
    assert result.pairs == folded.pairs
    assert result.documents == folded.documents


class CountingEngine(Engine):
    """The inline engine, recording how many shards each pass maps; raises KeyboardInterrupt (like Ctrl-C)
    after yielding `stop_after` results."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.inner = LocalEngine(1)
        self.stop_after = stop_after
        self.mapped: list[int] = []

    def imap(self, fn, items, description=""):
        self.mapped.append(len(items))
        for k, result in enumerate(self.inner.imap(fn, items, description)):
            if k == self.stop_after:
                raise KeyboardInterrupt
            yield result


def test_an_interrupted_pass_resumes_from_its_checkpoint(real_corpus, gpt2, local_profile, tmp_path):
    corpus = Corpus.open(real_corpus)
    work = tmp_path / "entropy.work"
    settings = dict(measures=("se", "ce", "je"), work=work, checkpoint_every_s=0)
    interrupted = CountingEngine(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        profile_corpus(corpus, gpt2, interrupted, **settings)
    assert interrupted.mapped == [5] and (work / "entropy.checkpoint").is_file()
    resumed = CountingEngine()
    profile = profile_corpus(corpus, gpt2, resumed, **settings)
    assert resumed.mapped == [2]  # the 3 shards counted before the interrupt are not counted again
    assert profile.to_dict() == local_profile.to_dict()  # bit for bit, as if never interrupted
    other = CountingEngine()  # other settings: the checkpoint is not theirs
    profile_corpus(corpus, gpt2, other, **{**settings, "seed": 1})
    assert other.mapped == [5]


def test_profile_numbers_are_consistent(real_corpus, gpt2, local_profile):
    for d, v in local_profile.domains.items():
        # no cap: exact counts; the counted stream has an EOS after every document
        assert v["tokens"] == v["domain_tokens"] + v["documents"] > 5000, d
        assert not v["domain_tokens_estimated"]
        assert v["je"] == pytest.approx(v["first_position_entropy"] + v["ce"], abs=1e-9)
        assert 0 < v["ce"] < v["se"] <= math.log(v["unique_tokens"])
        conv = v["convergence"]
        assert conv["tokens"][-1] == v["tokens"]
        assert all(a < b for a, b in zip(conv["tokens"], conv["tokens"][1:], strict=False))
        assert [conv[m][-1] for m in ("se", "ce", "je")] == [v["se"], v["ce"], v["je"]]
        assert conv["last_step_change"]["ce"] == conv["ce"][-1] - conv["ce"][-2]
        assert conv["ce"][0] < conv["ce"][-1]  # the plug-in estimate grows with the sample (biased low)
    code, prose = local_profile.domains["code"], local_profile.domains["prose"]
    # Python source is more predictable token-to-token than English prose
    assert code["ce"] < prose["ce"]
    mixtures = {m.name: m for m in local_profile.mixtures()}
    assert list(mixtures) == ["natural", "uniform", "se", "ce", "je"]
    # natural = the token share of `corpus stats`
    stats = corpus_stats(Corpus.open(real_corpus), gpt2)
    assert mixtures["natural"].weights == pytest.approx(natural_mixture(stats), abs=1e-12)
    assert mixtures["ce"].weights == pytest.approx(entropy_mixture(local_profile.entropies("ce")))


def test_paper_identity_ln_r_je_minus_ln_r_se_minus_ln_r_ce(local_profile):
    """ln r_JE − ln r_SE − ln r_CE = (JE − SE − CE) + const = (H(first) − SE) + const per domain.

    With JE = SE + CE it would be the same constant for every domain (the paper's check); here SE counts every
    token and H(first) leaves out each window's last token, so the spread across domains equals the spread of
    H(first) − SE. Measured on this corpus (seq_len 1024): 2.3e-4 nats (|H(first) − SE| ≤ 1.7e-4 per domain).
    """
    mixtures = {m.name: m.weights for m in local_profile.mixtures()}
    domains = list(local_profile.domains)
    lhs = np.array(
        [
            math.log(mixtures["je"][d]) - math.log(mixtures["se"][d]) - math.log(mixtures["ce"][d])
            for d in domains
        ]
    )
    gap = np.array(
        [local_profile.domains[d]["first_position_entropy"] - local_profile.domains[d]["se"] for d in domains]
    )
    assert np.ptp(lhs - gap) < 1e-9  # exactly a constant once the first-vs-all marginal gap is removed
    assert np.ptp(lhs) == pytest.approx(np.ptp(gap), abs=1e-9)
    assert np.ptp(lhs) < 1e-3


def test_seed_changes_only_the_convergence_samples(real_corpus, gpt2, local_profile):
    other = profile_corpus(Corpus.open(real_corpus), gpt2, measures=("se", "ce", "je"), seed=7)
    for d, v in local_profile.domains.items():
        w = other.domains[d]
        assert (w["se"], w["ce"], w["je"], w["tokens"]) == (v["se"], v["ce"], v["je"], v["tokens"])
        assert w["convergence"]["tokens"][:-1] != v["convergence"]["tokens"][:-1]
        assert w["convergence"]["tokens"][-1] == v["convergence"]["tokens"][-1]


def test_token_cap_spreads_over_shards_and_estimates_the_natural_mix(real_corpus, gpt2, local_profile):
    corpus = Corpus.open(real_corpus)
    cap = 6000
    tasks = shard_tasks(corpus, cap, 7)
    for domain in corpus.domains:
        assert sum(t.tokens for t in tasks if t.shard.domain == domain) == cap
        assert sum(t.documents for t in tasks if t.shard.domain == domain) == 7
    capped = profile_corpus(corpus, gpt2, LocalEngine(1), max_tokens_per_domain=cap, seq_len=256)
    for d, v in capped.domains.items():
        assert 0.8 * cap <= v["tokens"] <= cap, d
        assert v["domain_tokens"] == pytest.approx(local_profile.domains[d]["domain_tokens"], rel=0.25), d
    natural = capped.natural()
    for d, share in local_profile.natural().items():
        assert natural[d] == pytest.approx(share, abs=0.05)


class TrigramHashEmbedder:
    """A deterministic test embedder: hashed character-trigram counts in 64 dimensions, unit rows."""

    name = "trigram-test"
    dim = 64

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            codes = np.frombuffer(t.encode("utf-8")[:4000], np.uint8).astype(np.int64)
            if len(codes) >= 3:
                h = (codes[:-2] * 131 * 131 + codes[1:-1] * 131 + codes[2:]) % self.dim
                out[i] = np.bincount(h, minlength=self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)


def test_vne_through_the_pass_equals_embedding_all_documents(real_corpus, gpt2):
    corpus = Corpus.open(real_corpus)
    embedder = TrigramHashEmbedder()
    profile = profile_corpus(corpus, gpt2, LocalEngine(1), measures=("vne", "ce"), embedder=embedder)
    for domain in corpus.domains:
        texts = [t for s in corpus.shards([domain]) for b in read_shard(s) for t in b.texts]
        expected = von_neumann_entropy_from_gram(*embedding_gram(embedder.embed(texts)))
        v = profile.domains[domain]
        assert v["vne"] == pytest.approx(expected, rel=1e-12)
        assert v["embedded_documents"] == len(texts)
        assert 0 < v["vne"] < math.log(embedder.dim)
    assert [m.name for m in profile.mixtures()] == ["natural", "uniform", "vne", "ce"]
    assert profile.settings["embedder"] == "trigram-test"


def test_bad_arguments_are_bad_input(real_corpus, gpt2):
    corpus = Corpus.open(real_corpus)
    with pytest.raises(BadInput, match="measures"):
        profile_corpus(corpus, gpt2, measures=("se", "perplexity"))
    with pytest.raises(BadInput, match="embedder"):
        profile_corpus(corpus, gpt2, measures=("vne",), embedder="no-such-embedder")
    with pytest.raises(BadInput, match="`seq_len`"):
        profile_corpus(corpus, gpt2, seq_len=1)


def test_cli_writes_entropy_json_mixtures_and_plot(real_corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    # not --quiet: it silences the tables too (issue 14), and this test reads the convergence table
    args = ["--workers", "1", "entropy", str(real_corpus), "--out", str(out), "--seq-len", "512"]
    args += ["--measures", "se,ce,je", "--checkpoint-every", "0"]
    result = runner.invoke(app, [*args, "--miller-madow"])
    assert result.exit_code == 0, result.output
    assert "entropy per domain" in result.output
    report = json.loads((out / "entropy.json").read_text())
    assert report["miller_madow"] is True and report["seq_len"] == 512
    for v in report["domains"].values():
        assert v["se"] == pytest.approx(v["plug_in"]["se"] + (v["unique_tokens"] - 1) / (2 * v["tokens"]))
        assert v["se"] > v["plug_in"]["se"]
    mixtures = read_mixtures(out / "mixtures.csv")
    assert [m.name for m in mixtures] == ["natural", "uniform", "se", "ce", "je"]
    assert mixtures[0].domains == ["code", "prose", "reference"]
    assert (out / "mixtures.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "out.work").exists()  # the checkpoint goes once the outputs are written
    first = (out / "entropy.json").read_bytes(), (out / "mixtures.csv").read_bytes()
    assert runner.invoke(app, [*args, "--miller-madow"]).exit_code == 0
    assert (
        (out / "entropy.json").read_bytes(),
        (out / "mixtures.csv").read_bytes(),
    ) == first  # deterministic


def test_cli_bad_input_exits_2_and_writes_nothing(real_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(real_corpus, corpus)
    with open(corpus / "prose" / "b.jsonl", "a") as fh:
        fh.write('{"text": "fine"}\n{"text": broken\n')
    runner = CliRunner()
    out = tmp_path / "out"
    base = [
        "--quiet",
        "--workers",
        "1",
        "entropy",
        str(corpus),
        "--out",
        str(out),
        "--max-tokens-per-domain",
        "20000",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "mixlab.cli", *base], capture_output=True, text=True, env=_env_with_src()
    )
    assert result.returncode == 2, result.stderr
    assert "b.jsonl:" in result.stderr and "malformed JSON" in result.stderr
    assert not out.exists()
    bad_measure = runner.invoke(app, [*base, "--measures", "se,xx"])
    assert isinstance(bad_measure.exception, BadInput) and "--measures" in cli_message(bad_measure.exception)
    result = runner.invoke(app, [*base, "--skip-bad-rows", "--measures", "ce"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "entropy.json").read_text())
    assert report["domains"]["prose"]["skipped_rows"] == 1
    assert [m.name for m in read_mixtures(out / "mixtures.csv")] == ["natural", "uniform", "ce"]
