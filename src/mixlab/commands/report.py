"""`mixlab report`: one self-contained HTML page from the artefacts of mixlab runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mixlab.commands.common import out_console


def report(
    dirs: Annotated[
        list[Path], typer.Argument(help="Directories (searched recursively) or files of mixlab artefacts.")
    ],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Page title.")] = "mixlab report",
) -> None:
    """Render corpus stats, entropy mixtures, sweeps, law metrics, optima, SampleMix diagnostics and method
    comparisons found under DIRS into one HTML page (plots embedded, no external assets).

    Example: mixlab report demo_out --out demo_out/report.html
    """
    from mixlab.report import write_report

    found = write_report(dirs, out, title)
    kinds = [f for f in found.__dataclass_fields__ if getattr(found, f)]
    out_console.print(f"wrote {out} ({', '.join(kinds)})")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
