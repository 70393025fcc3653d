"""The corpus pass behind `mixlab score` (Python API: `score_corpus`), writing scores.parquet.

Per shard through an engine (local processes or Ray Data), resumable by shard:
  1. embed pass: read, count tokens, embed → `WORK/shards/NNNNN.npy` (float16) + `NNNNN.meta.parquet`;
     each shard also offers its documents with the smallest seeded hash keys as annotation candidates,
     merged into one uniform sample without replacement (no second read of the corpus);
  2. annotate the sample (`heuristic` | `local` | `llm`), compare the ordinal and classification heads on
     held-out annotations (`WORK/quality_report.json`), fit the scorer on all annotations; fit k-means on
     a uniform sample of embeddings (read back from the per-shard files);
  3. score pass: per shard, the scorer's quality and the nearest centroid → `NNNNN.scores.parquet`, with
     cluster statistics merged across shards;
  4. global normalisers (compactness × separation, p(x)) and one streamed write of `scores.parquet`
     (`mixlab.samplemix.scores_file`).
`WORK` = `<out>.work/` next to the output, a `mixlab.files.WorkDir` whose settings (`WORK/config.json`) are
the corpus and the embed configuration: while they are unchanged a shard whose files exist is not redone, so
an interrupted run resumes where it stopped; other settings start the work dir afresh.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.corpus import Corpus, Shard, load_tokenizer, read_shard
from mixlab.corpus.tokenizer import DEFAULT_TOKENIZER
from mixlab.embed import get_embedder
from mixlab.engine import Engine, LocalEngine
from mixlab.errors import BadInput
from mixlab.files import WorkDir, atomic_path, write_json
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
from mixlab.samplemix.sampler import check_weight_options
from mixlab.samplemix.scores_file import read_parquet, write_scores

ANNOTATION_CHARS = 8000  # what an annotator may see of a document


@dataclass(frozen=True)
class ScoreConfig:
    """Options of `score_corpus` (the CLI's flags). `annotate_n=None` takes the annotator's default."""

    quality: str = "heuristic"
    annotate_n: int | None = None
    embedder: str = "static"
    clusters: int | None = None
    separation: str = "mean"
    tokenizer: str = DEFAULT_TOKENIZER
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
            ("annotate_n", self.annotate_n, 1),
            ("clusters", self.clusters, 1),
            ("batch_size", self.batch_size, 1),
        ):
            if value is not None and value < least:
                raise BadInput(f"`{name}` {value}: must be at least {least}")

    def embed_key(self) -> dict[str, Any]:
        """What the embed pass's files depend on (`v`: their format; 2 since the pickles name
        `mixlab.samplemix.score`, which version 1's `mixlab.samplemix.pipeline` ones cannot be read as)."""
        return {"embedder": self.embedder, "tokenizer": self.tokenizer, "seed": self.seed, "v": 2}


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
        table = read_parquet(out_path, columns=["cluster", "distance"])
        labels = table.column("cluster").to_numpy()
        return ShardScores(
            ClusterStats.of(labels, table.column("distance").to_numpy(), kmeans.k), table.num_rows
        )
    x = np.load(base.with_suffix(".npy")).astype(np.float32)
    meta = read_parquet(base.with_suffix(".meta.parquet"))
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


def _merge_scores(a: ShardScores, b: ShardScores) -> ShardScores:
    return ShardScores(a.stats.merge(b.stats), a.documents + b.documents)


# ----------------------------------------------------------------------------------------------- driver


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
    corpus_path: Corpus | str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ScoreConfig = ScoreConfig(),
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Score every document of a corpus and write `out` (scores.parquet, columns `SCORE_COLUMNS`).

    Returns the run report (also `WORK/quality_report.json`): documents, clusters, annotation counts, the
    held-out metrics of both heads (ACC, MAE, MSE, close accuracy) and mean quality per domain.
    """
    config.check()
    corpus = corpus_path if isinstance(corpus_path, Corpus) else Corpus.open(corpus_path)
    engine = engine or LocalEngine(1)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    # unknown names fail (BadInput naming the choices) before the work dir is created
    get_embedder(config.embedder)
    if config.quality not in DEFAULT_ANNOTATE_N:
        get_annotator(config.quality)
    tokenizer = load_tokenizer(config.tokenizer, corpus=corpus)  # bpe:N is trained on this corpus (cached)
    WorkDir(work, {"corpus": corpus.fingerprint(), **config.embed_key()}, record="config.json").open()
    (work / "shards").mkdir(exist_ok=True)
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
        raise BadInput(f"{corpus.root}: needs at least 2 documents to score, found {n_docs}")

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

    parts = [work / "shards" / f"{index:05d}.scores.parquet" for index, _ in shards]
    shard_list = [shard for _, shard in shards]
    report["domains"] = write_scores(
        out, parts, shard_list, sizes, diversity, config.alpha, config.normalisation
    )
    report["cluster_sizes"] = merged.stats.counts.tolist()
    timings["write_s"] = time.perf_counter() - clock
    report["timings"] = timings
    write_json(work / "quality_report.json", report)
    return report


__all__ = ["ScoreConfig", "annotate_sample", "score_corpus"]
