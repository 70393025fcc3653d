"""Shared by the proxy tests: a small slice of the demo corpus, selected by a manifest."""

from __future__ import annotations

from pathlib import Path


def demo_slice(demo_corpus: Path, out: Path, domains: tuple[str, ...] = ("code", "wiki", "news")) -> Path:
    """A TOML manifest over some domains of the (read-only) demo corpus; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["[domains]"] + [f'{d} = ["{(demo_corpus / d).as_posix()}/*.jsonl.gz"]' for d in domains]
    manifest = out / "slice.toml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
