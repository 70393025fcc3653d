"""Proxy sweeps: one proxy run per mixture, observations appended to `DIR/runs.csv` as they are produced.

Layout of a sweep directory:

    DIR/sweep.json               tokenizer, streams and training config (a resumed sweep must match)
    DIR/mixtures.csv             every mixture of the sweep (earlier invocations' ones kept)
    DIR/runs.csv                 run,step,tokens,domain,loss   (loss: mean token cross-entropy, nats)
    DIR/runs/<name>/meta.json    a finished run: config, parameters, tokens/s, wall time, epochs, history
    DIR/runs/<name>/checkpoint.pt  a partly trained run (removed once it finishes)

Resuming: at start `runs.csv` is rebuilt from the finished runs' `meta.json` and the partial runs'
checkpoints (so rows appended after the last checkpoint, or a line torn by a kill, disappear and are
recomputed identically), finished runs are skipped, partial runs continue from their checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixlab.corpus import Corpus, Tokenizer, load_tokenizer
from mixlab.corpus.tokenizer import DEFAULT_TOKENIZER
from mixlab.engine import Engine
from mixlab.errors import BadInput
from mixlab.files import write_json
from mixlab.mixture import Mixture, read_mixtures, write_mixtures
from mixlab.progress import log
from mixlab.proxy.data import Streams, prepare_streams
from mixlab.proxy.train import META, RunResult, TrainConfig, read_checkpoint, train_run
from mixlab.runs import RunsAppender

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


def _run_record(run_dir: Path) -> tuple[list[float] | None, list[dict[str, Any]]]:
    """(the weights a finished or partial run trained on, None when it has none; its eval history)."""
    meta_path = run_dir / META
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("status") == "done":
            return meta["weights"], meta["history"]
    checkpoint = read_checkpoint(run_dir)
    if checkpoint is None:
        return None, []
    return checkpoint.get("weights"), checkpoint["history"]


def _as_trained(mixture: Mixture, weights: list[float] | None, domains: Sequence[str]) -> Mixture:
    """`mixture` with the exact weights its run trained on, when they agree to the 1e-9 that mixtures.csv
    keeps (its 10 digits round them), so a re-read mixture resumes its run instead of retraining it."""
    if weights is None or len(weights) != len(domains):
        return mixture
    if any(abs(w - mixture.weights.get(d, 0.0)) > 1e-9 for d, w in zip(domains, weights, strict=True)):
        return mixture
    return Mixture(mixture.name, dict(zip(domains, weights, strict=True)), mixture.meta)


def _merge_mixtures(out: Path, mixtures: Sequence[Mixture], domains: Sequence[str]) -> list[Mixture]:
    """The sweep's mixtures: those already in DIR/mixtures.csv, then new ones (same name must match)."""
    existing = read_mixtures(out / "mixtures.csv") if (out / "mixtures.csv").is_file() else []
    by_name = {m.name: m for m in existing}
    merged = list(existing)
    for m in mixtures:
        old = by_name.get(m.name)
        if old is None:
            merged.append(m)
            by_name[m.name] = m
        elif any(abs(old.weights.get(d, 0.0) - m.weights.get(d, 0.0)) > 1e-9 for d in domains):
            raise BadInput(
                f"{out / 'mixtures.csv'}: mixture '{m.name}' already in this sweep with other weights; "
                "rename it or use a new `out`"
            )
    return merged


def _check_sweep_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / "sweep.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        for key in sorted(set(old) | set(settings)):
            if old.get(key) != settings.get(key):
                raise BadInput(
                    f"{path}: field '{key}' was {old.get(key)!r}, now {settings.get(key)!r}; "
                    "a sweep resumes only with the same settings (use a new `out`)"
                )
    write_json(path, settings)


def run_sweep(
    corpus: Corpus | str | os.PathLike[str],
    mixtures: Sequence[Mixture] | str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    tokenizer: Tokenizer | str = DEFAULT_TOKENIZER,
    val_tokens: int = 8192,
    max_tokens_per_domain: int | None = None,
    engine: Engine | None = None,
    on_step: Callable[[str, int], None] | None = None,
    skip_bad_rows: bool = False,
) -> list[RunResult]:
    """Train one proxy run per mixture into `out` (resumable; see the module docstring).

    corpus: a Corpus or its path. mixtures: Mixtures or a mixtures.csv/.json path.
    config: training settings shared by every run (same seed → same initialisation for every mixture).
    tokenizer, val_tokens, max_tokens_per_domain, engine, skip_bad_rows: how the token streams are prepared
        (`prepare_streams`; cached).
    on_step: called with (run name, completed steps) after every update.
    Returns the result of every mixture of the sweep, in `DIR/mixtures.csv` order.
    """
    config = config or TrainConfig()
    corpus = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
    if not isinstance(mixtures, Sequence) or isinstance(mixtures, str):
        mixtures = read_mixtures(mixtures)
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer, corpus=corpus)
    for m in mixtures:
        unknown = [d for d in m.weights if d not in corpus.domains]
        if unknown:
            raise BadInput(
                f"mixture '{m.name}': domain(s) {', '.join(unknown)} not in {corpus.root} "
                f"(domains: {', '.join(corpus.domains)})"
            )
        if not _SAFE_NAME.match(m.name):
            raise BadInput(f"mixture '{m.name}': run names may use letters, digits and . _ + = - only")
    streams = prepare_streams(
        corpus, tok, val_tokens=val_tokens, max_tokens_per_domain=max_tokens_per_domain, engine=engine,
        skip_bad_rows=skip_bad_rows,
    )  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_sweep_settings(
        out,
        {
            "domains": streams.domains,
            "tokenizer": tok.spec,
            "streams": streams.path.name,
            "val_tokens": val_tokens,
            "max_tokens_per_domain": max_tokens_per_domain,
            "config": config.to_dict(),
        },
    )
    everything = _merge_mixtures(out, mixtures, streams.domains)
    write_mixtures(out / "mixtures.csv", everything, streams.domains)
    return _train_all(streams, everything, config, out, on_step)


def _train_all(
    streams: Streams,
    mixtures: Sequence[Mixture],
    config: TrainConfig,
    out: Path,
    on_step: Callable[[str, int], None] | None,
) -> list[RunResult]:
    results = []
    records = {m.name: _run_record(out / "runs" / m.name) for m in mixtures}
    mixtures = [_as_trained(m, records[m.name][0], streams.domains) for m in mixtures]
    histories = {name: history for name, (_, history) in records.items()}
    with RunsAppender(out / "runs.csv", histories) as runs_csv:
        for i, m in enumerate(mixtures, start=1):
            log(f"[{i}/{len(mixtures)}] run {m.name}")
            step_hook = None if on_step is None else (lambda s, name=m.name: on_step(name, s))
            results.append(
                train_run(
                    streams,
                    m,
                    config,
                    out / "runs" / m.name,
                    on_eval=functools.partial(runs_csv.append, m.name),
                    on_step=step_hook,
                )
            )
    return results
