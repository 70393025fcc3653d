"""The figure of `mixlab sample`: summary.png (domain shares before/after, copies per document)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixlab.figures import figure, png_bytes


def summary_png(summary: Mapping[str, Any]) -> bytes:
    """PNG of two panels: domain token shares before/after sampling, and the histogram of copies per
    document. (No pyplot: a standalone Figure can be drawn off the main thread.)"""
    domains = list(summary["domains"])
    before = [summary["domains"][d]["before"] for d in domains]
    after = [summary["domains"][d]["after"] for d in domains]
    fig = figure(figsize=(12, 4.5))
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
    return png_bytes(fig, dpi=100)


__all__ = ["summary_png"]
