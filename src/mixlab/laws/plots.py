"""Evaluation plots (`mixlab.figures`): per eval domain, observed vs predicted loss against step for the
test runs, and loss against the domain's share on log–log axes at each run's final predicted step."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from mixlab.figures import figure, save_png
from mixlab.files import atomic_dir


def plot_evaluation(predictions: pd.DataFrame, title: str, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write `<domain>.png` per eval domain into `out_dir` (replaced as a whole); returns the final paths."""
    out_dir = Path(out_dir)
    written = []
    with atomic_dir(out_dir) as tmp:
        defined = predictions[np.isfinite(predictions["predicted"].to_numpy(dtype=float))]
        for domain, sub in defined.groupby("domain", sort=False):
            fig = figure(figsize=(11, 4.2))
            ax_step, ax_share = fig.subplots(1, 2)
            runs = list(dict.fromkeys(sub["run"]))
            colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(runs), 1)))
            for colour, run in zip(colours, runs, strict=True):
                g = sub[sub["run"] == run].sort_values("step")
                ax_step.plot(
                    g["step"], g["observed"], "o", ms=3, color=colour, label=run if len(runs) <= 12 else None
                )
                ax_step.plot(g["step"], g["predicted"], "-", lw=1.2, color=colour)
            ax_step.set_xlabel("step")
            ax_step.set_ylabel("loss (nats)")
            ax_step.set_title(f"{domain}: observed (dots) vs predicted (lines)")
            if len(runs) <= 12:
                ax_step.legend(fontsize=7)
            finals = sub.sort_values("step").groupby("run").tail(1)
            finals = finals[finals["share"] > 0]
            ax_share.loglog(finals["share"], finals["observed"], "o", label="observed")
            ax_share.loglog(finals["share"], finals["predicted"], "x", label="predicted")
            ax_share.set_xlabel(f"share of {domain}")
            ax_share.set_ylabel("loss at final step")
            ax_share.set_title("loss vs proportion (log–log)")
            ax_share.legend(fontsize=7)
            fig.suptitle(title)
            fig.tight_layout()
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(domain)) + ".png"
            save_png(fig, tmp / name, dpi=90)
            written.append(out_dir / name)
    return written
