"""Export of a mixture to trainer formats."""

from __future__ import annotations

import json

import pytest
import yaml

from mixlab.errors import BadInput
from mixlab.mixture import EXPORT_FORMATS, Mixture, export_mixture

MIX = Mixture("opt", {"web": 0.5, "code": 0.3, "books": 0.2, "empty": 0.0}, {"epochs": {"code": 2.5}})


def test_megatron_blend():
    text = export_mixture(MIX, "megatron", {"web": "/data/web_text_document"})
    assert text == "0.5 /data/web_text_document 0.3 code 0.2 books\n"


def test_json_formats():
    doremi = json.loads(export_mixture(MIX, "doremi"))
    assert doremi == {"train_domain_weights": {"web": 0.5, "code": 0.3, "books": 0.2}}
    hf = json.loads(export_mixture(MIX, "hf", {"code": "bigcode/the-stack"}))
    assert hf["datasets"] == ["web", "bigcode/the-stack", "books"] and sum(
        hf["probabilities"]
    ) == pytest.approx(1)
    olmix = json.loads(export_mixture(MIX, "olmix", {"web": "s3://bucket/web/*.npy"}))
    assert olmix["mix"]["code"] == {"weight": 0.3, "repetition_factor": 2.5}
    assert olmix["mix"]["web"]["paths"] == ["s3://bucket/web/*.npy"]


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
        export_mixture(MIX, "megatron", {"math": "/x"})
