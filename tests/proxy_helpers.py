"""Shared by the proxy tests: a small real-text corpus written from the standard library."""

from __future__ import annotations

import ast
import json
import sysconfig
from pathlib import Path


def write_stdlib_corpus(root: Path, n_files: int = 40) -> Path:
    """Two real-text domains from this Python's standard library: source code and docstrings."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code, docs = [], []
    for f in sorted(stdlib.glob("*.py"))[:n_files]:
        text = f.read_text(encoding="utf-8", errors="replace")
        code.append(text[:5000])
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 80:
                    docs.append(doc)
    for name, texts in (("code", code), ("docs", docs[:300])):
        (root / name).mkdir(parents=True, exist_ok=True)
        with open(root / name / "part.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    return root
