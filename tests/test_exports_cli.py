"""`mixlab export` through the real script: one way to name a mixture, and refusals that are exit 2."""

from __future__ import annotations

import json

import pytest
import yaml

from mixcli import assert_one_line_cause, run_mixlab
from mixlab.mixture import Mixture, write_mixtures

A = Mixture.from_weights("ce", {"a": 0.2, "b": 0.8})
B = Mixture.from_weights("uniform", {"a": 0.5, "b": 0.5})


def test_export_names_and_refusals(tmp_path):
    csv = tmp_path / "mixtures.csv"
    write_mixtures(csv, [A, B])
    res = run_mixlab("export", str(csv), "--format", "megatron")
    assert_one_line_cause(res, "mixtures.csv:ROW", "rows: ce, uniform")
    (tmp_path / "paths.json").write_text(json.dumps({"a": "/d/a", "b": ["/d/b0"]}))
    res = run_mixlab("export", f"{csv}:uniform", "-f", "olmix", "--paths", str(tmp_path / "paths.json"))
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(res.stdout)["mix"] == {
        "a": {"weight": 0.5, "repetition_factor": 1.0},
        "b": {"weight": 0.5, "repetition_factor": 1.0},
    }
    (tmp_path / "launch.yaml").write_text(res.stdout)
    res = run_mixlab("export", str(tmp_path / "launch.yaml"), "-f", "doremi")
    assert json.loads(res.stdout) == {"train_domain_weights": {"a": 0.5, "b": 0.5}}
    (tmp_path / "paths.json").write_text(json.dumps({"a": "/d/a"}))
    res = run_mixlab("export", f"{csv}:ce", "-f", "megatron", "--paths", str(tmp_path / "paths.json"))
    assert_one_line_cause(res, "--paths", "domain 'b'")
    (tmp_path / "paths.json").write_text(json.dumps({"a": "/d/my a", "b": "/d/b"}))
    res = run_mixlab("export", f"{csv}:ce", "-f", "megatron", "--paths", str(tmp_path / "paths.json"))
    assert_one_line_cause(res, "--paths", "whitespace")
    res = run_mixlab("export", f"{csv}:ce", "-f", "hf")
    assert_one_line_cause(res, "--stats", "--corpus")
    (tmp_path / "stats.json").write_text(json.dumps({"domains": {"a": {"documents": 2, "tokens": 20}}}))
    res = run_mixlab("export", f"{csv}:ce", "-f", "hf", "--stats", str(tmp_path / "stats.json"))
    assert_one_line_cause(res, "--stats", "domain 'b'")
    (tmp_path / "stats.json").write_text(
        json.dumps({"domains": {"a": {"documents": 2, "tokens": 20}, "b": {"documents": 1, "tokens": 80}}})
    )
    res = run_mixlab("export", f"{csv}:ce", "-f", "hf", "--stats", str(tmp_path / "stats.json"))
    # p ∝ w / L = (0.2/10, 0.8/80) = (0.02, 0.01)
    assert json.loads(res.stdout)["probabilities"] == pytest.approx([2 / 3, 1 / 3])
