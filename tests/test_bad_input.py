"""Broken inputs through the real `mixlab` script: every case must exit 2 with ONE stderr line that names
the file/row/field at fault, and leave no output (nor a temporary) behind.

Each case builds its inputs in a fresh directory and returns the command line plus the strings the error line
must contain. A case whose verb has not landed on this branch is skipped with that reason.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixcli import assert_one_line_cause, make_corpus, run_mixlab_forked, stdlib_texts, tree, write_jsonl


@dataclass(frozen=True)
class Case:
    id: str
    verb: str
    build: Callable[[Path], tuple[list[str], list[str]]]  # tmp dir -> (argv after the verb, names)
    allow: str = ""  # a path (prefix) that may appear by design, e.g. a resumable work dir


def _good(tmp: Path) -> Path:
    return make_corpus(tmp / "corpus", shards=2, docs_per_shard=5)


def _bad_row(tmp: Path, payload: bytes, name: str = "part-001.jsonl") -> tuple[Path, Path]:
    """A good corpus whose `code` domain gets one more shard holding `payload` after two good lines."""
    corpus = _good(tmp)
    shard = corpus / "code" / name
    good = b"".join(json.dumps({"text": t}).encode() + b"\n" for t in stdlib_texts("code", 2))
    shard.write_bytes(good + payload)
    return corpus, shard


def stats_args(corpus: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(corpus), "--json", str(tmp / "out" / "stats.json"), *extra]


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# --- corpus stats: the reader, the corpus layout, the tokenizer --------------------------------------------


def missing_corpus(tmp):
    return stats_args(tmp / "nope", tmp), ["nope", "does not exist"]


def no_domains(tmp):
    (tmp / "flat").mkdir()
    write_jsonl(tmp / "flat" / "a.jsonl", ["hello"])
    return stats_args(tmp / "flat", tmp), ["flat", "no domain"]


def empty_domain_dir(tmp):
    corpus = _good(tmp)
    (corpus / "empty").mkdir()
    return stats_args(corpus, tmp), ["empty", "empty domain"]


def empty_domain_zero_byte_file(tmp):
    corpus = _good(tmp)
    (corpus / "hollow").mkdir()
    (corpus / "hollow" / "a.jsonl").write_bytes(b"")
    return stats_args(corpus, tmp), ["hollow", "empty domain"]


def empty_document(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": "   "}\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "'text'", "empty document"]


def malformed_json(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": "unterminated\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "malformed JSON"]


def truncated_jsonl(tmp):
    corpus, shard = _bad_row(tmp, json.dumps({"text": "a full document cut in"}).encode()[:-9])
    return stats_args(corpus, tmp), [f"{shard}:3", "malformed JSON"]


def json_not_object(tmp):
    corpus, shard = _bad_row(tmp, b'["text", "in a list"]\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "JSON object"]


def undecodable_bytes(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": "caf\xe9 latin-1"}\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "undecodable"]


def missing_text_field(tmp):
    corpus, shard = _bad_row(tmp, b'{"body": "the text is under another key"}\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "missing field 'text'"]


def text_not_string(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": 42}\n')
    return stats_args(corpus, tmp), [f"{shard}:3", "'text'", "not a string"]


def wrong_text_field_option(tmp):
    corpus = _good(tmp)
    return stats_args(corpus, tmp, "--text-field", "content"), ["part-000.jsonl:1", "'content'"]


def truncated_gzip(tmp):
    corpus = _good(tmp)
    blob = gzip.compress(
        b"".join(json.dumps({"text": t}).encode() + b"\n" for t in stdlib_texts("prose", 30))
    )
    shard = corpus / "prose" / "part-009.jsonl.gz"
    shard.write_bytes(blob[: len(blob) // 2])
    return stats_args(corpus, tmp), [str(shard), "truncated or corrupt"]


def gzip_not_gzip(tmp):
    corpus = _good(tmp)
    shard = corpus / "prose" / "part-009.jsonl.gz"
    write_jsonl(shard, ["plain text pretending to be gzip"])
    return stats_args(corpus, tmp), [str(shard), "truncated or corrupt"]


def parquet_garbage(tmp):
    corpus = _good(tmp)
    shard = corpus / "code" / "part-009.parquet"
    shard.write_bytes(b"PAR1 this is not a parquet file at all" * 10)
    return stats_args(corpus, tmp), [str(shard), "parquet"]


def parquet_truncated(tmp):
    corpus = _good(tmp)
    blob = _parquet_bytes(pa.table({"text": stdlib_texts("code", 50)}))
    shard = corpus / "code" / "part-009.parquet"
    shard.write_bytes(blob[: len(blob) * 2 // 3])
    return stats_args(corpus, tmp), [str(shard), "parquet"]


def parquet_missing_column(tmp):
    corpus = _good(tmp)
    shard = corpus / "code" / "part-009.parquet"
    shard.write_bytes(_parquet_bytes(pa.table({"content": stdlib_texts("code", 3)})))
    return stats_args(corpus, tmp), [str(shard), "missing column 'text'"]


def parquet_null_text(tmp):
    corpus = _good(tmp)
    shard = corpus / "code" / "part-009.parquet"
    shard.write_bytes(_parquet_bytes(pa.table({"text": ["a real line of text", None]})))
    return stats_args(corpus, tmp), [str(shard), "row 1", "'text'"]


def txt_undecodable(tmp):
    corpus = _good(tmp)
    shard = corpus / "prose" / "notes.txt"
    shard.write_bytes(b"\xff\xfe\x00broken")
    return stats_args(corpus, tmp), [str(shard), "undecodable"]


def unknown_tokenizer(tmp):
    return stats_args(_good(tmp), tmp, "--tokenizer", "gpt7"), ["--tokenizer gpt7", "unknown tokenizer"]


def bpe_not_a_number(tmp):
    return stats_args(_good(tmp), tmp, "--tokenizer", "bpe:lots"), ["--tokenizer bpe:lots"]


def bpe_too_small(tmp):
    return stats_args(_good(tmp), tmp, "--tokenizer", "bpe:10"), ["--tokenizer bpe:10", "vocabulary size"]


def tokenizer_json_garbage(tmp):
    bad = tmp / "tok" / "tokenizer.json"
    bad.parent.mkdir()
    bad.write_text('{"model": "not really"}')
    return stats_args(_good(tmp), tmp, "--tokenizer", str(bad.parent)), [str(bad), "tokenizer.json"]


def manifest_unparseable(tmp):
    _good(tmp)
    manifest = tmp / "corpus.toml"
    manifest.write_text("[domains\ncode = 'corpus/code/*.jsonl'\n")
    return stats_args(manifest, tmp), [str(manifest), "cannot parse manifest"]


def manifest_glob_matches_nothing(tmp):
    _good(tmp)
    manifest = tmp / "corpus.yaml"
    manifest.write_text("domains:\n  code: corpus/code/*.jsonl\n  web: crawl/*.jsonl.gz\n")
    return stats_args(manifest, tmp), [str(manifest), "domains.web", "matches no file"]


def manifest_unsupported_file(tmp):
    _good(tmp)
    (tmp / "corpus" / "code" / "notes.csv").write_text("a,b\n")
    manifest = tmp / "corpus.toml"
    manifest.write_text("[domains]\ncode = ['corpus/code/*']\n")
    return stats_args(manifest, tmp), ["notes.csv", "domains.code", "unsupported"]


def bad_row_in_process_pool(tmp):
    """The cause must survive the trip back from a spawned worker process."""
    corpus, shard = _bad_row(tmp, b'{"text": "unterminated\n')
    return ["--workers", "2", "corpus", "stats", *stats_args(corpus, tmp)], [f"{shard}:3", "malformed JSON"]


def unknown_engine(tmp):
    return ["--engine", "spark", "corpus", "stats", *stats_args(_good(tmp), tmp)], ["--engine spark"]


STATS_CASES = [
    Case("missing-corpus", "corpus stats", missing_corpus),
    Case("no-domain-dirs", "corpus stats", no_domains),
    Case("empty-domain-dir", "corpus stats", empty_domain_dir),
    Case("empty-domain-zero-byte-file", "corpus stats", empty_domain_zero_byte_file),
    Case("empty-document", "corpus stats", empty_document),
    Case("malformed-json", "corpus stats", malformed_json),
    Case("truncated-jsonl", "corpus stats", truncated_jsonl),
    Case("json-not-object", "corpus stats", json_not_object),
    Case("undecodable-bytes", "corpus stats", undecodable_bytes),
    Case("missing-text-field", "corpus stats", missing_text_field),
    Case("text-not-string", "corpus stats", text_not_string),
    Case("wrong-text-field-option", "corpus stats", wrong_text_field_option),
    Case("truncated-jsonl-gz", "corpus stats", truncated_gzip),
    Case("jsonl-gz-not-gzip", "corpus stats", gzip_not_gzip),
    Case("parquet-garbage", "corpus stats", parquet_garbage),
    Case("parquet-truncated", "corpus stats", parquet_truncated),
    Case("parquet-missing-column", "corpus stats", parquet_missing_column),
    Case("parquet-null-text", "corpus stats", parquet_null_text),
    Case("txt-undecodable", "corpus stats", txt_undecodable),
    Case("unknown-tokenizer", "corpus stats", unknown_tokenizer),
    Case("bpe-not-a-number", "corpus stats", bpe_not_a_number),
    Case("bpe-too-small", "corpus stats", bpe_too_small),
    Case("tokenizer-json-garbage", "corpus stats", tokenizer_json_garbage),
    Case("manifest-unparseable", "corpus stats", manifest_unparseable),
    Case("manifest-glob-matches-nothing", "corpus stats", manifest_glob_matches_nothing),
    Case("manifest-unsupported-file", "corpus stats", manifest_unsupported_file),
    Case("bad-row-in-process-pool", "", bad_row_in_process_pool),
    Case("unknown-engine", "", unknown_engine),
]


# --- mixtures.csv / mixture.json through the `read_mixtures` API (the verbs that take them add CLI cases) ---

MIXTURE_FILES = {
    "negative-weight": (
        "mixtures.csv",
        "name,code,prose\nm1,0.5,0.5\nm2,-0.2,1.2\n",
        ["row 3", "'code'", "negative"],
    ),
    "nan-weight": ("mixtures.csv", "name,code,prose\nm1,nan,0.5\n", ["row 2", "'code'", "nan"]),
    "inf-weight": ("mixtures.csv", "name,code,prose\nm1,0.5,inf\n", ["row 2", "'prose'", "inf"]),
    "all-zero": ("mixtures.csv", "name,code,prose\nm1,0,0\n", ["row 2", "all zero"]),
    "not-a-number": ("mixtures.csv", "name,code,prose\nm1,half,0.5\n", ["row 2", "'code'", "not a number"]),
    "ragged-row": ("mixtures.csv", "name,code,prose\nm1,0.5\n", ["row 2", "fields"]),
    "duplicate-name": ("mixtures.csv", "name,code,prose\nm1,1,0\nm1,0,1\n", ["row 3", "duplicate", "m1"]),
    "duplicate-domain": ("mixtures.csv", "name,code,code\nm1,1,0\n", ["duplicate column"]),
    "no-name-column": ("mixtures.csv", "code,prose\n0.5,0.5\n", ["header"]),
    "header-only": ("mixtures.csv", "name,code,prose\n", ["no mixtures"]),
    "empty-file": ("mixtures.csv", "", ["empty"]),
    "undecodable": ("mixtures.csv", b"name,caf\xe9\nm1,1\n", ["undecodable"]),
    "json-not-json": ("mixture.json", '{"name": "m", "weights": {"code": 1,}', ["not valid JSON"]),
    "json-no-weights": ("mixture.json", '{"name": "m", "code": 1}', ["weights"]),
    "json-negative": (
        "mixture.json",
        '{"name": "m", "weights": {"code": -1, "prose": 2}}',
        ["'code'", "negative"],
    ),
    "json-all-zero": ("mixture.json", '{"name": "m", "weights": {"code": 0}}', ["all zero"]),
}


@pytest.mark.parametrize("case", sorted(MIXTURE_FILES))
def test_read_mixtures_bad_input(case: str, tmp_path: Path) -> None:
    from mixlab.errors import BadInput
    from mixlab.mixture import read_mixtures

    name, content, names = MIXTURE_FILES[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(BadInput) as info:
        read_mixtures(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for n in names:
        assert n in message, f"{n!r} not named in: {message}"


@pytest.mark.parametrize("meta", ["null", "[1, 2]", '"text"', "3"])
def test_mixture_json_with_bad_meta_is_bad_input(meta: str, tmp_path: Path) -> None:
    from mixlab.errors import BadInput
    from mixlab.mixture import read_mixtures

    path = tmp_path / "mixture.json"
    path.write_text(f'{{"name": "m", "weights": {{"code": 1}}, "meta": {meta}}}')
    with pytest.raises(BadInput, match="meta") as info:
        read_mixtures(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("meta", [{"name": "other"}, {"where": "x"}, {"seed": 3, "law": {"a": [1, 2]}}, {}])
def test_mixture_json_keeps_meta_as_given(meta: dict, tmp_path: Path) -> None:
    """Meta keys that clash with `from_weights` parameters (name, where) are plain metadata."""
    from mixlab.mixture import read_mixtures

    path = tmp_path / "mixture.json"
    path.write_text(json.dumps({"name": "m", "weights": {"code": 1, "web": 3}, "meta": meta}))
    [mixture] = read_mixtures(path)
    assert mixture.name == "m"
    assert mixture.weights == {"code": 0.25, "web": 0.75}
    assert mixture.meta == meta


# --- corpus demo: its options ---------------------------------------------------------------------------


def demo_nonpositive_cap(tmp):
    return ["--out", str(tmp / "demo"), "--max-mb-per-domain", "0"], ["--max-mb-per-domain", "positive"]


def demo_unknown_domain(tmp):
    return ["--out", str(tmp / "demo"), "--domains", "tweets"], ["tweets", "unknown demo domain"]


DEMO_CASES = [
    Case("demo-nonpositive-cap", "corpus demo", demo_nonpositive_cap),
    Case("demo-unknown-domain", "corpus demo", demo_unknown_domain),
]


# --- fit / evaluate / predict / optimize / export: mixtures.csv, runs.csv, law.json --------------------


@functools.cache
def _sweep_files() -> dict[str, bytes]:
    """A valid sweep (8 runs x 3 domains x 6 steps from a known BiMix law), its fitted laws and token counts."""
    import numpy as np

    from mixlab.laws import get_law, write_runs
    from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
    from mixlab.mixture import write_mixtures

    obs = synthetic_bimix(
        dirichlet_mixtures(8, 3, seed=1), np.linspace(500, 3000, 6), [0.08, 0.15, 0.05], [30.0, 50.0, 20.0],
        [0.45, 0.6, 0.35], [1.8, 2.2, 1.2], domains=("web", "code", "books"),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_mixtures(d / "mixtures.csv", obs.mixtures(), obs.domains)
        write_runs(d / "runs.csv", obs.to_frame())
        (d / "law.json").write_text(json.dumps(get_law("bimix").fit(obs).to_dict()))
        (d / "law_dml.json").write_text(json.dumps(get_law("dml", step=3000.0).fit(obs).to_dict()))
        (d / "tokens.json").write_text(json.dumps({"web": 6e8, "code": 1e8, "books": 6e8}))
        (d / "mixture.json").write_text(
            json.dumps({"name": "m", "weights": {"web": 0.5, "code": 0.2, "books": 0.3}})
        )
        return {p.name: p.read_bytes() for p in d.iterdir()}


def _sweep(tmp: Path) -> Path:
    d = tmp / "in"
    d.mkdir(exist_ok=True)
    for name, blob in _sweep_files().items():
        (d / name).write_bytes(blob)
    return d


def _edit_row(path: Path, row: int, column: str, value: str) -> None:
    """Set `column` of CSV line `row` (1-based, header = 1) to `value`."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def fit_args(d: Path, tmp: Path, runs: str = "runs.csv", mixtures: str = "mixtures.csv") -> list[str]:
    return ["-m", str(d / mixtures), "-r", str(d / runs), "--out", str(tmp / "out" / "law.json")]


def runs_nan_loss(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 4, "loss", "nan")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 4", "'loss'"]


def runs_inf_loss(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 7, "loss", "inf")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 7", "'loss'"]


def runs_zero_loss(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 5, "loss", "0")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 5", "'loss'", "positive"]


def runs_text_step(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 3, "step", "early")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 3", "'step'", "not a number"]


def runs_duplicate_key(tmp):
    d = _sweep(tmp)
    lines = (d / "runs.csv").read_text().splitlines()
    (d / "runs.csv").write_text("\n".join([*lines, lines[5]]) + "\n")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row {len(lines) + 1}", "duplicate", "row 6"]


def runs_unknown_run(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 2, "run", "ghost")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 2", "'ghost'", "mixtures.csv"]


def runs_unknown_domain(tmp):
    d = _sweep(tmp)
    _edit_row(d / "runs.csv", 3, "domain", "webb")
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row 3", "'webb'", "mixtures.csv"]


def runs_missing_loss_column(tmp):
    d = _sweep(tmp)
    lines = (d / "runs.csv").read_text().splitlines()
    (d / "runs.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    return fit_args(d, tmp), [str(d / "runs.csv"), "missing column 'loss'"]


def runs_truncated(tmp):
    d = _sweep(tmp)
    text = (d / "runs.csv").read_text()
    (d / "runs.csv").write_text(text[: len(text) // 2].rsplit(",", 2)[0])
    n = text[: len(text) // 2].count("\n") + 1
    return fit_args(d, tmp), [f"{d / 'runs.csv'}: row {n}"]


def runs_undecodable(tmp):
    d = _sweep(tmp)
    (d / "runs.csv").write_bytes((d / "runs.csv").read_bytes().replace(b"run3", b"r\xffn3", 1))
    return fit_args(d, tmp), [str(d / "runs.csv"), "undecodable"]


def runs_parquet_garbage(tmp):
    d = _sweep(tmp)
    (d / "runs.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4)
    return fit_args(d, tmp, runs="runs.parquet"), [str(d / "runs.parquet")]


def runs_empty(tmp):
    d = _sweep(tmp)
    (d / "runs.csv").write_text("run,step,tokens,domain,loss\n")
    return fit_args(d, tmp), [str(d / "runs.csv"), "no observations"]


def fit_mixtures_negative(tmp):
    d = _sweep(tmp)
    _edit_row(d / "mixtures.csv", 3, "code", "-0.1")
    return fit_args(d, tmp), [f"{d / 'mixtures.csv'}: row 3", "'code'", "negative"]


def fit_mixtures_nan(tmp):
    d = _sweep(tmp)
    _edit_row(d / "mixtures.csv", 2, "web", "nan")
    return fit_args(d, tmp), [f"{d / 'mixtures.csv'}: row 2", "'web'"]


def fit_mixtures_all_zero(tmp):
    d = _sweep(tmp)
    for col in ("web", "code", "books"):
        _edit_row(d / "mixtures.csv", 4, col, "0")
    return fit_args(d, tmp), [f"{d / 'mixtures.csv'}: row 4", "all zero"]


def fit_missing_mixtures(tmp):
    d = _sweep(tmp)
    return fit_args(d, tmp, mixtures="nope.csv"), [str(d / "nope.csv"), "does not exist"]


def fit_unknown_law(tmp):
    return [*fit_args(_sweep(tmp), tmp), "--law", "magic"], ["unknown law 'magic'"]


def fit_bad_hyper(tmp):
    return [*fit_args(_sweep(tmp), tmp), "--hyper", "colour=blue"], ["bimix", "hyper-parameter"]


def evaluate_unknown_test_run(tmp):
    d = _sweep(tmp)
    return [
        *fit_args(d, tmp), "--protocol", "unseen", "--test-runs", "run0,ghost", "--plots", str(tmp / "out" / "plots"),
    ], ["'ghost'"]  # fmt: skip


def evaluate_unknown_protocol(tmp):
    return [*fit_args(_sweep(tmp), tmp), "--protocol", "guess"], ["unknown protocol 'guess'"]


def predict_args(d: Path, tmp: Path, law: str = "law.json", *extra: str) -> list[str]:
    return [
        str(d / law),
        "-m",
        str(d / "mixtures.csv"),
        "--steps",
        "5000",
        "--out",
        str(tmp / "out" / "p.csv"),
        *extra,
    ]


def law_from_another_law(tmp):
    """A dml law.json relabelled as bimix: its params do not have bimix's shape."""
    d = _sweep(tmp)
    law = json.loads((d / "law_dml.json").read_text())
    law["law"] = "bimix"
    (d / "law.json").write_text(json.dumps(law))
    return predict_args(d, tmp), [str(d / "law.json"), "malformed law file"]


def law_unknown_name(tmp):
    d = _sweep(tmp)
    law = json.loads((d / "law.json").read_text())
    law["law"] = "bimix2"
    (d / "law.json").write_text(json.dumps(law))
    return predict_args(d, tmp), [str(d / "law.json"), "'law'"]


def law_truncated(tmp):
    d = _sweep(tmp)
    (d / "law.json").write_bytes((d / "law.json").read_bytes()[:100])
    return predict_args(d, tmp), [str(d / "law.json"), "not valid JSON"]


def law_missing(tmp):
    d = _sweep(tmp)
    return predict_args(d, tmp, "gone.json"), [str(d / "gone.json"), "does not exist"]


def predict_unknown_domain(tmp):
    d = _sweep(tmp)
    (d / "mixtures.csv").write_text("name,web,code,poetry\nm1,0.5,0.3,0.2\n")
    return predict_args(d, tmp), ["'m1'", "'poetry'", "law"]


def predict_negative_steps(tmp):
    d = _sweep(tmp)
    return [
        str(d / "law.json"),
        "-m",
        str(d / "mixtures.csv"),
        "--steps",
        "-5",
        "--out",
        str(tmp / "out" / "p.csv"),
    ], ["--steps"]


def predict_fixed_step_law_elsewhere(tmp):
    d = _sweep(tmp)
    return predict_args(d, tmp, "law_dml.json"), ["dml", "step 5000"]


def optimize_args(d: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(d / "law.json"), "--steps", "20000", "--out", str(tmp / "out" / "mixture.json"), *extra]


def optimize_budget_over_caps(tmp):
    d = _sweep(tmp)
    args = optimize_args(
        d, tmp, "--available", str(d / "tokens.json"), "--target-tokens", "1e10", "--max-epochs", "1"
    )
    return args, ["repetition caps"]


def optimize_available_missing_domain(tmp):
    d = _sweep(tmp)
    (d / "tokens.json").write_text(json.dumps({"web": 6e8, "code": 1e8}))
    args = optimize_args(d, tmp, "--available", str(d / "tokens.json"), "--target-tokens", "1e9")
    return args, [str(d / "tokens.json"), "'books'"]


def optimize_available_negative(tmp):
    d = _sweep(tmp)
    (d / "tokens.json").write_text(json.dumps({"web": 6e8, "code": -1, "books": 6e8}))
    args = optimize_args(d, tmp, "--available", str(d / "tokens.json"), "--target-tokens", "1e9")
    return args, [str(d / "tokens.json"), "'code'"]


def optimize_min_weight_infeasible(tmp):
    return optimize_args(_sweep(tmp), tmp, "--min-weight", "0.5"), ["minimum shares", "1.5"]


def export_negative_weight(tmp):
    d = _sweep(tmp)
    (d / "mixture.json").write_text(json.dumps({"name": "m", "weights": {"web": 1.5, "code": -0.5}}))
    return [str(d / "mixture.json"), "--format", "megatron"], [str(d / "mixture.json"), "'code'", "negative"]


def export_nan_weight(tmp):
    d = _sweep(tmp)
    (d / "mixture.json").write_text('{"name": "m", "weights": {"web": NaN, "code": 1}}')
    return [str(d / "mixture.json"), "--format", "olmix"], [str(d / "mixture.json"), "'web'"]


def export_unknown_format(tmp):
    d = _sweep(tmp)
    return [str(d / "mixture.json"), "--format", "parquet"], ["export format 'parquet'"]


LAWS_CASES = [
    Case("runs-nan-loss", "fit", runs_nan_loss),
    Case("runs-inf-loss", "fit", runs_inf_loss),
    Case("runs-zero-loss", "fit", runs_zero_loss),
    Case("runs-text-step", "fit", runs_text_step),
    Case("runs-duplicate-key", "fit", runs_duplicate_key),
    Case("runs-unknown-run", "fit", runs_unknown_run),
    Case("runs-unknown-domain", "fit", runs_unknown_domain),
    Case("runs-missing-loss-column", "fit", runs_missing_loss_column),
    Case("runs-truncated", "fit", runs_truncated),
    Case("runs-undecodable", "fit", runs_undecodable),
    Case("runs-parquet-garbage", "fit", runs_parquet_garbage),
    Case("runs-empty", "fit", runs_empty),
    Case("fit-mixtures-negative", "fit", fit_mixtures_negative),
    Case("fit-mixtures-nan", "fit", fit_mixtures_nan),
    Case("fit-mixtures-all-zero", "fit", fit_mixtures_all_zero),
    Case("fit-missing-mixtures", "fit", fit_missing_mixtures),
    Case("fit-unknown-law", "fit", fit_unknown_law),
    Case("fit-bad-hyper", "fit", fit_bad_hyper),
    Case("evaluate-unknown-test-run", "evaluate", evaluate_unknown_test_run),
    Case("evaluate-unknown-protocol", "evaluate", evaluate_unknown_protocol),
    Case("law-from-another-law", "predict", law_from_another_law),
    Case("law-unknown-name", "predict", law_unknown_name),
    Case("law-truncated", "predict", law_truncated),
    Case("law-missing", "predict", law_missing),
    Case("predict-unknown-domain", "predict", predict_unknown_domain),
    Case("predict-negative-steps", "predict", predict_negative_steps),
    Case("predict-fixed-step-law-elsewhere", "predict", predict_fixed_step_law_elsewhere),
    Case("optimize-budget-over-caps", "optimize", optimize_budget_over_caps),
    Case("optimize-available-missing-domain", "optimize", optimize_available_missing_domain),
    Case("optimize-available-negative", "optimize", optimize_available_negative),
    Case("optimize-min-weight-infeasible", "optimize", optimize_min_weight_infeasible),
    Case("export-negative-weight", "export", export_negative_weight),
    Case("export-nan-weight", "export", export_nan_weight),
    Case("export-unknown-format", "export", export_unknown_format),
]


# --- entropy --------------------------------------------------------------------------------------------


def entropy_args(corpus: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(corpus), "--out", str(tmp / "out" / "entropy"), *extra]


def entropy_missing_corpus(tmp):
    return entropy_args(tmp / "nope", tmp), ["nope", "does not exist"]


def entropy_bad_row(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": "caf\xe9"}\n')
    return entropy_args(corpus, tmp), [f"{shard}:3", "undecodable"]


def entropy_missing_text_field(tmp):
    corpus, shard = _bad_row(tmp, b'{"content": "wrong key"}\n')
    return entropy_args(corpus, tmp), [f"{shard}:3", "missing field 'text'"]


def entropy_truncated_gzip(tmp):
    args, names = truncated_gzip(tmp)
    return entropy_args(Path(args[0]), tmp), names


def entropy_parquet_garbage(tmp):
    args, names = parquet_garbage(tmp)
    return entropy_args(Path(args[0]), tmp), names


def entropy_empty_domain(tmp):
    args, names = empty_domain_dir(tmp)
    return entropy_args(Path(args[0]), tmp), names


def entropy_every_row_skipped(tmp):
    corpus = _good(tmp)
    (corpus / "junk").mkdir()
    (corpus / "junk" / "a.jsonl").write_bytes(b'{"text": ""}\n{"oops": 1}\nnot json\n')
    return entropy_args(corpus, tmp, "--skip-bad-rows"), ["junk", "no tokens"]


def entropy_unknown_measure(tmp):
    return entropy_args(_good(tmp), tmp, "--measures", "se,xe"), ["--measures", "xe"]


def entropy_seq_len_one(tmp):
    return entropy_args(_good(tmp), tmp, "--seq-len", "1"), ["--seq-len 1"]


def entropy_token_cap_below_window(tmp):
    return entropy_args(_good(tmp), tmp, "--seq-len", "64", "--max-tokens-per-domain", "10"), [
        "--max-tokens-per-domain 10"
    ]


def entropy_unknown_embedder(tmp):
    return entropy_args(_good(tmp), tmp, "--measures", "se,vne", "--embedder", "word2vec"), [
        "--embedder word2vec"
    ]


def entropy_unknown_tokenizer(tmp):
    return entropy_args(_good(tmp), tmp, "--tokenizer", "llama9"), ["--tokenizer llama9"]


ENTROPY_CASES = [
    Case("entropy-missing-corpus", "entropy", entropy_missing_corpus),
    Case("entropy-undecodable-row", "entropy", entropy_bad_row),
    Case("entropy-missing-text-field", "entropy", entropy_missing_text_field),
    Case("entropy-truncated-gzip", "entropy", entropy_truncated_gzip),
    Case("entropy-parquet-garbage", "entropy", entropy_parquet_garbage),
    Case("entropy-empty-domain", "entropy", entropy_empty_domain),
    Case("entropy-every-row-skipped", "entropy", entropy_every_row_skipped),
    Case("entropy-unknown-measure", "entropy", entropy_unknown_measure),
    Case("entropy-seq-len-one", "entropy", entropy_seq_len_one),
    Case("entropy-token-cap-below-window", "entropy", entropy_token_cap_below_window),
    Case("entropy-unknown-embedder", "entropy", entropy_unknown_embedder),
    Case("entropy-unknown-tokenizer", "entropy", entropy_unknown_tokenizer),
]


# --- score / sample ---------------------------------------------------------------------------------------


@functools.cache
def _scored_corpus() -> dict[str, bytes]:
    """The good corpus and its scores.parquet, made once by the real `mixlab score`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = _good(root)
        out = root / "scores.parquet"
        args = ["-q", "--workers", "1", "score", str(corpus), "--out", str(out), "--annotate-n", "20"]
        result = run_mixlab_forked(*args, "--clusters", "2", env={"MIXLAB_CACHE": str(root / "cache")})
        assert result.returncode == 0, result.stderr
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in [out, *corpus.rglob("*.jsonl")]}


def _scored(tmp: Path) -> tuple[Path, Path]:
    for name, blob in _scored_corpus().items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(blob)
    return tmp / "corpus", tmp / "scores.parquet"


def score_args(corpus: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(corpus), "--out", str(tmp / "out" / "scores.parquet"), "--annotate-n", "20", *extra]


def score_bad_row(tmp):
    corpus, shard = _bad_row(tmp, b'{"text": 3.5}\n')
    return score_args(corpus, tmp), [f"{shard}:3", "'text'"]


def score_missing_corpus(tmp):
    return score_args(tmp / "nope", tmp), ["nope", "does not exist"]


def score_unknown_quality(tmp):
    return score_args(_good(tmp), tmp, "--quality", "vibes"), ["vibes"]


def score_unknown_embedder(tmp):
    return score_args(_good(tmp), tmp, "--embedder", "word2vec"), ["word2vec"]


def sample_args(corpus: Path, scores: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(corpus), "--scores", str(scores), "--out", str(tmp / "out" / "sample"), *extra]


def sample_budget_over_corpus(tmp):
    corpus, scores = _scored(tmp)
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1e9", "--max-repeats", "1"), [
        "--budget-tokens",
        "--max-repeats 1",
    ]


def sample_negative_budget(tmp):
    corpus, scores = _scored(tmp)
    return sample_args(corpus, scores, tmp, "--budget-tokens", "-5"), ["--budget-tokens"]


def sample_missing_scores(tmp):
    corpus, _ = _scored(tmp)
    return sample_args(corpus, tmp / "gone.parquet", tmp, "--budget-tokens", "1000"), ["gone.parquet"]


def sample_scores_not_parquet(tmp):
    corpus, _ = _scored(tmp)
    shard = corpus / "code" / "part-000.jsonl"
    return sample_args(corpus, shard, tmp, "--budget-tokens", "1000"), [str(shard), "parquet"]


def sample_scores_truncated(tmp):
    corpus, scores = _scored(tmp)
    scores.write_bytes(scores.read_bytes()[:-100])
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000"), [str(scores)]


def sample_scores_of_another_corpus(tmp):
    corpus, scores = _scored(tmp)
    (corpus / "prose").rename(corpus / "poetry")
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000"), [str(scores), "not in corpus"]


def sample_unknown_share_domain(tmp):
    corpus, scores = _scored(tmp)
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000", "--min-share", "poetry=0.5"), [
        "--min-share poetry=0.5",
        "unknown domain",
    ]


def sample_target_mixture_negative(tmp):
    corpus, scores = _scored(tmp)
    target = tmp / "target.json"
    target.write_text(json.dumps({"name": "t", "weights": {"code": -1, "prose": 2}}))
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000", "--target-mixture", str(target)), [
        str(target),
        "negative",
    ]


def sample_target_mixture_unknown_domain(tmp):
    corpus, scores = _scored(tmp)
    target = tmp / "target.csv"
    target.write_text("name,code,poetry\nt,0.5,0.5\n")
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000", "--target-mixture", str(target)), [
        "poetry"
    ]


SAMPLEMIX_CASES = [
    # the finished shards' files in <out>.work/ are the resumable checkpoint, kept by design
    Case("score-bad-row", "score", score_bad_row, allow="out/scores.parquet.work"),
    Case("score-missing-corpus", "score", score_missing_corpus),
    Case("score-unknown-quality", "score", score_unknown_quality),
    Case("score-unknown-embedder", "score", score_unknown_embedder),
    Case("sample-budget-over-corpus-max-repeats-1", "sample", sample_budget_over_corpus),
    Case("sample-negative-budget", "sample", sample_negative_budget),
    Case("sample-missing-scores", "sample", sample_missing_scores),
    Case("sample-scores-not-parquet", "sample", sample_scores_not_parquet),
    Case("sample-scores-truncated", "sample", sample_scores_truncated),
    Case("sample-scores-of-another-corpus", "sample", sample_scores_of_another_corpus),
    Case("sample-unknown-share-domain", "sample", sample_unknown_share_domain),
    Case("sample-target-mixture-negative", "sample", sample_target_mixture_negative),
    Case("sample-target-mixture-unknown-domain", "sample", sample_target_mixture_unknown_domain),
]


# --- sweep / mixtures random ------------------------------------------------------------------------------


def sweep_args(tmp: Path, mixtures_csv: str, *extra: str) -> tuple[list[str], Path]:
    corpus = _good(tmp)
    mixtures = tmp / "mixtures.csv"
    mixtures.write_text(mixtures_csv)
    args = [
        str(corpus),
        "--mixtures",
        str(mixtures),
        "--out",
        str(tmp / "out" / "sweep"),
        "--tokenizer",
        "gpt2",
    ]
    return [*args, "--tokens-per-run", "4096", *extra], mixtures


def sweep_unknown_domain(tmp):
    args, mixtures = sweep_args(tmp, "name,code,poetry\nm1,0.5,0.5\n")
    return args, ["poetry"]


def sweep_negative_weight(tmp):
    args, mixtures = sweep_args(tmp, "name,code,prose\nm1,1.2,-0.2\n")
    return args, [f"{mixtures}: row 2", "'prose'", "negative"]


def sweep_nan_weight(tmp):
    args, mixtures = sweep_args(tmp, "name,code,prose\nm1,nan,1\n")
    return args, [f"{mixtures}: row 2", "'code'"]


def sweep_all_zero(tmp):
    args, mixtures = sweep_args(tmp, "name,code,prose\nm1,0,0\n")
    return args, [f"{mixtures}: row 2", "all zero"]


def sweep_unknown_model(tmp):
    args, _ = sweep_args(tmp, "name,code,prose\nm1,0.5,0.5\n", "--model", "gpt5")
    return args, ["gpt5"]


def random_mixtures_unknown_prior(tmp):
    return ["--n", "4", "--prior", "lucky", "--out", str(tmp / "out" / "m.csv"), "--domains", "a,b"], [
        "lucky"
    ]


def random_mixtures_zero_n(tmp):
    args = ["--n", "0", "--prior", "uniform", "--domains", "a,b", "--out", str(tmp / "out" / "m.csv")]
    return args, ["--n"]


PROXY_CASES = [
    Case("sweep-unknown-domain", "sweep", sweep_unknown_domain),
    Case("sweep-negative-weight", "sweep", sweep_negative_weight),
    Case("sweep-nan-weight", "sweep", sweep_nan_weight),
    Case("sweep-all-zero", "sweep", sweep_all_zero),
    Case("sweep-unknown-model", "sweep", sweep_unknown_model),
    Case("random-mixtures-unknown-prior", "mixtures random", random_mixtures_unknown_prior),
    Case("random-mixtures-zero-n", "mixtures random", random_mixtures_zero_n),
]


# --- the table ----------------------------------------------------------------------------------------

CASES = STATS_CASES + DEMO_CASES + ENTROPY_CASES + LAWS_CASES + SAMPLEMIX_CASES + PROXY_CASES


@dataclass
class Outcome:
    result: subprocess.CompletedProcess[str] | None = None
    names: list[str] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every selected case, each its own `mixlab` process (forked), a few at a time."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    cache = tmp_path_factory.mktemp("cache")

    def run(case: Case) -> Outcome:
        out = Outcome()
        try:
            tmp = tmp_path_factory.mktemp(case.id)
            args, out.names = case.build(tmp)
            out.before = tree(tmp)
            argv = ["--quiet", *case.verb.split(), *args]
            out.result = run_mixlab_forked(*argv, cwd=tmp, env={"MIXLAB_CACHE": str(cache)})
            out.after = tree(tmp)
        except Exception as exc:  # reported by the case's own test
            out.error = exc
        return out

    todo = [c for c in CASES if c.id in selected]
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip([c.id for c in todo], pool.map(run, todo), strict=True))


PARAMS = [pytest.param(c, id=c.id) for c in CASES]


# The first case's setup runs every case's `mixlab` process (~100 of them): more than the default per-test limit
# on a loaded machine, although each process takes seconds.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_exits_2_with_one_line_cause_and_no_output(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    out = outcomes[case.id]
    if out.error is not None:
        raise out.error
    assert "Traceback" not in out.result.stderr, out.result.stderr
    assert_one_line_cause(out.result, *out.names)
    changed = sorted(set(out.after.items()) ^ set(out.before.items()))
    if case.allow:  # the allowed path, what is under it, and the directories above it
        changed = [
            c for c in changed if not c[0].startswith(case.allow) and not case.allow.startswith(c[0] + "/")
        ]
    assert changed == [], f"files appeared or changed: {changed}"


def test_good_corpus_passes(tmp_path: Path) -> None:
    """The control: the corpus every case breaks is itself fine, so each failure above is the break's."""
    corpus = _good(tmp_path)
    result = run_mixlab_forked("--quiet", "corpus", "stats", *stats_args(corpus, tmp_path))
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["total"]["documents"] == 20


# --- issue 12: laws ---------------------------------------------------------------------------------------


def test_fit_with_every_step_zero_names_runs_csv_and_step(tmp_path: Path) -> None:
    """One evaluation per run, all at step 0: BiMix has no tuple with step > 0 to fit."""
    d = _sweep(tmp_path)
    runs = d / "runs.csv"
    lines = runs.read_text().splitlines()
    header = lines[0].split(",")
    first = [line.split(",") for line in lines[1:] if line.split(",")[header.index("step")] == "500"]
    for cells in first:
        cells[header.index("step")] = "0"
    runs.write_text("\n".join([lines[0], *(",".join(c) for c in first)]) + "\n")
    before = tree(tmp_path)
    result = run_mixlab_forked("fit", *fit_args(d, tmp_path))
    assert_one_line_cause(result, str(runs), "'step'")
    assert tree(tmp_path) == before


# --- issue 12: optimize and law options -------------------------------------------------------------------
# Every float/int option of fit, evaluate, predict, optimize, import and the global options: NaN, inf,
# negative, zero where meaningless, integers too large. Each must exit 2 naming its flag, before any work.


def _fit(tmp, *extra):
    return ["fit", *fit_args(_sweep(tmp), tmp), *extra]


def _optimize(tmp, *extra):
    return ["optimize", *optimize_args(_sweep(tmp), tmp, *extra)]


def _tokens(tmp, *extra):
    d = _sweep(tmp)
    return ["optimize", *optimize_args(d, tmp, "--available", str(d / "tokens.json"), *extra)]


def _predict(tmp, steps):
    d = _sweep(tmp)
    return ["predict", str(d / "law.json"), "-m", str(d / "mixtures.csv"), "--steps", steps, "--out",
            str(tmp / "out" / "p.csv")]  # fmt: skip


def _import(tmp, *extra):
    d = _sweep(tmp)
    return ["import", "regmix", str(d / "mixtures.csv"), str(d / "mixtures.csv"), "--out", str(tmp / "out"),
            *extra]  # fmt: skip


ISSUE12_OPTION_CASES = {
    "optimize-min-weight-nan": (lambda t: _optimize(t, "--min-weight", "nan"), ["--min-weight", "nan"]),
    "optimize-min-weight-inf": (lambda t: _optimize(t, "--min-weight", "inf"), ["--min-weight"]),
    "optimize-min-weight-negative": (lambda t: _optimize(t, "--min-weight", "-0.1"), ["--min-weight"]),
    "optimize-target-tokens-nan": (lambda t: _tokens(t, "--target-tokens", "nan"), ["--target-tokens", "nan"]),
    "optimize-target-tokens-inf": (lambda t: _tokens(t, "--target-tokens", "inf"), ["--target-tokens"]),
    "optimize-target-tokens-zero": (lambda t: _tokens(t, "--target-tokens", "0"), ["--target-tokens"]),
    "optimize-max-epochs-nan": (lambda t: _tokens(t, "--target-tokens", "1e9", "--max-epochs", "nan"), ["--max-epochs"]),
    "optimize-max-epochs-inf": (lambda t: _tokens(t, "--target-tokens", "1e9", "--max-epochs", "inf"), ["--max-epochs"]),
    "optimize-max-epochs-negative": (lambda t: _tokens(t, "--target-tokens", "1e9", "--max-epochs", "-1"), ["--max-epochs"]),
    "optimize-samples-zero": (lambda t: _optimize(t, "--samples", "0"), ["--samples"]),
    "optimize-samples-huge": (lambda t: _optimize(t, "--samples", str(2**63)), ["--samples"]),
    "optimize-top-k-zero": (lambda t: _optimize(t, "--top-k", "0"), ["--top-k"]),
    "optimize-top-k-over-samples": (lambda t: _optimize(t, "--samples", "50", "--top-k", "100"), ["--top-k", "--samples"]),
    "optimize-bootstrap-negative": (lambda t: _optimize(t, "--bootstrap", "-1"), ["--bootstrap"]),
    "fit-bootstrap-huge": (lambda t: _fit(t, "--bootstrap", str(10**12)), ["--bootstrap"]),
    "fit-step-nan": (lambda t: _fit(t, "--law", "powerlaw", "--step", "nan"), ["--step", "nan"]),
    "fit-step-negative": (lambda t: _fit(t, "--law", "powerlaw", "--step", "-1"), ["--step"]),
    "predict-steps-nan": (lambda t: _predict(t, "1000,nan"), ["--steps", "nan"]),
    "predict-steps-inf": (lambda t: _predict(t, "inf"), ["--steps"]),
    "import-step-nan": (lambda t: _import(t, "--step", "nan"), ["--step", "nan"]),
    "import-step-zero": (lambda t: _import(t, "--step", "0"), ["--step"]),
    "global-seed-negative": (lambda t: ["--seed", "-1", *_fit(t, "--bootstrap", "2")], ["--seed", "-1"]),
    "global-seed-huge": (lambda t: ["--seed", str(2**64), *_fit(t)], ["--seed"]),
    "global-workers-zero": (lambda t: ["--workers", "0", *_fit(t)], ["--workers", "0"]),
    "global-workers-negative": (lambda t: ["--workers", "-1", *_fit(t)], ["--workers"]),
    "global-workers-huge": (lambda t: ["--workers", str(2**70), *_fit(t)], ["--workers"]),
} | {
    f"optimize-steps-{v}": (lambda t, v=v: _optimize(t)[:2] + ["--steps", v] + _optimize(t)[4:], ["--steps", v])
    for v in ("0", "-100", "nan", "inf")
}  # fmt: skip


@pytest.fixture(scope="module")
def issue12_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    def run(item: tuple[str, tuple[Callable[[Path], list[str]], list[str]]]) -> Outcome:
        case_id, (build, names) = item
        out = Outcome(names=names)
        try:
            tmp = tmp_path_factory.mktemp(case_id)
            argv = build(tmp)
            out.before = tree(tmp)
            out.result = run_mixlab_forked("--quiet", *argv, cwd=tmp)
            out.after = tree(tmp)
        except Exception as exc:  # reported by the case's own test
            out.error = exc
        return out

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(ISSUE12_OPTION_CASES, pool.map(run, ISSUE12_OPTION_CASES.items()), strict=True))


@pytest.mark.parametrize("case_id", sorted(ISSUE12_OPTION_CASES))
def test_issue12_law_option_exits_2_naming_the_flag(
    case_id: str, issue12_outcomes: dict[str, Outcome]
) -> None:
    out = issue12_outcomes[case_id]
    if out.error is not None:
        raise out.error
    assert "Traceback" not in out.result.stderr, out.result.stderr
    assert_one_line_cause(out.result, *out.names)
    assert sorted(set(out.after.items()) ^ set(out.before.items())) == []


# --- issue 12: corpus and samplemix inputs ---------------------------------------------------------------
# Each was accepted (exit 0) or crashed (exit 1) before: symlinks, files a directory corpus skipped, scores
# that disagree with their shard layout, overflowing budgets, options out of range.


def _corpus_with(tmp: Path, add: Callable[[Path], Path]) -> tuple[list[str], list[str]]:
    corpus = _good(tmp)
    culprit = add(corpus)
    return stats_args(corpus, tmp), [str(culprit)]


def _link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _file(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


_ONE_DOC = b'{"text": "one more document"}\n'
CORPUS_LAYOUT_12 = {
    "domain-dir-self-symlink": lambda c: _link(c / "web", "web"),
    "domain-dir-broken-symlink": lambda c: _link(c / "web", "nowhere"),
    "shard-broken-symlink": lambda c: _link(c / "code" / "gone.jsonl", "gone-for-good.jsonl"),
    "subdir-symlink-loop": lambda c: _link(c / "code" / "again", ".."),
    "txt-gz-beside-jsonl": lambda c: _file(c / "code" / "extra.txt.gz", gzip.compress(b"a document")),
    "json-beside-jsonl": lambda c: _file(c / "code" / "extra.json", b'[{"text": "a document"}]'),
    "unknown-extension": lambda c: _file(c / "prose" / "notes.csv", b"a,b\n"),
    "shard-at-corpus-root": lambda c: _file(c / "stray.jsonl", _ONE_DOC),
}


def _manifest_with(tmp: Path, name: str, blob: bytes) -> tuple[list[str], list[str]]:
    """The manifest path refuses what the directory path refuses: one rule (`shard_files`)."""
    corpus = _good(tmp)
    (corpus / "code" / name).write_bytes(blob)
    manifest = tmp / "corpus.toml"
    manifest.write_text("[domains]\ncode = 'corpus/code'\nprose = 'corpus/prose/*.jsonl'\n")
    return stats_args(manifest, tmp), [str(manifest), "domains.code", name, "unsupported"]


def _scores_edit(tmp: Path, column: str, values: Callable[[int], pa.Array]) -> tuple[Path, Path]:
    """The good scores with one column replaced, its shard layout (schema metadata) kept."""
    corpus, scores = _scored(tmp)
    table = pq.read_table(scores)
    table = table.set_column(table.schema.get_field_index(column), column, values(table.num_rows))
    pq.write_table(table.replace_schema_metadata(pq.read_schema(scores).metadata), scores)
    return corpus, scores


def sample_scores_domain_not_layout(tmp):
    corpus, scores = _scores_edit(tmp, "domain", lambda n: pa.array(["code"] * n))
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000"), [str(scores), "'domain'", "prose"]


def sample_scores_fractional_tokens(tmp):
    corpus, scores = _scores_edit(tmp, "tokens", lambda n: pa.array([1.5] * n))
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000"), [str(scores), "row 0", "'tokens'"]


def sample_scores_overflowing_tokens(tmp):
    corpus, scores = _scores_edit(tmp, "tokens", lambda n: pa.array([2**62] * n, pa.int64()))
    return sample_args(corpus, scores, tmp, "--budget-tokens", "1000"), [str(scores), "'tokens'"]


def _sample_option(*extra: str, names: list[str]):
    def build(tmp):
        corpus, scores = _scored(tmp)
        return sample_args(corpus, scores, tmp, *extra), names

    return build


def _score_option(*extra: str, names: list[str]):
    return lambda tmp: (score_args(_good(tmp), tmp, *extra), names)


def _entropy_option(*extra: str, names: list[str]):
    return lambda tmp: (entropy_args(_good(tmp), tmp, *extra), names)


ISSUE12_CASES = [
    *(
        Case(f"corpus-{name}", "corpus stats", functools.partial(_corpus_with, add=add))
        for name, add in CORPUS_LAYOUT_12.items()
    ),  # fmt: skip
    Case("manifest-dir-txt-gz", "corpus stats", lambda t: _manifest_with(t, "x.txt.gz", gzip.compress(b"x"))),
    Case("manifest-dir-json", "corpus stats", lambda t: _manifest_with(t, "x.json", b"{}")),
    Case(
        "entropy-domain-dir-self-symlink",
        "entropy",
        lambda t: (
            entropy_args(Path(_corpus_with(t, CORPUS_LAYOUT_12["domain-dir-self-symlink"])[0][0]), t),
            ["web", "symbolic link"],
        ),
    ),  # fmt: skip
    Case("sample-scores-domain-not-layout", "sample", sample_scores_domain_not_layout),
    Case("sample-scores-fractional-tokens", "sample", sample_scores_fractional_tokens),
    Case("sample-scores-overflowing-tokens", "sample", sample_scores_overflowing_tokens),
    *(
        Case(f"sample-budget-{v}", "sample", _sample_option("--budget-tokens", v, names=["--budget-tokens"]))
        for v in ("1e25", "1e19", "nan", "inf", "0")
    ),  # fmt: skip
    *(
        Case(
            f"sample-max-repeats-{v}",
            "sample",
            _sample_option(
                "--budget-tokens",
                "1000",
                "--max-repeats",
                v,
                "--min-share",
                "code=0.1",
                names=[f"--max-repeats {v}"],
            ),
        )
        for v in ("0", "-2")
    ),  # fmt: skip
    *(
        Case(
            f"sample-alpha-{v}",
            "sample",
            _sample_option("--budget-tokens", "1000", "--alpha", v, names=["--alpha"]),
        )
        for v in ("nan", "inf", "-0.1")
    ),  # fmt: skip
    Case(
        "sample-min-share-nan",
        "sample",
        _sample_option("--budget-tokens", "1000", "--min-share", "code=nan", names=["--min-share code=nan"]),
    ),
    *(
        Case(f"score-{flag[2:]}-{v}", "score", _score_option(flag, v, names=[f"{flag} {v}"]))
        for flag, v in (
            ("--clusters", "0"),
            ("--annotate-n", "0"),
            ("--annotate-n", "-5"),
            ("--alpha", "nan"),
            ("--normalisation", "zscore"),
        )
    ),  # fmt: skip
    *(
        Case(
            f"entropy-checkpoint-every-{v}",
            "entropy",
            _entropy_option("--checkpoint-every", v, names=["--checkpoint-every"]),
        )
        for v in ("nan", "-1")
    ),  # fmt: skip
]


def _ltree(root: Path) -> dict[str, int]:
    """Like `tree`, without following symbolic links (some cases hold link loops)."""
    return {p.relative_to(root).as_posix(): p.lstat().st_size for p in root.rglob("*")}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ISSUE12_CASES])
def test_issue12_corpus_and_samplemix_inputs(case: Case, tmp_path: Path) -> None:
    (tmp_path / "case").mkdir()
    tmp = tmp_path / "case"
    args, names = case.build(tmp)
    before = _ltree(tmp)
    result = run_mixlab_forked(
        "--quiet", *case.verb.split(), *args, cwd=tmp, env={"MIXLAB_CACHE": str(tmp_path / "c")}
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert_one_line_cause(result, *names)
    assert sorted(set(_ltree(tmp).items()) ^ set(before.items())) == []


@pytest.mark.parametrize(
    "name, blob, documents",
    [(".hidden.jsonl", _ONE_DOC, 20), ("empty.jsonl", b"", 20), ("sub/more.jsonl", _ONE_DOC, 21)],
)
def test_issue12_what_a_directory_corpus_reads(
    name: str, blob: bytes, documents: int, tmp_path: Path
) -> None:
    """The other side of the rule: hidden names are not part of the corpus, an empty shard has no documents,
    a sub-directory (also a symlinked one) is read."""
    corpus = _good(tmp_path)
    (corpus / "code" / name).parent.mkdir(exist_ok=True)
    (corpus / "code" / name).write_bytes(blob)
    (corpus / "linked").symlink_to(corpus / "prose", target_is_directory=True)
    result = run_mixlab_forked("--quiet", "corpus", "stats", *stats_args(corpus, tmp_path))
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["domains"]["linked"]["documents"] == stats["domains"]["prose"]["documents"] == 10
    assert stats["domains"]["code"]["documents"] == documents - 10


# --- issue 12: proxy options ------------------------------------------------------------------------------
# Every numeric option of `sweep` and `doremi` is checked before torch loads or the corpus is read: exit 2, the
# flag named, nothing written. Integer options given nan/inf are refused by the option parser (exit 2, flag
# named, its own multi-line usage box), checked separately below.


def _issue12_sweep(flag: str, value: str) -> Callable[[Path], tuple[list[str], list[str]]]:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        args, _ = sweep_args(tmp, "name,code,prose\nm1,0.5,0.5\n", flag, value)
        return args, [f"{flag} {value}"]

    return build


def _issue12_doremi(flag: str, value: str) -> Callable[[Path], tuple[list[str], list[str]]]:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        args = [str(_good(tmp)), "--out", str(tmp / "out" / "doremi"), "--tokenizer", "gpt2"]
        return [*args, "--tokens-per-run", "4096", flag, value], [flag, value]

    return build


_ISSUE12_INT_OPTIONS = ("--tokens-per-run", "--evals", "--seq-len", "--batch-size", "--val-tokens")
_ISSUE12_BAD_VALUES = {
    **{(o, v): v for o in _ISSUE12_INT_OPTIONS for v in ("0", "-3")},
    ("--warmup", "-1"): "-1",
    ("--threads", "0"): "0",
    ("--threads", "-2"): "-2",
    ("--eval-subset-tokens", "0"): "0",  # issue 16: the subset of intermediate evaluations
    ("--eval-subset-tokens", "-512"): "-512",
    ("--max-tokens-per-domain", "0"): "0",
    ("--max-tokens-per-domain", "-5"): "-5",
    **{("--lr", v): v for v in ("nan", "inf", "-inf", "0", "-0.001")},
}
_ISSUE12_DOREMI_VALUES = {
    **{("--step-size", v): v for v in ("nan", "inf", "0", "-1")},
    **{("--smoothing", v): v for v in ("nan", "inf", "-0.1", "1.5")},
    **{("--min-weight", v): v for v in ("nan", "inf", "-0.01", "0.6")},  # 0.6 x 2 domains exceeds 1
    ("--tokens-per-run", "0"): "0",
    ("--lr", "nan"): "nan",
    ("--val-tokens", "-1"): "-1",
}
ISSUE12_PROXY_CASES = [
    *(Case(f"issue12-sweep{o}={v}", "sweep", _issue12_sweep(o, v)) for (o, v) in _ISSUE12_BAD_VALUES),
    *(Case(f"issue12-doremi{o}={v}", "doremi", _issue12_doremi(o, v)) for (o, v) in _ISSUE12_DOREMI_VALUES),
]
CASES += ISSUE12_PROXY_CASES  # the module's `outcomes` fixture runs them with the others


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ISSUE12_PROXY_CASES])
def test_issue12_proxy_options_exit_2_naming_the_flag(case: Case, outcomes: dict[str, Outcome]) -> None:
    test_bad_input_exits_2_with_one_line_cause_and_no_output(case, outcomes)


def test_issue12_sweep_tokens_per_run_zero_is_refused_before_any_work(tmp_path: Path) -> None:
    """The flag the user typed (not the library's `tokens`), before the cache or the corpus is touched, from
    settings whose module loads without torch."""
    import sys

    from mixcli import mixlab_env

    args, _ = sweep_args(tmp_path, "name,code,prose\nm1,0.5,0.5\n", "--tokens-per-run", "0")
    before = tree(tmp_path)
    result = run_mixlab_forked(
        "--quiet", "sweep", *args, cwd=tmp_path, env={"MIXLAB_CACHE": str(tmp_path / "cache")}
    )
    line = assert_one_line_cause(result, "--tokens-per-run 0")
    assert "--tokens " not in line
    assert tree(tmp_path) == before  # not even the cache directory
    check = "import sys, mixlab.proxy.config; sys.exit('torch' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", check], env=mixlab_env(), capture_output=True, text=True)
    assert light.returncode == 0, f"mixlab.proxy.config imports torch {light.stderr}"


@pytest.mark.parametrize("flag", ["--tokens-per-run", "--evals", "--threads", "--val-tokens"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_issue12_integer_options_refuse_nan_and_inf(flag: str, value: str, tmp_path: Path) -> None:
    args, _ = sweep_args(tmp_path, "name,code,prose\nm1,0.5,0.5\n", flag, value)
    before = tree(tmp_path)
    result = run_mixlab_forked("--quiet", "sweep", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr and "Traceback" not in result.stderr
    assert tree(tmp_path) == before


# --- issue 16: demo seeds ---


@pytest.mark.parametrize("seeds", ["0,x", "0,,1", "1,1", "-1"])
def test_issue16_demo_seeds_refused_before_anything_is_written(seeds: str, tmp_path: Path) -> None:
    before = tree(tmp_path)
    result = run_mixlab_forked(
        "--quiet", "demo", "--out", str(tmp_path / "out"), "--seeds", seeds, cwd=tmp_path
    )
    assert_one_line_cause(result, f"--seeds '{seeds}'")
    assert tree(tmp_path) == before


# --- issue 12: options of `mixtures random` and `corpus demo` ---------------------------------------------
# Found in the final audit of every float option: nan crashed `corpus demo` (int(nan)) and reached the
# Dirichlet draws of `mixtures random` (a cause naming a mixture weight, not the flag).


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["corpus", "demo", "--out", "corpus", "--max-mb-per-domain", "nan"], "--max-mb-per-domain"),
        (["corpus", "demo", "--out", "corpus", "--max-mb-per-domain", "0"], "--max-mb-per-domain"),
        (["mixtures", "random", "--prior", "uniform", "--domains", "a,b", "--n", "4", "--concentration", "nan",
          "--out", "m.csv"], "--concentration"),
        (["mixtures", "random", "--prior", "uniform", "--domains", "a,b", "--n", "4", "--concentration", "-1",
          "--out", "m.csv"], "--concentration"),
        (["mixtures", "random", "--prior", "uniform", "--domains", "a,b", "--n", "4", "--min-distance", "inf",
          "--out", "m.csv"], "--min-distance"),
    ],
)  # fmt: skip
def test_mixtures_random_and_corpus_demo_refuse_bad_numbers(tmp_path, argv, flag):
    res = run_mixlab_forked(*argv, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert_one_line_cause(res, flag)
    assert list(tmp_path.iterdir()) == []


# --- issue 14: CLI names, lists and stdout ---
# The options added or renamed by the naming audit (--eval-step, --drop-below, --eval-seeds, --domains, comma
# KEY=VALUE lists), an old spelling given with its new one, and `-` for an option that writes files: each is
# refused while the command line is read, before any input is opened.

_MIX = ["mixtures", "random", "--prior", "uniform", "--domains", "a,b", "--n", "2", "--out", "m.csv"]
_FIT = ["-m", "m.csv", "-r", "r.csv", "-o", "law.json"]


@pytest.mark.parametrize(
    "argv, names",
    [
        (["fit", *_FIT, "--law", "powerlaw", "--eval-step", "nan"], ["--eval-step", "nan"]),
        (["evaluate", *_FIT, "--law", "dml", "--eval-step", "-1"], ["--eval-step"]),
        (["import", "regmix", "a.csv", "b.csv", "--out", "o", "--eval-step", "0"], ["--eval-step"]),
        (["fit", *_FIT, "--law", "dml", "--eval-step", "5", "--step", "5"], ["--step", "old spelling", "--eval-step"]),
        (["fit", *_FIT, "--hyper", "min_runs=2,min_runs=3"], ["--hyper", "'min_runs' is given twice"]),
        ([*_MIX, "--drop-below", "nan"], ["--drop-below"]),
        ([*_MIX, "--drop-below", "1"], ["--drop-below", "[0, 1)"]),
        ([*_MIX, "--drop-below", "-0.1"], ["--drop-below"]),
        (["mixtures", "random", "--prior", "uniform", "--domains", "a,,b", "--n", "2", "--out", "m.csv"],
         ["--domains", "no empty item"]),
        (["corpus", "demo", "--out", "corpus", "--domains", "code,,wiki"], ["--domains", "no empty item"]),
        (["demo", "--out", "d", "--eval-seeds", "1,1"], ["--eval-seeds '1,1'"]),
        (["sample", "c", "--scores", "s.parquet", "--budget-tokens", "100", "--out", "s",
          "--min-share", "code=0.1,code=0.2"], ["--min-share", "'code' is given twice"]),
        (["sample", "c", "--scores", "s.parquet", "--budget-tokens", "100", "--out", "s",
          "--max-share", "code=0.1,wiki"], ["--max-share code=0.1,wiki", "expected DOMAIN=SHARE"]),
        (["sweep", "c", "--mixtures", "m.csv", "--out", "-"], ["--out -", "not stdout"]),
        (["evaluate", *_FIT[:4], "-o", "e.json", "--plots", "-"], ["--plots -", "not stdout"]),
    ],
)  # fmt: skip
def test_issue14_renamed_and_list_options_are_one_line(tmp_path, argv, names):
    res = run_mixlab_forked("--quiet", *argv, cwd=tmp_path)
    assert_one_line_cause(res, *names)
    assert list(tmp_path.iterdir()) == []
