"""The figure of `mixlab entropy`: mixtures.png (one bar per mixture and domain)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mixlab.figures import figure, save_png
from mixlab.mixture import Mixture


def plot_mixtures(
    path: str | os.PathLike[str], mixtures: Sequence[Mixture], domains: Sequence[str], title: str = ""
) -> None:
    """Grouped bar chart: one group per domain, one bar per mixture (its proportion of that domain)."""
    n_mix, n_dom = len(mixtures), len(domains)
    width = 0.8 / max(n_mix, 1)
    x = np.arange(n_dom)
    fig = figure(figsize=(max(6.0, 0.9 * n_dom + 2.5), 4.0), dpi=120)
    ax = fig.subplots()
    for k, mixture in enumerate(mixtures):
        ax.bar(x + (k - (n_mix - 1) / 2) * width, mixture.vector(domains), width, label=mixture.name)
    ax.set_xticks(x, list(domains), rotation=30 if n_dom > 6 else 0, ha="right" if n_dom > 6 else "center")
    top = max((float(m.vector(domains).max()) for m in mixtures), default=1.0)
    ax.set_ylim(0, min(1.0, top * 1.25) if top > 0 else 1.0)
    ax.set_ylabel("proportion")
    ax.set_title(title)
    ax.legend(ncols=min(n_mix, 6), fontsize="small", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
