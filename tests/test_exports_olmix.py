"""olmix launch-config shape and `*_optimal.json`, validated by models written from olmix's source
(tests/olmix_schema.py: olmix is not installable here — not on PyPI, git-pinned dependency)."""

import json

import pytest
import yaml

from mixlab.errors import BadInput
from mixlab.exports.olmix import export_olmix, read_olmix_optimal, write_olmix_optimal
from mixlab.mixture import Mixture, read_mixture_ref
from olmix_schema import LaunchData

pytest.importorskip("pydantic")


def test_launch_config_validates_and_keeps_paths_out_of_mix(tmp_path):
    mixture = Mixture.from_weights(
        "m", {"dclm:code": 0.5, "dclm:science": 0.2, "wiki": 0.3, "off": 0.0}, epochs={"wiki": 2.0}
    )
    paths = {
        "dclm:code": ["s3://b/code/*.npy"],
        "dclm:science": "s3://b/sci/*.npy",
        "wiki": ["w/a.npy", "w/b.npy"],
    }
    text = export_olmix(mixture, paths, base={"name": "proxy", "infra": {"budget": "x"}})
    config = LaunchData.model_validate(yaml.safe_load(text))
    assert config.mix.keys() == config.source_keys() == {"dclm:code", "dclm:science", "wiki"}
    assert config.mix["wiki"].repetition_factor == 2.0 and config.mix["dclm:code"].weight == 0.5
    assert yaml.safe_load(text)["infra"] == {"budget": "x"}
    # the old shape (paths inside mix entries) is exactly what olmix's flattening rejects
    with pytest.raises(TypeError, match=r"float\(\) argument"):
        LaunchData.model_validate(
            {"name": "m", "data": {"sources": []}, "mix": {"a": {"weight": 1, "paths": ["p"]}}}
        )
    # and the file names the mixture back, weights and repetition factors included
    (tmp_path / "launch.yaml").write_text(text)
    back = read_mixture_ref(tmp_path / "launch.yaml")
    assert back.weights == pytest.approx({k: v for k, v in mixture.weights.items() if v > 0})
    assert back.meta["epochs"]["wiki"] == 2.0


def test_nested_olmix_mix_reads_as_products(tmp_path):
    (tmp_path / "mix_baseline.yaml").write_text(
        "name: b\nmix:\n  dclm:\n    weight: 0.6\n    code: {weight: 0.5, repetition_factor: 1.0}\n"
        "    sci: 0.5\n  wikipedia: {weight: 0.4, repetition_factor: 2.0}\n"
    )
    assert read_mixture_ref(tmp_path / "mix_baseline.yaml").weights == pytest.approx(
        {"dclm:code": 0.3, "dclm:sci": 0.3, "wikipedia": 0.4}
    )


def test_missing_paths_and_bad_nesting_refused():
    with pytest.raises(BadInput, match="domain 'b' of mixture 'm' has no paths"):
        export_olmix(Mixture.from_weights("m", {"a": 0.5, "b": 0.5}), {"a": "p"})
    with pytest.raises(BadInput, match="'a:b:c' must be"):
        export_olmix(Mixture.from_weights("m", {"a:b:c": 1.0}), {"a:b:c": "p"})
    with pytest.raises(BadInput, match="both a source with paths and a source with topics"):
        export_olmix(Mixture.from_weights("m", {"a": 0.5, "a:t": 0.5}), {"a": "p", "a:t": "q"})


def test_optimal_json_round_trip_in_olmix_layout(tmp_path):
    mixture = Mixture.from_weights("opt_avg_all_metrics", {"a": 0.25, "b": 0.75, "c": 0.0})
    path = tmp_path / "opt_avg_all_metrics_optimal.json"
    write_olmix_optimal(path, mixture)
    assert json.loads(path.read_text()) == [
        {"domain": "a", "weight": 0.25}, {"domain": "b", "weight": 0.75}, {"domain": "c", "weight": 0.0}
    ]  # fmt: skip
    back = read_olmix_optimal(path)
    assert back.name == "opt_avg_all_metrics" and back.weights == mixture.weights
    assert read_mixture_ref(path).weights == mixture.weights
    path.write_text('[{"domain": "a", "weight": 1}, {"domain": "a", "weight": 2}]')
    with pytest.raises(BadInput, match="domain 'a' appears twice"):
        read_olmix_optimal(path)
