"""`score` and `sample` end to end on the demo corpus: the scores.parquet and SAMPLE_DIR contracts,
resumability, determinism, domain constraints and bad input through the CLI."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import types
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.errors import BadInput
from mixlab.samplemix.sample import SampleConfig, sample_corpus
from mixlab.samplemix.score import ScoreConfig, score_corpus
from mixlab.samplemix.scores_file import SCORE_COLUMNS


@pytest.fixture(scope="module")
def scored(demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "scores.parquet"
    report = score_corpus(demo_corpus, out, ScoreConfig(quality="heuristic", annotate_n=600, seed=0))
    return out, report


def test_scores_parquet_contract(scored) -> None:
    out, report = scored
    table = pq.read_table(out)
    assert tuple(table.column_names) == SCORE_COLUMNS
    df = table.to_pandas()
    assert len(df) == report["documents"] and df["doc_id"].is_unique
    assert df["tokens"].min() > 0
    assert df["quality"].between(0, 9).all() and df["diversity"].between(0, 1).all()
    assert df["weight"].between(0, 1).all() and df["diversity"].max() == 1.0
    assert df["cluster"].nunique() == report["clusters"]
    means = df.groupby("domain")["quality"].mean()
    assert means["spam"] < means["wiki"], means.to_dict()
    for head in ("ordinal", "classification"):
        assert set(report["heads"][head]) == {"acc", "mae", "mse", "close_acc", "n"}
    assert (
        json.loads((out.parent / "scores.parquet.work" / "quality_report.json").read_text())["annotated"]
        == 600
    )


def test_scoring_resumes_from_the_shards_it_finished(scored, demo_corpus) -> None:
    out, _ = scored
    shards = out.parent / "scores.parquet.work" / "shards"
    stamps = {p.name: p.stat().st_mtime_ns for p in shards.iterdir()}
    before = pq.read_table(out)
    score_corpus(demo_corpus, out, ScoreConfig(quality="heuristic", annotate_n=600, seed=0))
    assert {p.name: p.stat().st_mtime_ns for p in shards.iterdir()} == stamps
    assert pq.read_table(out).equals(before)


def test_a_work_dir_of_other_settings_starts_afresh(scored, demo_corpus, tmp_path, monkeypatch) -> None:
    # a work dir from before the samplemix split: settings version 1, and pickles naming a module that is gone
    out, _ = scored
    copy = tmp_path / "scores.parquet"
    shutil.copytree(out.parent / "scores.parquet.work", tmp_path / "scores.parquet.work")
    work = tmp_path / "scores.parquet.work"
    (work / "config.json").write_text(json.dumps({**json.loads((work / "config.json").read_text()), "v": 1}))
    gone = types.ModuleType("mixlab.samplemix.pipeline")

    class EmbedResult:
        pass

    EmbedResult.__module__, EmbedResult.__qualname__ = gone.__name__, "EmbedResult"
    gone.EmbedResult = EmbedResult
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, gone.__name__, gone)
        legacy = pickle.dumps(EmbedResult())
    for candidates in (work / "shards").glob("*.cand.pkl"):
        candidates.write_bytes(legacy)
    score_corpus(demo_corpus, copy, ScoreConfig(quality="heuristic", annotate_n=600, seed=0))
    assert json.loads((work / "config.json").read_text())["v"] == 2
    assert pq.read_table(copy).equals(pq.read_table(out))


def test_sample_dir_contract_and_determinism(scored, demo_corpus, tmp_path) -> None:
    scores, _ = scored
    pool_tokens = pq.read_table(scores, columns=["tokens"]).column(0).to_numpy().sum()
    budget = 0.6 * pool_tokens
    config = SampleConfig(budget_tokens=budget, max_repeats=3, seed=5)
    summary = sample_corpus(demo_corpus, scores, tmp_path / "a", config)
    counts = pq.read_table(tmp_path / "a" / "counts.parquet").to_pandas()
    assert list(counts.columns) == ["doc_id", "domain", "tokens", "count"] and counts["count"].max() <= 3
    assert summary["realised_tokens"] == int((counts["count"] * counts["tokens"]).sum())
    assert abs(summary["realised_tokens"] / budget - 1) < 0.05
    data = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "a" / "data").glob("*.parquet"))])
    assert Counter(data.column("id").to_pylist()) == {
        d: c for d, c in zip(counts["doc_id"], counts["count"], strict=True) if c
    }
    assert set(summary) >= {"budget_tokens", "realised_tokens", "domains", "repeats_histogram"}
    assert sum(summary["repeats_histogram"].values()) == len(counts)
    assert sum(d["after"] for d in summary["domains"].values()) == pytest.approx(1.0)
    assert (tmp_path / "a" / "summary.png").stat().st_size > 1000
    again = sample_corpus(demo_corpus, scores, tmp_path / "b", config)
    assert again == summary
    assert pq.read_table(tmp_path / "b" / "data" / "part-00000.parquet").equals(
        pq.read_table(tmp_path / "a" / "data" / "part-00000.parquet")
    )
    other = sample_corpus(demo_corpus, scores, tmp_path / "c", SampleConfig(budget_tokens=budget, seed=6))
    assert other["realised_tokens"] != summary["realised_tokens"]
    ids = data.column("id").to_pylist()
    assert ids != sorted(ids, key=counts["doc_id"].tolist().index)  # shuffled, not in corpus order


def test_cli_target_mixture_and_bad_input(scored, demo_corpus, tmp_path) -> None:
    scores, _ = scored
    runner = CliRunner()
    mixture = tmp_path / "mixture.json"
    domains = sorted(os.listdir(demo_corpus))
    domains = [d for d in domains if (demo_corpus / d).is_dir()]
    mixture.write_text(json.dumps({"name": "flat", "weights": dict.fromkeys(domains, 1.0)}))
    result = runner.invoke(
        app,
        [
            "--seed",
            "1",
            "--quiet",
            "sample",
            str(demo_corpus),
            "--scores",
            str(scores),
            "--budget-tokens",
            "200000",
            "--target-mixture",
            str(mixture),
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    for d in domains:
        assert summary["domains"][d]["budget_tokens"] == pytest.approx(200000 / len(domains))
    bad = runner.invoke(
        app,
        [
            "sample",
            str(demo_corpus),
            "--scores",
            str(scores),
            "--budget-tokens",
            "1e5",
            "--min-share",
            "wiki",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert isinstance(bad.exception, BadInput) and "DOMAIN=SHARE" in str(bad.exception)
    with pytest.raises(BadInput, match="cannot be met with `max_repeats` 1"):
        sample_corpus(demo_corpus, scores, tmp_path / "y", SampleConfig(budget_tokens=1e9, max_repeats=1))
    assert not (tmp_path / "y").exists()
    broken = tmp_path / "broken.parquet"
    pq.write_table(pq.read_table(scores).drop(["diversity"]), broken)
    with pytest.raises(BadInput, match="missing column.*diversity"):
        sample_corpus(demo_corpus, broken, tmp_path / "z", SampleConfig(budget_tokens=1e5))
    table = pq.read_table(scores)
    domain = table.column("domain").to_pylist()
    domain[5] = None
    column = table.schema.get_field_index("domain")
    pq.write_table(table.set_column(column, "domain", pa.array(domain, pa.string())), broken)
    with pytest.raises(BadInput, match="row 5: field 'domain' is missing"):
        sample_corpus(demo_corpus, broken, tmp_path / "z", SampleConfig(budget_tokens=1e5))
    pq.write_table(table.slice(1), broken)  # the shard layout in the metadata now covers one row too many
    with pytest.raises(BadInput, match=f"covers {table.num_rows} rows, the file has {table.num_rows - 1}"):
        sample_corpus(demo_corpus, broken, tmp_path / "z", SampleConfig(budget_tokens=1e5))
    assert not (tmp_path / "z").exists()
    assert "Example" in runner.invoke(app, ["score", "--help"]).output


def test_cli_score_with_a_bpe_trained_on_the_corpus(tmp_path, monkeypatch) -> None:
    """`--tokenizer bpe:N` is trained on the scored corpus; the tokens column counts with that tokenizer."""
    from mixcli import make_corpus
    from mixlab.corpus import Corpus, load_tokenizer, read_shard

    monkeypatch.setenv("MIXLAB_CACHE", str(tmp_path / "cache"))
    corpus = make_corpus(tmp_path / "corpus", shards=2, docs_per_shard=15)
    out = tmp_path / "scores.parquet"
    args = [
        "--quiet",
        "score",
        str(corpus),
        "--out",
        str(out),
        "--tokenizer",
        "bpe:300",
        "--annotate-n",
        "20",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    opened = Corpus.open(corpus)
    tokenizer = load_tokenizer("bpe:300", corpus=opened)
    expected = {}
    for shard in opened.shards():
        for batch in read_shard(shard, batch_size=64):
            expected.update(
                zip(batch.ids, (len(ids) for ids in tokenizer.encode_batch(batch.texts)), strict=True)
            )
    df = pq.read_table(out, columns=["doc_id", "tokens"]).to_pandas()
    assert len(df) == 60 and dict(zip(df["doc_id"], df["tokens"], strict=True)) == expected


def test_summary_plot_imports_nothing_off_the_main_thread() -> None:
    """`sample` draws its plot on a thread while the workers write; after `load_plotting` that thread must
    import nothing (a SIGTERM swallowed inside importlib leaves the import lock held: the thread would hang)."""
    script = """
import sys, threading
from mixlab.figures import load_plotting
from mixlab.samplemix.plots import summary_png
load_plotting()
summary = {"domains": {"a": {"before": 0.5, "after": 0.7}, "b": {"before": 0.5, "after": 0.3}},
           "alpha": 0.8, "repeats_histogram": {"0": 3, "2": 5}, "realised_tokens": 9, "budget_tokens": 10.0}
before, png = set(sys.modules), []
thread = threading.Thread(target=lambda: png.append(summary_png(summary)))
thread.start()
thread.join()
print(sorted(set(sys.modules) - before), png[0][:8] == b"\\x89PNG\\r\\n\\x1a\\n")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] True"
