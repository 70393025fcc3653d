"""`read_mixture_ref`: one way to name a single mixture (JSON, one-row CSV, FILE.csv:ROW, mixlab's exports)."""

import json

import pytest

from mixlab.errors import BadInput
from mixlab.exports import export_mixture
from mixlab.exports.hf import export_hf
from mixlab.mixture import Mixture, read_mixture_ref, write_mixture_json, write_mixtures

A = Mixture.from_weights("ce", {"a": 0.2, "b": 0.8})
B = Mixture.from_weights("uniform", {"a": 0.5, "b": 0.5})


def test_csv_row_by_name_and_one_row_csv(tmp_path):
    write_mixtures(tmp_path / "mixtures.csv", [A, B])
    assert read_mixture_ref(f"{tmp_path}/mixtures.csv:uniform") == B
    write_mixtures(tmp_path / "one.csv", [A])
    assert read_mixture_ref(tmp_path / "one.csv") == A


def test_multi_row_csv_without_row_lists_rows(tmp_path):
    write_mixtures(tmp_path / "mixtures.csv", [A, B])
    with pytest.raises(BadInput, match=r"2 mixtures; pick one as .*mixtures.csv:ROW \(rows: ce, uniform\)"):
        read_mixture_ref(tmp_path / "mixtures.csv")
    with pytest.raises(BadInput, match=r"no row named 'x' \(rows: ce, uniform\)"):
        read_mixture_ref(f"{tmp_path}/mixtures.csv:x")


def test_own_exports_read_back(tmp_path):
    write_mixture_json(tmp_path / "m.json", A)
    (tmp_path / "m.yaml").write_text(export_mixture(A, "yaml"))
    (tmp_path / "d.json").write_text(export_mixture(A, "doremi"))
    (tmp_path / "hf.json").write_text(export_hf(A, {"a": 10, "b": 1000}))
    for name in ("m.json", "m.yaml", "d.json", "hf.json"):
        assert read_mixture_ref(tmp_path / name).weights == pytest.approx(A.weights), name
    assert read_mixture_ref(tmp_path / "m.yaml").name == "ce"


def test_unknown_shapes_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"probabilities": [0.5, 0.5]}))
    with pytest.raises(BadInput, match="x.json: expected exactly one of 'weights'"):
        read_mixture_ref(tmp_path / "x.json")
    (tmp_path / "x.txt").write_text("0.5 a 0.5 b")
    with pytest.raises(BadInput, match="unknown mixture file type '.txt'"):
        read_mixture_ref(tmp_path / "x.txt")
    with pytest.raises(BadInput, match="nope.csv: mixture file does not exist"):
        read_mixture_ref(f"{tmp_path}/nope.csv:ce")
