"""Shared fixtures. Everything runs offline: models and tokenizers come from installed packages only."""

from __future__ import annotations

import os

# Before anything imports transformers/tokenizers: never reach a hub, and no tokenizer thread pools
# fighting pytest workers and our process pools for the 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# The property tests draw the same examples on every run, so a red test run can be reproduced and a green one
# is not luck; `pytest --hypothesis-profile explore` draws new examples to look for more failures.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")

DEMO_MB_PER_DOMAIN = 0.25


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real demo corpus (≥ 8 domains, ~0.25 MB of text each, several shards per domain).

    Built once per test run with `mixlab corpus demo --max-mb-per-domain 0.25` (under a lock: pytest-xdist's
    workers share the first one's); the source packages are downloaded once into ~/.cache/mixlab (or
    $MIXLAB_CACHE) and reused by later runs. Read-only: copy it if a test needs to change it.
    """
    from filelock import FileLock

    from mixlab.demo.corpus import build_demo_corpus

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's directory, above every worker's own
    out = shared / "demo_corpus"
    with FileLock(str(shared / "demo_corpus.lock")):
        if not (out / "SOURCES.json").exists():
            build_demo_corpus(out, max_mb_per_domain=DEMO_MB_PER_DOMAIN, seed=0)
    return out


# pytest-xdist's loadfile hands files to workers in collection order: the longest files go first, so no worker
# is left with one of them at the end while the others idle (seconds on 2 busy cores, measured with
# --durations=0; the order only, not the set, so a stale entry costs nothing).
LONGEST_FIRST = (
    "test_interrupt.py", "test_cluster.py", "test_demo.py", "test_p4_ray_sweep.py", "test_entropy_pass.py",
    "test_samplemix_quality.py", "test_integrations_ray.py", "test_engines.py", "test_bad_input.py",
    "test_laws.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
