"""The corpus passes behind `mixlab score` and `mixlab sample` (Python API: `score_corpus`, `sample_corpus`).

Scoring (`score_corpus`), per shard through an engine (local processes or Ray Data), resumable by shard:
  1. embed pass: read, count tokens, embed → `WORK/shards/NNNNN.npy` (float16) + `NNNNN.meta.parquet`;
     each shard also offers its documents with the smallest seeded hash keys as annotation candidates,
     merged into one uniform sample without replacement (no second read of the corpus);
  2. annotate the sample (`heuristic` | `local` | `llm`), compare the ordinal and classification heads on
     held-out annotations (`WORK/quality_report.json`), fit the scorer on all annotations; fit k-means on
     a uniform sample of embeddings (read back from the per-shard files);
  3. score pass: per shard, the scorer's quality and the nearest centroid → `NNNNN.scores.parquet`, with
     cluster statistics merged across shards;
  4. global normalisers (compactness × separation, p(x)) and one streamed write of `scores.parquet`.
`WORK` = `<out>.work/` next to the output; a shard whose files exist is not redone when the configuration
(`WORK/config.json`) is unchanged, so an interrupted run resumes where it stopped.

Sampling (`sample_corpus`): counts from `sampler.domain_counts`, then per shard the documents are written
`count` times into random buckets, and each bucket is shuffled and appended to `SAMPLE_DIR/data/` (memory
bounded by one bucket), plus `counts.parquet`, `summary.json` and `summary.png`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import pickle
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.atomic import atomic_dir, atomic_path, write_json
from mixlab.corpus import Corpus, ParquetShardWriter, Shard, load_tokenizer, read_shard
from mixlab.embed import get_embedder
from mixlab.engine import Engine, LocalEngine
from mixlab.errors import BadInput
from mixlab.progress import log, status, warn
from mixlab.samplemix.diversity import ClusterStats, KMeans, cluster_diversity, default_clusters
from mixlab.samplemix.quality import (
    COLUMNS,
    DEFAULT_ANNOTATE_N,
    QualityScorer,
    compare_heads,
    get_annotator,
)
from mixlab.samplemix.quality.rubric import RUBRIC_VERSION
from mixlab.samplemix.sampler import MAX_TOKENS, check_weight_options, domain_counts, sampling_weights

SCORE_COLUMNS = (
    "doc_id",
    "domain",
    "tokens",
    "quality",
    *COLUMNS,
    "cluster",
    "compactness",
    "separation",
    "diversity",
    "weight",
)
SHARDS_METADATA_KEY = b"mixlab.shards"
ANNOTATION_CHARS = 8000  # what an annotator may see of a document


@dataclass(frozen=True)
class ScoreConfig:
    """Options of `score_corpus` (the CLI's flags). `annotate_n=None` takes the annotator's default."""

    quality: str = "heuristic"
    annotate_n: int | None = None
    embedder: str = "static"
    clusters: int | None = None
    separation: str = "mean"
    tokenizer: str = "gpt2"
    head: str = "ordinal"
    alpha: float = 0.8
    normalisation: str = "minmax"
    seed: int = 0
    batch_size: int = 2048
    skip_bad_rows: bool = False
    annotator_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise BadInput naming the option that is out of range (before any work is done)."""
        check_weight_options(self.alpha, self.normalisation)
        for name, value, least in (
            ("--annotate-n", self.annotate_n, 1),
            ("--clusters", self.clusters, 1),
            ("batch_size", self.batch_size, 1),
        ):
            if value is not None and value < least:
                raise BadInput(f"{name} {value}: must be at least {least}")

    def embed_key(self) -> dict[str, Any]:
        """What the embed pass's files depend on."""
        return {"embedder": self.embedder, "tokenizer": self.tokenizer, "seed": self.seed, "v": 1}


# ----------------------------------------------------------------------------------------------- pass 1


@functools.lru_cache(maxsize=4)
def _tokenizer(spec: str):
    return load_tokenizer(spec)


@functools.lru_cache(maxsize=4)
def _embedder(name: str):
    return get_embedder(name)


def _sample_key(seed: int, doc_id: str) -> int:
    """A seeded uniform 64-bit key per document: the smallest n keys are a uniform sample of size n."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest(), "big")


@dataclass
class EmbedResult:
    """What the embed pass hands back per shard: its size and its annotation candidates."""

    index: int
    documents: int
    candidates: list[tuple[int, int, int, str]]  # (key, shard index, row in shard, text)


def _embed_shard(
    item: tuple[int, Shard],
    work: str,
    embedder: str,
    tokenizer: str,
    seed: int,
    n_candidates: int,
    batch_size: int,
    skip_bad_rows: bool,
) -> EmbedResult:
    index, shard = item
    base = Path(work) / "shards" / f"{index:05d}"
    emb_path, meta_path, cand_path = (base.with_suffix(s) for s in (".npy", ".meta.parquet", ".cand.pkl"))
    if meta_path.exists() and emb_path.exists() and cand_path.exists():
        return pickle.loads(cand_path.read_bytes())
    tok, emb = _tokenizer(tokenizer), _embedder(embedder)
    ids: list[str] = []
    tokens: list[int] = []
    vectors: list[np.ndarray] = []
    candidates: list[tuple[int, int, int, str]] = []
    for batch in read_shard(shard, batch_size=batch_size, skip_bad_rows=skip_bad_rows):
        start = len(ids)
        ids.extend(batch.ids)
        tokens.extend(tok.count_tokens(batch.texts))
        vectors.append(emb.embed(batch.texts).astype(np.float16))
        for j, (doc_id, text) in enumerate(zip(batch.ids, batch.texts, strict=True)):
            candidates.append((_sample_key(seed, doc_id), index, start + j, text[:ANNOTATION_CHARS]))
        if len(candidates) > 4 * n_candidates:
            candidates = sorted(candidates)[:n_candidates]
    candidates = sorted(candidates)[:n_candidates]
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, emb.dim), dtype=np.float16)
    with atomic_path(emb_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, matrix)
    result = EmbedResult(index, len(ids), candidates)
    with atomic_path(cand_path) as tmp:
        tmp.write_bytes(pickle.dumps(result))
    table = pa.table(
        {
            "doc_id": pa.array(ids, pa.string()),
            "domain": pa.array([shard.domain] * len(ids), pa.string()),
            "tokens": pa.array(tokens, pa.int64()),
        }
    )
    with atomic_path(meta_path) as tmp:
        pq.write_table(table, tmp)
    return result


# ----------------------------------------------------------------------------------------------- pass 2


@dataclass
class ShardScores:
    """Per-shard results of the score pass that merge: cluster statistics and the document count."""

    stats: ClusterStats
    documents: int


def _score_shard(item: tuple[int, Shard], work: str, model_path: str) -> ShardScores:
    index, _ = item
    base = Path(work) / "shards" / f"{index:05d}"
    out_path = base.with_suffix(".scores.parquet")
    models = pickle.loads(Path(model_path).read_bytes())
    scorer: QualityScorer = models["scorer"]
    kmeans: KMeans = models["kmeans"]
    if out_path.exists():
        table = _read_parquet(out_path, columns=["cluster", "distance"])
        labels = table.column("cluster").to_numpy()
        return ShardScores(
            ClusterStats.of(labels, table.column("distance").to_numpy(), kmeans.k), table.num_rows
        )
    x = np.load(base.with_suffix(".npy")).astype(np.float32)
    meta = _read_parquet(base.with_suffix(".meta.parquet"))
    if x.shape[0]:
        total, per_dim = scorer.predict(x)
        labels, distances = kmeans.assign(x)
    else:
        total, per_dim = np.zeros(0), np.zeros((0, len(COLUMNS)))
        labels, distances = np.zeros(0, np.int64), np.zeros(0, np.float32)
    columns = {name: meta.column(name) for name in ("doc_id", "domain", "tokens")}
    columns["quality"] = pa.array(total, pa.float64())
    for j, name in enumerate(COLUMNS):
        columns[name] = pa.array(per_dim[:, j], pa.float64())
    columns["cluster"] = pa.array(labels, pa.int64())
    columns["distance"] = pa.array(distances, pa.float32())
    with atomic_path(out_path) as tmp:
        pq.write_table(pa.table(columns), tmp)
    return ShardScores(ClusterStats.of(labels, distances, kmeans.k), len(labels))


def _read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """One parquet file as a table. (Not `pq.read_table`: its first call imports pyarrow.dataset, 0.2 s in
    every worker process.)"""
    with pq.ParquetFile(path) as file:
        return file.read(columns=columns)


def _merge_scores(a: ShardScores, b: ShardScores) -> ShardScores:
    return ShardScores(a.stats.merge(b.stats), a.documents + b.documents)


# ----------------------------------------------------------------------------------------------- driver


def _prepare_work(work: Path, config: ScoreConfig, corpus: Corpus) -> None:
    """Create the work dir; wipe it when the corpus or the embed configuration changed."""
    key = {"corpus": corpus.fingerprint(), **config.embed_key()}
    config_path = work / "config.json"
    if config_path.exists():
        try:
            old = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            old = None
        if old != key:
            log(f"{work}: corpus or embedding settings changed; starting the work dir afresh")
            shutil.rmtree(work)
    (work / "shards").mkdir(parents=True, exist_ok=True)
    write_json(config_path, key)


def _rows_of(work: Path, sizes: list[int], picks: np.ndarray) -> np.ndarray:
    """Embeddings [len(picks), dim] (float32) of global document positions `picks` (sorted)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    shard_of = np.searchsorted(offsets, picks, side="right") - 1
    parts = []
    for index in np.unique(shard_of):
        matrix = np.load(work / "shards" / f"{index:05d}.npy", mmap_mode="r")
        parts.append(np.asarray(matrix[picks[shard_of == index] - offsets[index]], dtype=np.float32))
    return np.concatenate(parts)


def annotate_sample(
    texts: list[str], quality: str, options: Mapping[str, Any], engine: Engine | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Run the annotator on `texts`: labels [n, 7] (NaN rows for failures) and the failures. A `splittable`
    annotator (pure CPU, like `heuristic`) runs in batches on the engine's workers; the others (a model
    loaded once, an HTTP client with its own concurrency) run here."""
    annotator = get_annotator(quality, **dict(options))
    if engine is not None and getattr(annotator, "splittable", False) and len(texts) > 1:
        batches = [texts[i : i + 250] for i in range(0, len(texts), 250)]
        labels = np.concatenate(engine.map(annotator.annotate, batches, f"annotating ({quality})"))
        return labels, []
    with status(f"annotating {len(texts)} documents ({quality})"):
        labels = annotator.annotate(texts)
    return labels, list(getattr(annotator, "failures", []))


def score_corpus(
    corpus_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ScoreConfig = ScoreConfig(),
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Score every document of a corpus and write `out` (scores.parquet, columns `SCORE_COLUMNS`).

    Returns the run report (also `WORK/quality_report.json`): documents, clusters, annotation counts, the
    held-out metrics of both heads (ACC, MAE, MSE, close accuracy) and mean quality per domain.
    """
    config.check()
    corpus = Corpus.open(corpus_path)
    engine = engine or LocalEngine(1)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    # unknown names fail (BadInput naming the choices) before the work dir is created
    get_embedder(config.embedder)
    if config.quality not in DEFAULT_ANNOTATE_N:
        get_annotator(config.quality)
    tokenizer = load_tokenizer(config.tokenizer, corpus=corpus)  # bpe:N is trained on this corpus (cached)
    _prepare_work(work, config, corpus)
    tokenizer_spec = config.tokenizer
    if tokenizer_spec.startswith("bpe:"):
        # shard workers have no corpus to train from: they load the trained tokenizer from the work dir
        tokenizer_spec = str(work / "tokenizer.json")
        with atomic_path(tokenizer_spec) as tmp:
            tokenizer.hf.save(str(tmp))
    annotate_n = (
        config.annotate_n if config.annotate_n is not None else DEFAULT_ANNOTATE_N.get(config.quality, 0)
    )
    shards = list(enumerate(corpus.shards()))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    embed_fn = functools.partial(
        _embed_shard,
        work=str(work),
        embedder=config.embedder,
        tokenizer=tokenizer_spec,
        seed=config.seed,
        n_candidates=max(annotate_n, 1),
        batch_size=config.batch_size,
        skip_bad_rows=config.skip_bad_rows,
    )
    sizes = [0] * len(shards)
    candidates: list[tuple[int, int, int, str]] = []
    for result in engine.imap(embed_fn, shards, "embedding shards"):
        sizes[result.index] = result.documents
        candidates = sorted(candidates + result.candidates)[:annotate_n]
    n_docs = sum(sizes)
    timings["embed_pass_s"], clock = time.perf_counter() - clock, time.perf_counter()
    if n_docs < 2:
        raise BadInput(f"{corpus_path}: needs at least 2 documents to score, found {n_docs}")

    # annotate a uniform sample, compare heads on held-out annotations, fit the scorer
    texts = [c[3] for c in candidates]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    positions = np.array([offsets[c[1]] + c[2] for c in candidates], dtype=np.int64)
    labels, failures = annotate_sample(texts, config.quality, config.annotator_options, engine)
    ok = ~np.isnan(labels).any(1)
    if failures:
        warn(f"{len(failures)} of {len(texts)} annotations failed and are left out, e.g. {failures[0][1]}")
    timings["annotate_s"], clock = time.perf_counter() - clock, time.perf_counter()
    order = np.argsort(positions[ok])
    picks, train_labels = positions[ok][order], labels[ok][order]
    x_annotated = _rows_of(work, sizes, picks)
    report: dict[str, Any] = {
        "documents": n_docs,
        "shards": len(shards),
        "quality": config.quality,
        "rubric_version": RUBRIC_VERSION,
        "embedder": config.embedder,
        "annotated": int(ok.sum()),
        "annotation_failures": len(failures),
        "annotated_label_mean": float(train_labels.sum(1).mean()) if len(train_labels) else None,
    }
    with status("training the quality scorer"):
        report["heads"] = compare_heads(x_annotated, train_labels, seed=config.seed, map_fn=engine.map)
        scorer = QualityScorer(config.head).fit(x_annotated, train_labels, map_fn=engine.map)
    timings["scorer_s"], clock = time.perf_counter() - clock, time.perf_counter()
    log(
        "scorer on held-out annotations: "
        + "; ".join(
            f"{h} acc {m['acc']:.3f} mae {m['mae']:.2f} mse {m['mse']:.2f} ±1 {m['close_acc']:.3f}"
            for h, m in report["heads"].items()
        )
    )

    # k-means on a uniform sample of embeddings
    k = config.clusters or default_clusters(n_docs)
    kmeans = KMeans(min(k, n_docs), seed=config.seed)
    sample_size = min(n_docs, kmeans.k * kmeans.max_points_per_centroid)
    picks = np.sort(np.random.default_rng(config.seed).choice(n_docs, size=sample_size, replace=False))
    with status(f"k-means, k = {kmeans.k}, on {sample_size} documents"):
        kmeans.fit(_rows_of(work, sizes, picks))
    report["clusters"] = kmeans.k
    timings["kmeans_s"], clock = time.perf_counter() - clock, time.perf_counter()
    model_path = work / "models.pkl"
    models = pickle.dumps({"scorer": scorer, "kmeans": kmeans, "config": config})
    if not model_path.exists() or model_path.read_bytes() != models:
        for stale in (work / "shards").glob("*.scores.parquet"):
            stale.unlink()  # different models: cluster ids and scores change
        with atomic_path(model_path) as tmp:
            tmp.write_bytes(models)

    score_fn = functools.partial(_score_shard, work=str(work), model_path=str(model_path))
    merged = engine.map_reduce(score_fn, shards, _merge_scores, "scoring shards")
    diversity = cluster_diversity(kmeans.centroids_, merged.stats, config.separation)
    timings["score_pass_s"], clock = time.perf_counter() - clock, time.perf_counter()

    report["domains"] = _write_scores(out, work, shards, sizes, diversity, config)
    report["cluster_sizes"] = merged.stats.counts.tolist()
    timings["write_s"] = time.perf_counter() - clock
    report["timings"] = timings
    write_json(work / "quality_report.json", report)
    return report


def _write_scores(out: Path, work: Path, shards, sizes, diversity, config: ScoreConfig) -> dict[str, Any]:
    """Stream the per-shard scores into `out` with the global columns; returns per-domain summaries."""
    parts = [work / "shards" / f"{index:05d}.scores.parquet" for index, _ in shards]
    scored = [_read_parquet(p, columns=["quality", "cluster"]) for p in parts]
    quality = np.concatenate([t.column("quality").to_numpy() for t in scored])
    clusters = np.concatenate([t.column("cluster").to_numpy() for t in scored])
    d = diversity.diversity[clusters]
    weight = sampling_weights(quality, d, config.alpha, config.normalisation)
    shard_meta = json.dumps(
        [
            {"domain": s.domain, "name": s.name, "documents": n}
            for (_, s), n in zip(shards, sizes, strict=True)
        ]
    )
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("tokens", pa.int64()),
        pa.field("quality", pa.float64()),
        *[pa.field(c, pa.float64()) for c in COLUMNS],
        pa.field("cluster", pa.int64()),
        pa.field("compactness", pa.float64()),
        pa.field("separation", pa.float64()),
        pa.field("diversity", pa.float64()),
        pa.field("weight", pa.float64()),
    ]
    schema = pa.schema(fields, metadata={SHARDS_METADATA_KEY: shard_meta.encode()})
    domains: dict[str, dict[str, float]] = {}
    start = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for path in parts:
            table = _read_parquet(path)
            n = table.num_rows
            c = table.column("cluster").to_numpy()
            columns = {
                name: table.column(name) for name in ("doc_id", "domain", "tokens", "quality", *COLUMNS)
            }
            columns["cluster"] = table.column("cluster")
            columns["compactness"] = pa.array(diversity.compactness[c], pa.float64())
            columns["separation"] = pa.array(diversity.separation[c], pa.float64())
            columns["diversity"] = pa.array(d[start : start + n], pa.float64())
            columns["weight"] = pa.array(weight[start : start + n], pa.float64())
            writer.write_table(pa.table(columns, schema=schema))
            if n:
                name = table.column("domain")[0].as_py()
                agg = domains.setdefault(
                    name, {"documents": 0, "tokens": 0, "quality_sum": 0.0, "weight_sum": 0.0}
                )
                agg["documents"] += n
                agg["tokens"] += int(pc_sum(table.column("tokens")))
                agg["quality_sum"] += float(quality[start : start + n].sum())
                agg["weight_sum"] += float(weight[start : start + n].sum())
            start += n
    return {
        name: {
            "documents": a["documents"],
            "tokens": a["tokens"],
            "mean_quality": a["quality_sum"] / a["documents"],
            "mean_weight": a["weight_sum"] / a["documents"],
        }
        for name, a in domains.items()
    }


def pc_sum(column: pa.ChunkedArray) -> int:
    import pyarrow.compute as pc

    value = pc.sum(column).as_py()
    return int(value or 0)


# ----------------------------------------------------------------------------------------------- sample


@dataclass(frozen=True)
class SampleConfig:
    """Options of `sample_corpus` (the CLI's flags)."""

    budget_tokens: float
    alpha: float = 0.8
    normalisation: str = "minmax"
    max_repeats: int | None = None
    target_mixture: dict[str, float] | None = None
    min_share: dict[str, float] | None = None
    max_share: dict[str, float] | None = None
    seed: int = 0
    bucket_bytes: int = 64 << 20
    rows_per_file: int = 100_000


def read_scores(path: str | os.PathLike[str]) -> tuple[pa.Table, list[dict[str, Any]] | None]:
    """The columns the sampler needs from scores.parquet, and its shard layout (when mixlab wrote it)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: scores file does not exist (run `mixlab score` first)")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise BadInput(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    needed = ("doc_id", "domain", "tokens", "quality", "diversity")
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise BadInput(f"{path}: missing column(s) {', '.join(missing)} (expected the `mixlab score` layout)")
    table = _read_parquet(path, columns=list(needed))
    for name in needed:
        if table.column(name).null_count:
            import pyarrow.compute as pc

            row = pc.index(pc.is_null(table.column(name)), True).as_py()
            raise BadInput(f"{path}: row {row}: field '{name}' is missing (null)")
    for name in ("tokens", "quality", "diversity"):
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            raise BadInput(
                f"{path}: row {int(bad[0])}: field '{name}' is {values[bad[0]]} (must be finite, ≥ 0)"
            )
    tokens = table.column("tokens").to_numpy(zero_copy_only=False).astype(np.float64)
    fractional = np.flatnonzero(tokens != np.floor(tokens))
    if fractional.size:
        row = int(fractional[0])
        raise BadInput(f"{path}: row {row}: field 'tokens' is {tokens[row]} (must be a whole number)")
    if tokens.sum() > MAX_TOKENS:
        raise BadInput(f"{path}: field 'tokens' sums to {tokens.sum():.3g}, more than 2^60")
    layout = None
    if schema.metadata and SHARDS_METADATA_KEY in schema.metadata:
        layout = json.loads(schema.metadata[SHARDS_METADATA_KEY])
    return table, layout


def _write_buckets(item: tuple[int, Shard, np.ndarray, pa.Array], tmp: str, n_buckets: int, seed: int) -> int:
    """Write every document of a shard `count` times into random buckets; returns rows written."""
    index, shard, counts, shard_ids = item
    expected_ids = shard_ids.to_pylist()
    rng = np.random.default_rng([seed, index])
    rows: dict[int, dict[str, list]] = {}
    position = 0
    for batch in read_shard(shard, skip_bad_rows=True):
        n = len(batch.ids)
        if batch.ids != expected_ids[position : position + n]:
            j = next(
                (
                    j
                    for j, doc_id in enumerate(batch.ids)
                    if position + j >= len(expected_ids) or doc_id != expected_ids[position + j]
                ),
            )
            at = position + j
            raise BadInput(
                f"{shard.path}: document {at} (id {batch.ids[j]}) does not match scores.parquet"
                f" ({expected_ids[at] if at < len(expected_ids) else 'no more rows'}); rescore"
            )
        copies = np.repeat(np.arange(n), counts[position : position + n])  # row of each copy, in row order
        buckets = rng.integers(0, n_buckets, size=copies.size)
        order = np.argsort(buckets, kind="stable")
        bounds = np.flatnonzero(np.diff(buckets[order])) + 1
        for group in np.split(order, bounds) if copies.size else []:
            bucket = rows.setdefault(int(buckets[group[0]]), {"id": [], "domain": [], "text": []})
            picked = copies[group].tolist()
            bucket["id"].extend(batch.ids[i] for i in picked)
            bucket["domain"].extend([shard.domain] * len(picked))
            bucket["text"].extend(batch.texts[i] for i in picked)
        position += n
    if position != len(expected_ids):
        raise BadInput(f"{shard.path}: {position} documents, scores.parquet has {len(expected_ids)}; rescore")
    for b, columns in rows.items():
        path = Path(tmp) / f"bucket-{b:05d}" / f"shard-{index:05d}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(columns)
        # Arrow IPC, not parquet: a scratch file read once, by memory map (no encode/decode)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return sum(len(c["id"]) for c in rows.values())


def _shard_items(corpus: Corpus, table: pa.Table, layout, scores_path, corpus_path) -> list[tuple]:
    """(index, shard, first row, rows, the shard's ids) per entry of the scores' shard layout, after checking
    that the layout names shards of this corpus, covers every row, and agrees with the `domain` column."""
    if layout is None:
        raise BadInput(f"{scores_path}: no shard layout in its metadata (write it with `mixlab score`)")
    covered = sum(int(entry["documents"]) for entry in layout)
    if covered != table.num_rows:
        raise BadInput(f"{scores_path}: shard layout covers {covered} rows, the file has {table.num_rows}")
    by_name = {(s.domain, s.name): s for s in corpus.shards()}
    ids, domain = table.column("doc_id"), table.column("domain")
    items = []
    start = 0
    for index, entry in enumerate(layout):
        shard = by_name.get((entry["domain"], entry["name"]))
        if shard is None:
            raise BadInput(
                f"{scores_path}: shard {entry['domain']}/{entry['name']} is not in corpus {corpus_path}"
            )
        n = int(entry["documents"])
        rows = domain.slice(start, n).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(rows != shard.domain)
        if wrong.size:
            raise BadInput(
                f"{scores_path}: row {start + int(wrong[0])}: field 'domain' is '{rows[wrong[0]]}', but the"
                f" shard layout puts the row in {shard.domain}/{shard.name}"
            )
        # a compact copy of the shard's ids: a slice would pickle the whole column
        shard_ids = pa.concat_arrays(ids.slice(start, n).chunks or [pa.array([], pa.string())])
        items.append((index, shard, start, n, shard_ids))
        start += n
    return items


def sample_corpus(
    corpus_path: str | os.PathLike[str],
    scores_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: SampleConfig,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Draw documents by SampleMix counts under a token budget and write SAMPLE_DIR (see module docstring).

    Returns the summary (also `summary.json`): budget, realised tokens, domain distribution before (pool)
    and after (sample), per-domain budgets, the histogram of copies per document.
    """
    corpus = Corpus.open(corpus_path)
    engine = engine or LocalEngine(1)
    table, layout = read_scores(scores_path)
    shard_rows = _shard_items(corpus, table, layout, scores_path, corpus_path)
    # ids and domains stay Arrow arrays (no Python string per document); domains in order of appearance
    domain_col = table.column("domain").combine_chunks().dictionary_encode()
    domains = domain_col.dictionary.to_pylist()
    codes = domain_col.indices.to_numpy().astype(np.int64)
    tokens = table.column("tokens").to_numpy().astype(np.int64)
    p = sampling_weights(
        table.column("quality").to_numpy(),
        table.column("diversity").to_numpy(),
        config.alpha,
        config.normalisation,
    )
    counts, budgets = domain_counts(
        p,
        tokens,
        codes,
        domains,
        config.budget_tokens,
        np.random.default_rng(config.seed),
        config.max_repeats,
        config.target_mixture,
        config.min_share,
        config.max_share,
    )
    items = [(index, shard, counts[start : start + n], ids) for index, shard, start, n, ids in shard_rows]

    realised = int(counts @ tokens)
    mean_bytes_per_token = 4.0
    n_buckets = max(1, math.ceil(realised * mean_bytes_per_token / config.bucket_bytes))
    summary = _summary(config, domains, codes, tokens, counts, budgets, realised)
    out = Path(out)
    with atomic_dir(out) as tmp, ThreadPoolExecutor(1, thread_name_prefix="mixlab-plot") as background:
        buckets_dir = tmp / ".buckets"
        fn = functools.partial(_write_buckets, tmp=str(buckets_dir), n_buckets=n_buckets, seed=config.seed)
        # closing: an interrupt outside the map still stops the workers before the temporary directory goes
        with contextlib.closing(engine.imap(fn, items, "writing sampled documents")) as writing:
            written = next(writing, 0)  # every shard is queued on the workers now
            # While they write: this thread imports the plotting libraries, then the plot is drawn on a
            # thread that must not import (see `load_plotting`); leaving the outer `with` joins it before
            # the temporary directory goes.
            load_plotting()
            png = background.submit(summary_png, dict(summary))
            written += sum(writing)
        with ParquetShardWriter(tmp / "data", rows_per_shard=config.rows_per_file) as writer:
            for b in range(n_buckets):
                pieces = sorted((buckets_dir / f"bucket-{b:05d}").glob("*.arrow"))
                if not pieces:
                    continue
                bucket = pa.concat_tables(
                    [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in pieces]
                )
                perm = np.random.default_rng([config.seed, 1 << 20, b]).permutation(bucket.num_rows)
                writer.write(bucket.take(pa.array(perm)))
                shutil.rmtree(buckets_dir / f"bucket-{b:05d}")
        shutil.rmtree(buckets_dir, ignore_errors=True)
        if written != int(counts.sum()):
            raise RuntimeError(f"wrote {written} documents, counts say {int(counts.sum())}")
        summary["data_files"] = len(writer.paths)
        pq.write_table(
            pa.table(
                {
                    "doc_id": table.column("doc_id"),
                    "domain": table.column("domain"),
                    "tokens": pa.array(tokens, pa.int64()),
                    "count": pa.array(counts, pa.int64()),
                }
            ),
            tmp / "counts.parquet",
        )
        (tmp / "summary.png").write_bytes(png.result())
        write_json(tmp / "summary.json", summary)
    return summary


def _summary(config, domains, codes, tokens, counts, budgets, realised) -> dict[str, Any]:
    m = len(domains)
    pool = np.bincount(codes, weights=tokens, minlength=m)
    sample = np.bincount(codes, weights=tokens * counts, minlength=m)
    copies, documents = np.unique(counts, return_counts=True)  # not bincount: its size is the largest count
    return {
        "budget_tokens": float(config.budget_tokens),
        "realised_tokens": realised,
        "realised_over_budget": realised / float(config.budget_tokens),
        "pool_tokens": int(tokens.sum()),
        "documents": int(counts.size),
        "documents_drawn": int((counts > 0).sum()),
        "copies": int(counts.sum()),
        "alpha": config.alpha,
        "normalisation": config.normalisation,
        "max_repeats": config.max_repeats,
        "seed": config.seed,
        "constraints": {
            "target_mixture": config.target_mixture,
            "min_share": config.min_share,
            "max_share": config.max_share,
        },
        "domains": {
            d: {
                "before": float(pool[j] / pool.sum()) if pool.sum() else 0.0,
                "after": float(sample[j] / sample.sum()) if sample.sum() else 0.0,
                "pool_tokens": int(pool[j]),
                "sampled_tokens": int(sample[j]),
                "budget_tokens": float(budgets.get(d, 0.0)),
            }
            for j, d in enumerate(domains)
        },
        "repeats_histogram": {
            str(c): int(n) for c, n in zip(copies.tolist(), documents.tolist(), strict=True)
        },
    }


def load_plotting() -> None:
    """Import everything `summary_png` needs (matplotlib, the Agg canvas, PIL's image plugins), so that it
    runs on another thread without importing there: a SIGTERM handled inside importlib's module-lock
    callback is swallowed ("Exception ignored") and leaves the import lock held by the main thread, and a
    thread importing behind it would never finish, nor would the command that joins it."""
    import matplotlib.backends.backend_agg  # noqa: F401 - the PNG canvas savefig looks up
    import matplotlib.figure  # noqa: F401
    import PIL.Image

    PIL.Image.preinit()


def summary_png(summary: Mapping[str, Any]) -> bytes:
    """PNG of two panels: domain token shares before/after sampling, and the histogram of copies per
    document. (No pyplot: a standalone Figure can be drawn off the main thread.)"""
    from matplotlib.figure import Figure

    domains = list(summary["domains"])
    before = [summary["domains"][d]["before"] for d in domains]
    after = [summary["domains"][d]["after"] for d in domains]
    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(domains))
    ax1.bar(x - 0.2, before, 0.4, label="pool (natural)")
    ax1.bar(x + 0.2, after, 0.4, label="SampleMix sample")
    ax1.set_xticks(x, domains, rotation=45, ha="right")
    ax1.set_ylabel("token share")
    ax1.set_title(f"domain distribution (α = {summary['alpha']})")
    ax1.legend()
    hist = summary["repeats_histogram"]
    ax2.bar([int(c) for c in hist], list(hist.values()))
    ax2.set_yscale("log")
    ax2.set_xlabel("copies per document")
    ax2.set_ylabel("documents")
    ax2.set_title(f"{summary['realised_tokens']:,} of {summary['budget_tokens']:,.0f} budget tokens")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


__all__ = [
    "SCORE_COLUMNS",
    "SampleConfig",
    "ScoreConfig",
    "annotate_sample",
    "read_scores",
    "sample_corpus",
    "score_corpus",
    "summary_png",
]
