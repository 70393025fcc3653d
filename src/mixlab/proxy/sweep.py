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

Where runs train: in this process one after another (the local engine; rows appended as each evaluation
is made), or one task per run on a cluster (`--engine ray`: each task holds `threads` CPUs, and one GPU
when the run's device is CUDA — or `auto` on a cluster with GPUs). A task reads the prepared streams
and writes its run directory by path, so on a multi-machine cluster the stream cache (MIXLAB_CACHE) and
the sweep directory must be on a disk every node sees. A task whose worker dies is retried by Ray and
resumes from the run's checkpoint. runs.csv is rewritten in mixture order as runs finish, so it is the
same file whatever order the tasks finish in, and the same as a local sweep's under the same seed.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mixlab.corpus import Corpus, Tokenizer, load_tokenizer
from mixlab.corpus.tokenizer import DEFAULT_TOKENIZER
from mixlab.engine import Engine
from mixlab.engine.base import TaskResources
from mixlab.errors import BadInput
from mixlab.files import write_json
from mixlab.mixture import Mixture, read_mixtures, write_mixtures
from mixlab.progress import log
from mixlab.proxy.data import Streams, prepare_streams
from mixlab.proxy.model import default_threads
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
    on_step: called with (run name, completed steps) after every update (only where runs train in this
        process: not on a cluster).
    Returns the result of every mixture of the sweep, in `DIR/mixtures.csv` order.
    """
    config = config or TrainConfig()
    on_tasks = engine is not None and not engine.tasks_in_process
    resources = checked_run_resources(config, engine) if on_tasks else None
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
    records = {m.name: _run_record(out / "runs" / m.name) for m in everything}
    everything = [_as_trained(m, records[m.name][0], streams.domains) for m in everything]
    histories = {name: history for name, (_, history) in records.items()}
    if resources is None:
        results = _train_here(streams, everything, config, out, histories, on_step)
    else:
        results = _train_on_tasks(engine, resources, streams, everything, config, out, histories)
    # Canonical at the end: a resumed sweep may have had several partial runs (a cluster trains runs at
    # the same time), whose rows this process appended after later runs' rows.
    _write_runs_csv(out, {r.name: r.history for r in results})
    return results


def _write_runs_csv(out: Path, histories: dict[str, Sequence[dict[str, Any]]]) -> None:
    """runs.csv rewritten atomically: the rows of `histories` ({run: eval history}) in their order."""
    RunsAppender(out / "runs.csv", histories)


def run_resources(config: TrainConfig, engine: Engine) -> TaskResources:
    """What a task training under `config` holds on `engine`: its threads as CPUs, and one GPU when it
    trains on CUDA (device cuda[:N], or auto where the engine's tasks can have a GPU)."""
    on_gpu = config.device.startswith("cuda") or (config.device == "auto" and engine.task_gpus() > 0)
    return TaskResources(cpus=config.threads or default_threads(), gpus=1 if on_gpu else 0)


def checked_run_resources(config: TrainConfig, engine: Engine) -> TaskResources:
    """`run_resources`, refused (BadInput) where no place of `engine` can hold them."""
    resources = run_resources(config, engine)
    try:
        engine.check_resources(resources)
    except BadInput as exc:
        raise BadInput(f"{exc}: a run's task holds `threads` CPU(s) (one GPU for CUDA)") from None
    return resources


def streams_on_this_node(path: Path) -> Streams:
    """The streams prepared at `path` by the driver, loaded where a cluster placed a task (by path: no
    arrays travel with the task)."""
    if not (path / "streams.json").is_file():
        raise BadInput(
            f"{path}: the prepared streams are not on this node; on a cluster the stream cache "
            "(MIXLAB_CACHE) and the output directory must be on a disk every node sees"
        )
    return Streams.load(path)


def _train_task(
    eval_domains: Sequence[str] | None, job: tuple[Path, Mixture, TrainConfig, Path]
) -> RunResult:
    """One proxy run where the engine placed it: streams and run directory by path."""
    streams_path, mixture, config, run_dir = job
    return train_run(streams_on_this_node(streams_path), mixture, config, run_dir, eval_domains=eval_domains)


def train_runs(
    engine: Engine,
    runs: Sequence[tuple[Streams, Mixture, TrainConfig, Path]],
    *,
    eval_domains: Sequence[str] | None = None,
    label: str = "run",
) -> Iterator[tuple[int, RunResult]]:
    """`train_run` of each (streams, mixture, config, run directory) as one task of `engine` — one after
    another in this process on the local engine, at the same time on a cluster — yielding (index, result)
    as each finishes. Each task holds `run_resources` of the first run's config; `label` + the mixture's
    name labels it. Runs resume from their checkpoints; done runs return without training."""
    if not runs:
        return
    resources = checked_run_resources(runs[0][2], engine)
    yield from engine.imap_tasks(
        functools.partial(_train_task, eval_domains),
        [(streams.path, mixture, config, Path(run_dir)) for streams, mixture, config, run_dir in runs],
        resources,
        names=[f"{label} {mixture.name}" for _, mixture, _, _ in runs],
        description=f"{label}s",
    )


def _train_on_tasks(
    engine: Engine,
    resources: TaskResources,
    streams: Streams,
    mixtures: Sequence[Mixture],
    config: TrainConfig,
    out: Path,
    histories: dict[str, Sequence[dict[str, Any]]],
) -> list[RunResult]:
    """One engine task per run not yet done, all at once; runs.csv rewritten in mixture order as each run
    finishes."""
    _write_runs_csv(out, histories)
    results = [_finished_run(out / "runs" / m.name, m, config, streams.domains) for m in mixtures]
    todo = [i for i, r in enumerate(results) if r is None]
    log(
        f"{len(todo)} of {len(mixtures)} runs to train, as tasks of {resources.cpus} CPU(s)"
        + (f" and {resources.gpus} GPU(s)" if resources.gpus else "")
        + " each"
    )
    runs = [(streams, mixtures[i], config, out / "runs" / mixtures[i].name) for i in todo]
    for done, (k, result) in enumerate(train_runs(engine, runs, label="sweep run"), start=1):
        log(f"[{done}/{len(todo)}] run {result.name} finished")
        results[todo[k]] = result
        histories[result.name] = result.history
        _write_runs_csv(out, histories)
    return [r for r in results if r is not None]


def _finished_run(
    run_dir: Path, mixture: Mixture, config: TrainConfig, domains: Sequence[str]
) -> RunResult | None:
    """The result of a run already done under `config` on `mixture` (what `train_run` returns for it without
    training), or None: the run still needs a task."""
    meta_path = run_dir / META
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    weights = [float(w) for w in mixture.vector(domains)]
    if (
        meta.get("status") != "done"
        or meta.get("config") != config.to_dict()
        or meta.get("weights") != weights
    ):
        return None
    return RunResult(mixture.name, meta["losses"], meta["history"], meta, steps_trained=0)


def _train_here(
    streams: Streams,
    mixtures: Sequence[Mixture],
    config: TrainConfig,
    out: Path,
    histories: dict[str, Sequence[dict[str, Any]]],
    on_step: Callable[[str, int], None] | None,
) -> list[RunResult]:
    """The runs one after another in this process, rows appended to runs.csv as evaluations are made."""
    results = []
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
