"""The Ray engine: the same map over shards, run as Ray Data tasks on a local or remote cluster, and
whole tasks (a training run each) as plain Ray tasks holding the CPUs and GPUs they ask for.

`ray_address=None` starts a private local Ray runtime; "auto" or "ray://host:port" / "host:port" joins an
existing cluster (started with `ray start --head`). Workers must have mixlab installed (same venv).
Tasks that die with their worker are retried (Ray Data retries system failures by default), so a lost
node does not lose the pass; mixlab errors raised in a task (BadInput) are not retried but re-raised.
Whole tasks (`imap_tasks`) are retried the same way, up to TASK_RETRIES times each: a task must be
safe to run again (a sweep run resumes from its checkpoint).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from mixlab.engine.base import Engine, TaskResources
from mixlab.errors import BadInput, MixlabError
from mixlab.progress import track

T = TypeVar("T")
R = TypeVar("R")


class _Apply:
    """Picklable row mapper: unpickle the item, apply fn, pickle the result (bytes survive Arrow).

    mixlab's own errors (BadInput: a malformed row...) travel back as values and are re-raised by the
    driver unchanged; Ray would otherwise wrap them (losing the exit code) and count them as task failures.
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            outcome = (True, self.fn(pickle.loads(row["item"])))
        except MixlabError as exc:
            outcome = (False, exc)
        return {"index": row["index"], "result": pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)}


TASK_RETRIES = 3


def _run_task(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """Worker side of `imap_tasks`: (True, fn(item)), or (False, the mixlab error it raised) — returned as a
    value so that Ray neither retries it nor wraps it (the driver re-raises it unchanged)."""
    try:
        return True, fn(item)
    except MixlabError as exc:
        return False, exc


def _in_order(rows: Iterator[dict[str, Any]]) -> Iterator[Any]:
    """Unpickled results in index order, whatever order the rows arrive in; re-raises mixlab errors."""
    pending: dict[int, bytes] = {}
    next_index = 0
    for row in rows:
        pending[int(row["index"])] = row["result"]
        while next_index in pending:
            ok, value = pickle.loads(pending.pop(next_index))
            if not ok:
                raise value
            yield value
            next_index += 1


def _as_completed(pending: dict[Any, int]) -> Iterator[tuple[int, Any]]:
    """(index, result) of each task as it finishes; finished tasks leave `pending`; re-raises mixlab errors."""
    import ray

    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ref)
        ok, value = ray.get(ref)
        if not ok:
            raise value
        yield index, value


# Ray Data's usage-metrics poller runs until the process exits (it only queries Prometheus over HTTP)
_LIFELONG_RAY_DATA_THREADS = {"data-usage-metrics-poller"}


def _started_by_ray_data(thread: threading.Thread) -> bool:
    """A driver thread that Ray Data starts for one iteration (executor, prefetcher, block fetchers)."""
    run = getattr(thread, "_target", None) or type(thread).run
    return (
        getattr(run, "__module__", "").startswith("ray.data.")
        and thread.name not in _LIFELONG_RAY_DATA_THREADS
    )


def _wait_for_ray_data_threads(timeout_s: float) -> None:
    """Wait (bounded) for the driver threads Ray Data starts for an iteration to finish.

    Ray Data does not join its prefetcher and block-fetching threads when an iterator is closed early
    (mixlab stops at the first bad row). One that calls into Ray after `ray.shutdown()` makes Ray
    quick-exit the whole process with status 1 and no message — so shut down only once they are gone.
    """
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and _started_by_ray_data(thread):
            thread.join(max(0.0, deadline - time.monotonic()))


class RayEngine(Engine):
    """Runs the map on a Ray Data actor pool, one block per item, results streamed back in order; whole
    tasks (`imap_tasks`) as plain Ray tasks, results handed back as they finish."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        import ray

        self.workers = workers
        self.address = address
        self._started_here = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                kwargs["address"] = address
            else:  # private: without "local" Ray joins a cluster that `ray start` left on this machine
                kwargs["address"] = "local"
                if workers:
                    kwargs["num_cpus"] = workers
            # ray.init replaces the SIGTERM handler with sys.exit(15); mixlab's own (unwind, exit 143) stays
            handler = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise BadInput(f"`ray_address` {address}: cannot connect to a Ray cluster ({exc})") from None
            finally:
                if handler is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, handler)
            self._started_here = True

    def imap(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> Iterator[R]:
        import ray
        import ray.data

        items = list(items)
        if not items:
            return
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        # mixlab shows its own progress; Ray Data's per-pass INFO lines still go to its session log file
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        for handler in logging.getLogger("ray.data").handlers:
            if handler.get_name() == "console":
                handler.setLevel(max(handler.level, logging.WARNING))
        # Ray Data's thread prefetcher is never stopped when an iteration ends early and would outlive
        # ray.shutdown(); the actor prefetcher leaves no thread behind.
        ctx.actor_prefetcher_enabled = True
        rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        # An actor pool: fn (a partial holding a tokenizer or a model) is deserialised once per actor,
        # not once per task.
        actors = min(len(rows), self.workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
            _Apply, fn_constructor_args=(fn,), compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1
        )
        rows_iter = iter(ds.iter_rows())
        try:
            yield from track(_in_order(rows_iter), len(items), description or "map (ray)")
        finally:
            # Stops the executor and tells Ray Data's threads to stop now, not when garbage-collected
            # (an exception's traceback can keep the iterator alive for a long time).
            rows_iter.close()

    tasks_in_process = False

    def imap_tasks(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        resources: TaskResources | None = None,
        names: Sequence[str] | None = None,
        description: str = "",
    ) -> Iterator[tuple[int, R]]:
        """One Ray task per item (`ray.remote(num_cpus=…, num_gpus=…)`), all submitted at once; (index,
        result) yielded as each finishes. `fn` is put in the object store once, not sent with each task.
        Tasks still running when the iteration stops early (an error, an interrupt) are cancelled."""
        import ray

        items = list(items)
        if not items:
            return
        resources = resources or TaskResources()
        self.check_resources(resources)
        remote = ray.remote(
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
            max_retries=TASK_RETRIES,
            retry_exceptions=False,
        )(_run_task)
        fn_ref = ray.put(fn)
        pending = {
            remote.options(name=names[i] if names else f"{description or 'task'} {i}").remote(fn_ref, item): i
            for i, item in enumerate(items)
        }
        try:
            yield from track(_as_completed(pending), len(items), description or "tasks (ray)")
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def task_gpus(self) -> int:
        import ray

        return int(ray.cluster_resources().get("GPU", 0))

    def check_resources(self, resources: TaskResources) -> None:
        """BadInput when no live node has the CPUs and GPUs one task asks for (Ray would wait forever)."""
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(n.get("CPU", 0) >= resources.cpus and n.get("GPU", 0) >= resources.gpus for n in nodes):
            largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
            raise BadInput(
                f"no node of the Ray cluster can hold a task of {resources.cpus} CPU(s) and "
                f"{resources.gpus} GPU(s) (largest node: {largest.get('CPU', 0):g} CPU(s), "
                f"{largest.get('GPU', 0):g} GPU(s))"
            )

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        # Also when joined to a cluster: Ray's exit hook disconnects the driver the same way.
        _wait_for_ray_data_threads(timeout_s=30.0)
        if self._started_here:
            ray.shutdown()
