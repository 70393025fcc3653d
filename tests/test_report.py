"""The HTML report renders every section from contract-format artefacts, and loads in a real headless browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.errors import BadInput
from mixlab.report import collect, comparison_table, render, write_report

DOMAINS = ["code", "news", "wiki"]


def bimix_loss(
    r: float,
    step: float,
    a: float = 1.0,
    alpha: float = 0.1,
    b: float = 8.0,
    beta: float = 0.5,
    c: float = 2.5,
) -> float:
    return a / r**alpha * (b / step**beta + c)


def write_artefacts(root: Path) -> None:
    """A small demo directory in the DESIGN.md contract formats, with BiMix-shaped losses."""
    rng = np.random.default_rng(0)
    (root / "corpus").mkdir(parents=True)
    tokens = {"code": 50_000, "news": 20_000, "wiki": 30_000}
    total = sum(tokens.values())
    stats = {
        "tokenizer": "gpt2",
        "domains": {
            d: {
                "documents": t // 500,
                "bytes": t * 4,
                "tokens": t,
                "token_share": t / total,
                "byte_share": t / total,
                "skipped": 0,
            }
            for d, t in tokens.items()
        },
        "total": {"documents": total // 500, "bytes": total * 4, "tokens": total, "skipped": 0},
    }
    (root / "corpus" / "stats.json").write_text(json.dumps(stats))
    ent = {
        "domains": {
            d: {"se": 6 + i, "ce": 3 + i / 2, "je": 9 + 1.5 * i, "vne": 2 + i} for i, d in enumerate(DOMAINS)
        }
    }
    (root / "entropy").mkdir()
    (root / "entropy" / "entropy.json").write_text(json.dumps(ent))
    mixtures = {
        "natural": [tokens[d] / total for d in DOMAINS],
        "uniform": [1 / 3] * 3,
        "ce": [0.2, 0.3, 0.5],
        "random-0": [0.6, 0.1, 0.3],
    }
    lines = ["name," + ",".join(DOMAINS)] + [
        f"{n}," + ",".join(f"{w:.6f}" for w in ws) for n, ws in mixtures.items()
    ]
    (root / "entropy" / "mixtures.csv").write_text("\n".join(lines) + "\n")
    rows = []
    for run, ws in mixtures.items():
        for step in (50, 100, 150, 200):
            for d, w in zip(DOMAINS, ws, strict=True):
                rows.append((run, step, step * 4096, d, bimix_loss(w, step) + rng.normal(0, 0.01)))
    (root / "sweep").mkdir()
    pd.DataFrame(rows, columns=["run", "step", "tokens", "domain", "loss"]).to_csv(
        root / "sweep" / "runs.csv", index=False
    )
    (root / "laws").mkdir()
    for law in ("bimix", "dml"):
        for protocol in ("extrapolate", "unseen"):
            doms = {
                d: {"rel_error_pct": 0.5 + i, "r2_log": 0.9 - i / 10, "rmse": 0.01, "n_points": 4}
                for i, d in enumerate(DOMAINS)
            }
            summary = {
                "rel_error_pct": {"mean": 1.5, "worst": 2.5, "best": 0.5},
                "r2_log": {"mean": 0.8, "worst": 0.7, "best": 0.9},
                "spearman_final": 0.8,
            }
            (root / "laws" / f"metrics-{law}-{protocol}.json").write_text(
                json.dumps({"law": law, "protocol": protocol, "domains": doms, "summary": summary})
            )
    ranking = [{"law": law, "hyper": {}, "spearman_final": rho, "r2_log": 0.5, "rel_error_pct": 1.0,
                "fit_seconds": 0.1, "n_points": 8, "n_undefined": 0} for law, rho in (("dml", 0.9), ("bimix", 0.7))]  # fmt: skip
    (root / "laws" / "compare-laws.json").write_text(
        json.dumps(
            {
                "protocol": "kfold",
                "folds": 3,
                "step": 400,
                "n_runs": 4,
                "ranking": ranking,
                "failed": {},
                "recommended": {"law": "dml", "hyper": {}},
                "reason": "highest mean Spearman",
            }
        )  # fmt: skip
    )
    (root / "laws" / "law.json").write_text(
        json.dumps(
            {
                "law": "bimix",
                "domains": DOMAINS,
                "params": {"A": 1.0, **{d: {"alpha": 0.1, "B": 8.0, "beta": 0.5, "C": 2.5} for d in DOMAINS}},
            }
        )
    )
    (root / "optimum").mkdir()
    (root / "optimum" / "mixture.json").write_text(
        json.dumps(
            {
                "name": "bimix-opt",
                "weights": {"code": 0.3, "news": 0.3, "wiki": 0.4},
                "meta": {
                    "law": "bimix",
                    "step": 1000,
                    "method": "kkt",
                    "objective": 3.1,
                    "bounds": {d: [0.0, 1.0] for d in DOMAINS},
                    "predicted_loss": dict.fromkeys(DOMAINS, 3.1),
                    "references": {"natural": {"objective": 3.2}},
                    "bootstrap": {
                        "replicates": 20,
                        "failed": 0,
                        "level": 0.95,
                        "optimal_weights": {
                            "code": {"mean": 0.3, "lo": 0.25, "hi": 0.35},
                            "news": {"mean": 0.3, "lo": 0.2, "hi": 0.4},
                            "wiki": {"mean": 0.4, "lo": 0.35, "hi": 0.45},
                        },
                    },
                },
            }
        )
    )
    n = 300
    scores = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "domain": rng.choice(DOMAINS, n),
            "tokens": rng.integers(50, 500, n),
            "quality": rng.uniform(0, 1, n),
            "cluster": rng.integers(0, 8, n),
            "compactness": rng.uniform(0, 1, n),
            "separation": rng.uniform(0, 1, n),
            "diversity": rng.uniform(0, 1, n),
            "weight": rng.uniform(0, 1, n),
        }
    )
    (root / "samplemix").mkdir()
    scores.to_parquet(root / "samplemix" / "scores.parquet")
    sample = root / "samplemix" / "sample"
    (sample / "data").mkdir(parents=True)
    (sample / "summary.json").write_text(
        json.dumps(
            {
                "budget_tokens": 100_000,
                "realised_tokens": 99_870,
                "domains": {
                    "code": {
                        "before": 0.5,
                        "after": 0.3,
                        "sampled_tokens": 30_000,
                        "budget_tokens": 30_000.0,
                    },
                    "news": {
                        "before": 0.2,
                        "after": 0.3,
                        "sampled_tokens": 30_000,
                        "budget_tokens": 30_000.0,
                    },
                    "wiki": {
                        "before": 0.3,
                        "after": 0.4,
                        "sampled_tokens": 39_870,
                        "budget_tokens": 40_000.0,
                    },
                },
                "repeats_histogram": {"0": 120, "1": 150, "2": 25, "3": 5},
            }
        )
    )
    methods = {}
    for m, base in (("natural", 3.6), ("uniform", 3.55), ("samplemix", 3.5)):
        runs = []
        for seed in (0, 1):
            val = {d: base + 0.1 * i + rng.normal(0, 0.01) for i, d in enumerate(DOMAINS)}
            curve = [[s, s * 4096, base + 2.0 / s**0.5 + rng.normal(0, 0.01)] for s in (25, 50, 75, 100)]
            runs.append({"seed": seed, "val_loss": val, "curve": curve})
        methods[m] = {"mixture": dict(zip(DOMAINS, mixtures["uniform"], strict=True)), "runs": runs}
    (root / "results.json").write_text(
        json.dumps(
            {
                "comparison": {
                    "domains": DOMAINS,
                    "methods": methods,
                    "scale": {"parameters": 1_500_000, "tokens_per_model": 409_600},
                }
            }
        )
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artefacts")
    write_artefacts(root)
    return root


@pytest.fixture(scope="module")
def report_path(demo_dir: Path) -> Path:
    out = demo_dir / "report.html"
    result = CliRunner().invoke(app, ["report", str(demo_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_every_section_is_found_and_rendered(demo_dir: Path, report_path: Path) -> None:
    found = collect([demo_dir])
    assert len(found.metrics) == 4 and len(found.runs) == 1 and len(found.samples) == 1
    assert len(found.single_mixtures) == 1 and len(found.mixtures) == 1 and len(found.comparisons) == 1
    page = report_path.read_text()
    for anchor in (
        "corpus",
        "entropy",
        "mixtures",
        "sweep",
        "laws",
        "metrics",
        "law-selection",
        "optimum",
        "samplemix",
        "comparison",
        "reading",
    ):
        assert f'id="{anchor}"' in page, anchor
    assert 'id="missing"' not in page
    assert page.count("data:image/png;base64,") >= 7
    # no external assets: nothing fetched over the network or from disk
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "bimix-opt" in page and "0.2500" in page  # optimum and its bootstrap bound
    assert "<th>alpha</th>" in page and "<th>A</th>" in page  # law coefficients, shared A included


def test_comparison_table_mean_and_spread(demo_dir: Path) -> None:
    comp = json.loads((demo_dir / "results.json").read_text())["comparison"]
    rows = comparison_table(comp)
    assert [r["method"] for r in rows] == ["samplemix", "uniform", "natural"]
    runs = comp["methods"]["natural"]["runs"]
    avgs = [np.mean([r["val_loss"][d] for d in DOMAINS]) for r in runs]
    natural = rows[-1]
    assert natural["avg_mean"] == pytest.approx(np.mean(avgs))
    assert natural["avg_std"] == pytest.approx(np.std(avgs, ddof=1))
    assert natural["domains"]["code"][0] == pytest.approx(np.mean([r["val_loss"]["code"] for r in runs]))


def test_missing_artefacts_are_noted_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "mixtures.csv").write_text("name,a,b\nnatural,0.3,0.7\nuniform,1,1\n")
    page = render(collect([tmp_path]))
    assert 'id="mixtures"' in page and 'id="missing"' in page and "needs runs.csv" in page
    assert 'id="comparison"' not in page


def test_bad_artefacts_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "runs.csv").write_text("run,step,domain,loss\nnatural,10,code,abc\n")
    with pytest.raises(BadInput, match=r"runs.csv: row 2: field 'loss'"):
        collect([tmp_path])
    with pytest.raises(BadInput, match="no-such-dir: no such file or directory"):
        write_report([tmp_path / "no-such-dir"], tmp_path / "r.html")


def test_empty_directory_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert isinstance(result.exception, BadInput) and "no mixlab artefacts" in str(result.exception)
    assert not (tmp_path / "r.html").exists()


def chromium() -> str | None:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    return path


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


@pytest.mark.slow
def test_report_in_headless_chromium(report_path: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (CI: apt-get install -y chromium)")
    from PIL import Image

    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "shot.png"
    url = report_path.resolve().as_uri()
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env=env,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200)
    assert pixels.std() > 10, "screenshot is blank"
    assert (pixels < 128).mean() > 0.005, "no dark pixels: nothing rendered"
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
        check=True,
        capture_output=True,
        timeout=120,
        env=env,
        text=True,
    ).stdout
    assert 'id="comparison"' in dom and dom.count("<img") >= 7
    assert dom.lstrip().startswith("<!DOCTYPE html>") or dom.lstrip().startswith("<html")
    for marker in ("ERR_FILE_NOT_FOUND", "ERR_ACCESS_DENIED", "Traceback", "net::ERR", "This page isn"):
        assert marker not in dom, marker


def test_entropy_table_keeps_counts_as_integers() -> None:
    from mixlab.report.html import _per_domain_numbers, table

    per = _per_domain_numbers({"domains": {"web": {"documents": 12345, "tokens": 678901, "se": 6.5}}})
    assert per == {"web": {"documents": 12345, "tokens": 678901, "se": 6.5}}
    assert isinstance(per["web"]["documents"], int)
    html = table(["domain", "documents", "tokens", "se"], [["web", *per["web"].values()]])
    assert "12,345" in html and "678,901" in html and "6.5000" in html


def test_star_import_gives_every_name_in_all() -> None:
    namespace: dict[str, object] = {}
    exec("from mixlab.report import *", namespace)  # raised AttributeError while __all__ named read_runs
    import mixlab.report

    assert set(mixlab.report.__all__) <= set(namespace)
