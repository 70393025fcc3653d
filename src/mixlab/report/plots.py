"""Figures for the report (`mixlab.figures`), each returned as a base64 PNG string ready for a data: URI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixlab.figures import figure, png_base64

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 80


def _png(fig: Figure) -> str:
    return png_base64(fig, dpi=DPI, bbox_inches="tight")


def grouped_bars(
    values: Mapping[str, Sequence[float]],
    categories: Sequence[str],
    ylabel: str,
    title: str,
    errors: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> str:
    """One group of bars per category, one bar per series. `values[series]` has shape [len(categories)];
    `errors[series]` = (lower, upper) absolute bounds drawn as error bars."""
    n = max(len(values), 1)
    x = np.arange(len(categories))
    width = 0.8 / n
    fig = figure(figsize=(min(14.0, max(6.0, 0.25 * len(categories) * n + 2)), 3.8))
    ax = fig.subplots()
    for k, (series, ys) in enumerate(values.items()):
        ys = np.asarray(ys, dtype=float)
        yerr = None
        if errors and series in errors:
            lo, hi = (np.asarray(a, dtype=float) for a in errors[series])
            yerr = np.vstack([np.clip(ys - lo, 0, None), np.clip(hi - ys, 0, None)])
        ax.bar(x + (k - (n - 1) / 2) * width, ys, width, label=series, yerr=yerr, capsize=2)
    ax.set_xticks(x, categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(n, 6))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def learning_curves(runs: pd.DataFrame, title: str, xcol: str = "step") -> str:
    """Loss against `xcol`: one panel per validation domain plus one for the domain average, a line per run.

    `runs` has the columns of runs.csv (run, step, tokens, domain, loss); loss in nats per token."""
    domains = sorted(runs["domain"].unique())
    panels = [*domains, "average"]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = figure(figsize=(3.2 * cols, 2.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    avg = runs.groupby(["run", xcol], as_index=False)["loss"].mean()
    for ax, panel in zip(axes.flat, panels, strict=False):
        data = avg if panel == "average" else runs[runs["domain"] == panel]
        for run, curve in data.groupby("run", sort=True):
            curve = curve.sort_values(xcol)
            ax.plot(curve[xcol], curve["loss"], marker=".", ms=3, lw=1, label=str(run))
        ax.set_title(panel, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=10)
    fig.supxlabel(xcol, fontsize=8)
    fig.supylabel("validation loss (nats/token)", fontsize=8)
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    return _png(fig)


def distributions(scores: pd.DataFrame, columns: Sequence[str], title: str) -> str:
    """Box plots of each score column per domain (one panel per column)."""
    domains = sorted(scores["domain"].astype(str).unique())
    fig = figure(figsize=(3.6 * len(columns), 3.2))
    axes = fig.subplots(1, len(columns), squeeze=False)
    for ax, col in zip(axes.flat, columns, strict=True):
        data = [scores.loc[scores["domain"] == d, col].dropna().to_numpy(dtype=float) for d in domains]
        ax.boxplot(data, tick_labels=domains, showfliers=False)
        ax.set_title(col, fontsize=9)
        ax.tick_params(axis="x", labelrotation=40, labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def histogram_bars(counts: Mapping[str, float], xlabel: str, ylabel: str, title: str) -> str:
    """Bars of a precomputed histogram {bin label: count} (log y when counts span decades)."""
    labels = list(counts)
    ys = np.array([float(counts[k]) for k in labels])
    fig = figure(figsize=(max(4.0, 0.45 * len(labels) + 1.5), 3.0))
    ax = fig.subplots()
    ax.bar(range(len(labels)), ys, color="#4C72B0")
    ax.set_xticks(range(len(labels)), labels)
    if ys.size and ys.min() > 0 and ys.max() / ys.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def method_curves(curves: Mapping[str, Sequence[tuple[float, float, float]]], xlabel: str, title: str) -> str:
    """Average validation loss per method: `curves[method]` = [(x, mean, std)] with a ±std band."""
    fig = figure(figsize=(7.0, 3.8))
    ax = fig.subplots()
    for method, pts in curves.items():
        arr = np.asarray(pts, dtype=float).reshape(-1, 3)
        ax.plot(arr[:, 0], arr[:, 1], marker=".", ms=3, lw=1.2, label=method)
        if np.any(arr[:, 2] > 0):
            ax.fill_between(arr[:, 0], arr[:, 1] - arr[:, 2], arr[:, 1] + arr[:, 2], alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean validation loss (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)
