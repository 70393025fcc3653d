"""`megatron` export parsed by megatron-core's own blend parser; `.idx` tokens checked against its reader."""

import numpy as np
import pytest

from mixlab.errors import BadInput
from mixlab.exports.megatron import export_megatron, idx_token_count, megatron_blend
from mixlab.mixture import Mixture

pytest.importorskip("megatron.core")
torch = pytest.importorskip("torch")
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder  # noqa: E402
from megatron.core.datasets.utils import get_blend_from_list  # noqa: E402


def _build(prefix, docs, dtype=np.uint16):
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=dtype)
    for doc in docs:
        builder.add_item(torch.tensor(doc))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")
    return str(prefix)


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    out = {}
    for name, n_docs, dtype in [
        ("code_00", 3, np.uint16),
        ("code_01", 7, np.int32),
        ("wiki_00", 5, np.uint16),
    ]:
        docs = [rng.integers(1, 500, rng.integers(1, 40)).tolist() for _ in range(n_docs)]
        out[name] = (_build(tmp_path / f"{name}_text_document", docs, dtype), sum(map(len, docs)))
    return out


def test_idx_tokens_match_megatron_reader(shards):
    for prefix, tokens in shards.values():
        ds = IndexedDataset(prefix, mmap=True)
        assert idx_token_count(prefix) == int(ds.sequence_lengths.sum()) == tokens


def test_glob_domain_split_by_idx_tokens(shards, tmp_path):
    mixture = Mixture.from_weights("m", {"code": 0.6, "wiki": 0.4, "off": 0.0})
    blend = megatron_blend(
        mixture, {"code": str(tmp_path / "code_*_text_document"), "wiki": shards["wiki_00"][0]}
    )
    prefixes, weights = get_blend_from_list(blend)
    (c0, t0), (c1, t1), (w0, _) = shards["code_00"], shards["code_01"], shards["wiki_00"]
    assert prefixes == [c0, c1, w0]
    np.testing.assert_allclose(weights, [0.6 * t0 / (t0 + t1), 0.6 * t1 / (t0 + t1), 0.4], rtol=1e-10)
    # the text form survives Megatron's whitespace split of --data-path
    assert get_blend_from_list(export_megatron(mixture, {"code": [c0, c1], "wiki": w0}).split()) == (
        prefixes,
        weights,
    )


def test_given_token_counts_override_idx():
    mixture = Mixture.from_weights("m", {"a": 1.0, "b": 3.0})
    blend = megatron_blend(mixture, {"a": ["/d/a0", "/d/a1"], "b": "/d/b"}, {"/d/a0": 10, "/d/a1": 30})
    assert get_blend_from_list(blend) == (["/d/a0", "/d/a1", "/d/b"], [0.0625, 0.1875, 0.75])


def test_missing_domain_names_it():
    mixture = Mixture.from_weights("m", {"a": 0.5, "b": 0.5})
    with pytest.raises(BadInput, match="domain 'b' of mixture 'm' has no prefix"):
        megatron_blend(mixture, {"a": "/d/a"})


def test_whitespace_refused_because_megatron_splits_on_it():
    path = "/data/my corpus/a_text_document"
    assert " ".join(["1.0", path]).split() != ["1.0", path]  # what Megatron-LM's --data-path does to it
    with pytest.raises(BadInput, match="holds whitespace"):
        megatron_blend(Mixture.from_weights("m", {"a": 1.0}), {"a": path})


def test_bad_idx_and_empty_glob(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"NOTMAGIC" + b"\0" * 40)
    with pytest.raises(BadInput, match="x.idx: not a Megatron"):
        idx_token_count(tmp_path / "x")
    with pytest.raises(BadInput, match="matches no .idx"):
        megatron_blend(Mixture.from_weights("m", {"a": 1.0}), {"a": str(tmp_path / "none_*")})
