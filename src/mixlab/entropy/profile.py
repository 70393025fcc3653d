"""The entropy pass: tokenize every domain once, count unigrams and in-window pairs, embed documents.

One map over shards (`mixlab.engine`, local or Ray unchanged) and an exact merge per domain:

- Each shard's documents are tokenized and joined with EOS into one stream, cut into `seq_len`-token
  windows (windows restart at each shard: at most one window boundary per shard differs from packing
  the whole domain as one stream). Unigram counts are a dense bincount [V]; pair counts a sorted sparse
  table of int64 keys `x * V + x'` (`mixlab.entropy.measures.SparseCounts`), merged exactly, never a V x V array.
- Convergence in the same pass: every window gets a pseudo-random number u in [0, 1) from a hash of
  (seed, domain, shard, window index); counts are kept per band of u (cut at the convergence fractions,
  default 0.1 / 0.25 / 0.5 / 1). The windows with u < f are the first f of the tokens in a fixed
  shuffled order of the windows, so the cumulative band counts give the plug-in estimates on nested
  growing prefixes of ~10 / 25 / 50 / 100 % of the tokens. (A prefix of the shard order would confound
  sample size with whatever the shards are sorted by.)
- `max_tokens_per_domain` splits the budget over a domain's shards by file size (each shard reads up
  to its quota from its start), so the sample spreads over the domain; the rest of each shard is still
  read, without tokenizing, to count its text bytes, and the `natural` mixture then uses each domain's
  tokens estimated as tokens-per-byte (measured) x text bytes (all).
- VNE: the embedder (`mixlab.embed`, default `static`) turns the documents used into unit vectors
  (optionally only the first `vne_max_documents_per_domain`, split over shards by size like tokens);
  each shard returns XᵀX [d, d] and N, summed in shard order.

Results are deterministic and identical on every engine (integer counts; float grams summed in order).
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mixlab.corpus.reader import Corpus
from mixlab.corpus.tokenizer import Tokenizer
from mixlab.embed import DEFAULT_EMBEDDER, Embedder, get_embedder
from mixlab.engine import Engine, LocalEngine
from mixlab.entropy.counting import (
    CountsStack,
    EntropyCounts,
    ShardCounting,
    ShardTask,
    check_fractions,
    merge_counts,
    shard_tasks,
)
from mixlab.entropy.measures import (
    SparseCounts,
    entropy_mixture,
    token_entropies,
    von_neumann_entropy_from_gram,
)
from mixlab.entropy.plots import plot_mixtures
from mixlab.errors import BadInput
from mixlab.files import WorkDir, atomic_path, write_json
from mixlab.mixture import Mixture, write_mixtures
from mixlab.progress import log

MEASURES = ("se", "ce", "je", "vne")
TOKEN_MEASURES = ("se", "ce", "je")
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
CHECKPOINT = "entropy.checkpoint"


@dataclass
class EntropyProfile:
    """The result of `profile_corpus`: per-domain entropies and the settings that produced them."""

    domains: dict[str, dict[str, Any]]
    measures: tuple[str, ...]
    settings: dict[str, Any]

    def entropies(self, measure: str) -> dict[str, float]:
        return {d: float(v[measure]) for d, v in self.domains.items()}

    def natural(self) -> dict[str, float]:
        """Token share per domain, as `corpus stats` (document tokens, no EOS; estimated under a token cap)."""
        tokens = {d: float(v["domain_tokens"]) for d, v in self.domains.items()}
        total = sum(tokens.values())
        return {d: t / total for d, t in tokens.items()} if total else {d: 0.0 for d in tokens}

    def mixtures(self) -> list[Mixture]:
        """natural, uniform, then one softmax mixture per computed measure."""
        domains = list(self.domains)
        out = [
            Mixture.from_weights("natural", self.natural(), where="natural mixture"),
            Mixture.from_weights("uniform", dict.fromkeys(domains, 1.0)),
        ]
        for m in self.measures:
            out.append(Mixture.from_weights(m, entropy_mixture(self.entropies(m)), where=f"{m} mixture"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.settings,
            "measures": list(self.measures),
            "domains": self.domains,
            "mixtures": {m.name: m.weights for m in self.mixtures()},
        }


def domain_entropies(
    counts: EntropyCounts,
    vocab_size: int,
    measures: Sequence[str],
    fractions: Sequence[float],
    miller_madow: bool = False,
) -> dict[str, Any]:
    """Entropies (nats) of one domain's merged counts, plus the convergence table over the bands."""
    cumulative_unigrams = np.cumsum(counts.unigrams, axis=0)
    cumulative_pairs: list[SparseCounts] = []
    for table in counts.pairs:
        cumulative_pairs.append(cumulative_pairs[-1].merge(table) if cumulative_pairs else table)

    def selected(values: dict[str, float]) -> dict[str, float]:
        return {m: values[m] for m in TOKEN_MEASURES if m in measures}

    full_unigrams, full_pairs = cumulative_unigrams[-1], cumulative_pairs[-1]
    convergence: dict[str, list[Any]] = {"fractions": list(fractions), "tokens": []}
    convergence.update({m: [] for m in TOKEN_MEASURES if m in measures})
    for unigrams, pairs in zip(cumulative_unigrams, cumulative_pairs, strict=True):
        values = token_entropies(unigrams, pairs, vocab_size, miller_madow)
        convergence["tokens"].append(int(unigrams.sum()))
        for m, v in selected(values).items():
            convergence[m].append(v)
    out: dict[str, Any] = {
        "tokens": int(full_unigrams.sum()),
        "documents": counts.documents,
        "pairs": full_pairs.total,
        "unique_tokens": int(np.count_nonzero(full_unigrams)),
        "unique_pairs": len(full_pairs),
        **selected(values),
    }
    if "vne" in measures:
        # a d x d eigen-solve (d ~ 384) is fastest on one thread; BLAS threads only fight for the cores
        with threadpool_limits(1):
            vne = (
                von_neumann_entropy_from_gram(counts.gram, counts.embedded)
                if counts.gram is not None
                else 0.0
            )
        out["vne"] = vne
        out["embedded_documents"] = counts.embedded
    out["first_position_entropy"] = values["first"]
    if miller_madow:
        out["plug_in"] = selected(token_entropies(full_unigrams, full_pairs, vocab_size))
    # the estimate's change over the last doubling of the sample (50 % -> 100 % by default): near 0 when
    # the plug-in estimate has converged; the plug-in bias makes it positive while it has not
    convergence["last_step_change"] = {
        m: convergence[m][-1] - convergence[m][-2] if len(fractions) > 1 else 0.0
        for m in TOKEN_MEASURES
        if m in measures
    }
    out["convergence"] = convergence
    seen = counts.bytes_seen + counts.bytes_unseen
    per_byte = counts.tokens_seen / counts.bytes_seen if counts.bytes_seen else 0.0
    out["domain_tokens"] = int(round(counts.tokens_seen + counts.bytes_unseen * per_byte))
    out["domain_tokens_estimated"] = counts.bytes_unseen > 0
    out["text_bytes"] = seen
    out["skipped_rows"] = counts.read.skipped
    return out


def _work_settings(corpus: Corpus, tokenizer: Tokenizer, tasks: list[ShardTask], **settings: Any) -> dict:
    """What the counts of a pass depend on: the corpus files, the tokenizer, the tasks and the settings."""
    budgets = [[t.shard.domain, t.shard.name, t.tokens, t.documents] for t in tasks]
    return {
        "corpus": corpus.fingerprint(),
        "tokenizer": tokenizer.fingerprint(),
        "budgets": budgets,
        **{k: repr(v) for k, v in sorted(settings.items())},
    }


def _resume(checkpoint: Path, n_tasks: int) -> tuple[int, dict[str, CountsStack]]:
    """(shards already counted, their merged counts) from a checkpoint of this pass; (0, {}) without one."""
    if not checkpoint.is_file():
        return 0, {}
    try:
        state = pickle.loads(checkpoint.read_bytes())
    except Exception:
        state = None
    if not isinstance(state, dict) or not 0 < state.get("done", 0) < n_tasks:
        log(f"{checkpoint}: unreadable; counting from the start")
        return 0, {}
    log(f"resuming the entropy pass: {state['done']} of {n_tasks} shards were counted before")
    return state["done"], state["stacks"]


def profile_corpus(
    corpus: Corpus,
    tokenizer: Tokenizer,
    engine: Engine | None = None,
    measures: Sequence[str] = TOKEN_MEASURES,
    seq_len: int = 1024,
    max_tokens_per_domain: int | None = None,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    vne_max_documents_per_domain: int | None = None,
    miller_madow: bool = False,
    skip_bad_rows: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    work: str | os.PathLike[str] | None = None,
    checkpoint_every_s: float = 60.0,
) -> EntropyProfile:
    """Run the entropy pass over `corpus` and compute the requested measures per domain (nats).

    `measures` ⊆ {se, ce, je, vne}. `embedder` (used for `vne` only) is a `mixlab.embed` name or any
    object with `.embed(texts) -> [n, d]` (picklable for multi-process engines). `seed` picks the window
    order of the convergence samples only; the full-sample entropies do not depend on it.

    With `work` (a directory, `mixlab.files.WorkDir`) the merged counts of the shards done so far are saved
    in `work/entropy.checkpoint` every `checkpoint_every_s` seconds (less often when writing them takes over
    5 % of that), and a later call with the same corpus and settings resumes after them (the results are
    identical to an uninterrupted pass: counts merge in the same shard order); other settings start afresh.
    """
    measures = tuple(dict.fromkeys(m.strip().lower() for m in measures if m.strip()))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise BadInput(f"`measures` {','.join(measures)}: expected a subset of {','.join(MEASURES)}")
    if seq_len < 2:
        raise BadInput(f"`seq_len` {seq_len}: must be at least 2")
    if max_tokens_per_domain is not None and max_tokens_per_domain < seq_len:
        raise BadInput(
            f"`max_tokens_per_domain` {max_tokens_per_domain}: must be at least `seq_len` {seq_len}"
        )
    for name, value in (
        ("max_tokens_per_domain", max_tokens_per_domain),
        ("vne_max_documents_per_domain", vne_max_documents_per_domain),
    ):
        if value is not None and value < 1:
            raise BadInput(f"`{name}` {value}: must be positive")
    if not checkpoint_every_s >= 0:  # also NaN, which would never save
        raise BadInput(f"`checkpoint_every_s` {checkpoint_every_s}: must be a number of seconds ≥ 0")
    emb = None
    if "vne" in measures:
        emb = get_embedder(embedder) if isinstance(embedder, str) else embedder
    fractions = check_fractions(fractions)
    engine = engine or LocalEngine(1)
    fn = ShardCounting(
        tokenizer=tokenizer,
        seq_len=seq_len,
        fractions=fractions,
        embedder=emb,
        skip_bad_rows=skip_bad_rows,
        seed=seed,
    )
    tasks = shard_tasks(corpus, max_tokens_per_domain, vne_max_documents_per_domain if emb else None)
    work_dir, resumed, stacks = None, 0, {}
    if work is not None:
        work_settings = _work_settings(
            corpus,
            tokenizer,
            tasks,
            seq_len=seq_len,
            fractions=fractions,
            embedder=emb,
            skip=skip_bad_rows,
            seed=seed,
        )
        work_dir = WorkDir(work, work_settings)
        # opened only where it exists or a checkpoint is due: a pass that fails early leaves nothing behind
        if work_dir.path.exists() and work_dir.open():
            resumed, stacks = _resume(work_dir.path / CHECKPOINT, len(tasks))
    saved, interval = time.monotonic(), checkpoint_every_s
    for done, result in enumerate(engine.imap(fn, tasks[resumed:], "entropy pass"), start=resumed + 1):
        stacks = merge_counts(stacks, result)
        if work_dir is not None and done < len(tasks) and time.monotonic() - saved >= interval:
            start = time.monotonic()
            if not work_dir.path.exists():
                work_dir.open()
            with atomic_path(work_dir.path / CHECKPOINT) as tmp:
                tmp.write_bytes(pickle.dumps({"done": done, "stacks": stacks}, protocol=5))
            saved = time.monotonic()
            # the counts grow with the corpus: keep checkpointing under ~5% of the pass
            interval = max(checkpoint_every_s, 20 * (saved - start))
    merged = {domain: stack.result() for domain, stack in stacks.items()}
    domains = {}
    for domain in corpus.domains:
        if domain not in merged or merged[domain].tokens == 0:
            raise BadInput(f"{corpus.root}/{domain}: no tokens to count (every row empty or skipped)")
        domains[domain] = domain_entropies(
            merged[domain], tokenizer.vocab_size, measures, fractions, miller_madow
        )
    settings = {
        "corpus": corpus.root,
        "tokenizer": tokenizer.spec,
        "vocab_size": tokenizer.vocab_size,
        "seq_len": seq_len,
        "max_tokens_per_domain": max_tokens_per_domain,
        "miller_madow": miller_madow,
        "embedder": getattr(emb, "name", type(emb).__name__) if emb is not None else None,
        "vne_max_documents_per_domain": vne_max_documents_per_domain if emb is not None else None,
        "seed": seed,
        "units": "nats",
        "convergence_order": "windows in a fixed hash-shuffled order (nested samples)",
    }
    return EntropyProfile(domains, measures, settings)


def write_profile(profile: EntropyProfile, out: str | os.PathLike[str]) -> None:
    """Write `out/entropy.json` (the profile), `out/mixtures.csv` and `out/mixtures.png` (its mixtures)."""
    out = Path(out)
    domains = list(profile.domains)
    mixtures = profile.mixtures()
    write_json(out / "entropy.json", profile.to_dict())
    write_mixtures(out / "mixtures.csv", mixtures, domains)
    title = f"entropy mixtures ({profile.settings['tokenizer']})"
    plot_mixtures(out / "mixtures.png", mixtures, domains, title=title)


def profile_to_dir(
    corpus: Corpus,
    tokenizer: Tokenizer,
    out: str | os.PathLike[str],
    engine: Engine | None = None,
    **settings: Any,
) -> EntropyProfile:
    """`profile_corpus` (`settings`: its keyword arguments but `work`) and `write_profile` to `out`.

    The pass checkpoints into `OUT.work/` beside `out`; a rerun with the same corpus and settings resumes
    there, and the work directory is removed once the outputs are complete.
    """
    out = Path(out).resolve()
    work = out.with_name(out.name + ".work")
    profile = profile_corpus(corpus, tokenizer, engine, work=work, **settings)
    write_profile(profile, out)
    shutil.rmtree(work, ignore_errors=True)  # the outputs are complete: the checkpoint has done its job
    return profile


__all__ = [
    "MEASURES",
    "TOKEN_MEASURES",
    "EntropyProfile",
    "domain_entropies",
    "profile_corpus",
    "profile_to_dir",
    "write_profile",
]
