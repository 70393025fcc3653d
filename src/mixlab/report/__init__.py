"""The HTML report: find a run's artefacts, plot them, write one self-contained page."""

from mixlab.report.artefacts import Artefacts, collect
from mixlab.report.html import render, write_report
from mixlab.report.summary import comparison_table, mean_curves, paired_interval, reading, verdict

__all__ = [
    "Artefacts",
    "collect",
    "comparison_table",
    "mean_curves",
    "paired_interval",
    "reading",
    "render",
    "verdict",
    "write_report",
]
