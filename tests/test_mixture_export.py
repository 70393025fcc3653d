"""Export of a mixture to trainer formats (the real consumers check them in tests/test_exports_*.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from mixlab.errors import BadInput
from mixlab.exports import EXPORT_FORMATS, export_mixture
from mixlab.mixture import Mixture

MIX = Mixture("opt", {"web": 0.5, "code": 0.3, "books": 0.2, "empty": 0.0}, {"epochs": {"code": 2.5}})
PATHS = {"web": "/data/web_text_document", "code": "/data/code_text_document", "books": "/data/books"}


def test_megatron_blend():
    text = export_mixture(MIX, "megatron", PATHS)
    assert text == "0.5 /data/web_text_document 0.3 /data/code_text_document 0.2 /data/books\n"


def test_json_formats():
    doremi = json.loads(export_mixture(MIX, "doremi"))
    assert doremi == {"train_domain_weights": {"web": 0.5, "code": 0.3, "books": 0.2}}
    # document probabilities p ∝ w / L: (0.5/100, 0.3/1000, 0.2/100) / 0.0073
    hf = json.loads(
        export_mixture(
            MIX, "hf", {"code": "bigcode/the-stack"}, mean_tokens={"web": 100, "code": 1000, "books": 100}
        )
    )
    assert hf["datasets"] == ["web", "bigcode/the-stack", "books"]
    assert hf["probabilities"] == pytest.approx([0.005 / 0.0073, 0.0003 / 0.0073, 0.002 / 0.0073])
    olmix = yaml.safe_load(export_mixture(MIX, "olmix", {**PATHS, "web": "s3://bucket/web/*.npy"}))
    assert olmix["mix"]["code"] == {"weight": 0.3, "repetition_factor": 2.5}
    assert olmix["data"]["sources"][0] == {"name": "web", "paths": ["s3://bucket/web/*.npy"]}


def test_yaml_round_trip():
    assert yaml.safe_load(export_mixture(MIX, "yaml")) == {
        "name": "opt",
        "weights": {"web": 0.5, "code": 0.3, "books": 0.2},
    }


def test_export_errors():
    assert set(EXPORT_FORMATS) == {"megatron", "olmix", "doremi", "hf", "yaml"}
    with pytest.raises(BadInput, match="unknown export format"):
        export_mixture(MIX, "csv")
    with pytest.raises(BadInput, match="domain 'math' is not in mixture"):
        export_mixture(MIX, "megatron", {**PATHS, "math": "/x"})
    with pytest.raises(BadInput, match="domain 'books' of mixture 'opt' has no prefix"):
        export_mixture(MIX, "megatron", {"web": "/w", "code": "/c"})
    with pytest.raises(BadInput, match="`paths`: the megatron export needs"):
        export_mixture(MIX, "megatron")
    with pytest.raises(BadInput, match="`mean_tokens`: the hf export needs"):
        export_mixture(MIX, "hf")
