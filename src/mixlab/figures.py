"""The one plotting helper: pyplot-free matplotlib figures, saved as PNG (atomically, as bytes or base64).

A `matplotlib.figure.Figure` made without pyplot belongs to no global figure manager, so it can be drawn on
any thread and needs no backend switch (`savefig` to PNG uses the Agg canvas) and no `close`. matplotlib is
imported on first use only: the CLI's verbs that never plot do not pay for it.
"""

from __future__ import annotations

import base64
import io
import os
from typing import TYPE_CHECKING, Any

from mixlab.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def load_plotting() -> None:
    """Import everything a figure needs to draw and save (matplotlib, the Agg canvas, PIL's image plugins),
    so that plotting runs on another thread without importing there: a SIGTERM handled inside importlib's
    module-lock callback is swallowed ("Exception ignored") and leaves the import lock held by the main
    thread, and a thread importing behind it would never finish, nor would the command that joins it."""
    import matplotlib.backends.backend_agg  # noqa: F401 - the PNG canvas savefig looks up
    import matplotlib.figure  # noqa: F401
    import PIL.Image

    PIL.Image.preinit()


def figure(**options: Any) -> Figure:
    """A new standalone Figure (`options`: Figure's, e.g. figsize, dpi); rcParams apply as with pyplot."""
    from matplotlib.figure import Figure

    return Figure(**options)


def png_bytes(fig: Figure, **savefig: Any) -> bytes:
    """The figure as PNG bytes (`savefig`: matplotlib's savefig options, e.g. dpi, bbox_inches)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig)
    return buffer.getvalue()


def png_base64(fig: Figure, **savefig: Any) -> str:
    """The figure as base64 PNG text, ready for a `data:image/png;base64,` URI."""
    return base64.b64encode(png_bytes(fig, **savefig)).decode("ascii")


def save_png(fig: Figure, path: str | os.PathLike[str], **savefig: Any) -> None:
    """Write the figure to `path` as PNG, atomically (a temporary sibling renamed into place)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig)


__all__ = ["figure", "load_plotting", "png_base64", "png_bytes", "save_png"]
