"""`mixlab demo --text-field --skip-bad-rows`: a user corpus is read the same way by every stage of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixlab.demo import Demo, DemoConfig
from mixlab.errors import BadInput


def _corpus(root: Path) -> Path:
    """Two domains whose text is under `body`; beta's shard has one malformed line in the middle."""
    for domain in ("alpha", "beta"):
        (root / domain).mkdir(parents=True)
        lines = [
            json.dumps({"body": f"{domain} document {i}: " + "words of text " * (4 + i % 5)})
            for i in range(40)
        ]
        if domain == "beta":
            lines.insert(20, '{"body": "cut off')
        (root / domain / "part-0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_demo_reads_the_text_field_and_skips_bad_rows_when_asked(tmp_path: Path) -> None:
    import dataclasses

    corpus = _corpus(tmp_path / "corpus")
    config = dataclasses.replace(DemoConfig.quick(), tokenizer="bpe:300", text_field="body")
    with pytest.raises(BadInput, match="part-0.jsonl"):
        Demo(tmp_path / "strict", config, corpus=corpus).run(only=["stats"])
    assert not (tmp_path / "strict" / "stats" / "available.json").exists()

    skipping = dataclasses.replace(config, skip_bad_rows=True)
    Demo(tmp_path / "out", skipping, corpus=corpus).run(only=["stats"])
    stats = json.loads((tmp_path / "out" / "stats" / "corpus_stats.json").read_text())
    assert stats["domains"]["alpha"]["documents"] == 40 and stats["domains"]["beta"]["documents"] == 40
    commands = (tmp_path / "out" / "commands.sh").read_text()
    assert "--text-field body" in commands and "--skip-bad-rows" in commands
