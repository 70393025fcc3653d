"""Evaluation batched across domains under inference_mode gives the window-by-window losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixlab.corpus import Corpus, load_tokenizer
from mixlab.proxy import prepare_streams
from mixlab.proxy.data import eval_set, validation_windows
from mixlab.proxy.model import build_model
from mixlab.proxy.train import evaluate
from proxy_helpers import demo_slice

SEQ_LEN = 64


@pytest.fixture(scope="module")
def streams(demo_corpus, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    corpus = Corpus.open(demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus")))
    yield prepare_streams(corpus, load_tokenizer("bpe:512", corpus=corpus), val_tokens=1024)
    mp.undo()


def test_evaluate_batches_across_domains_without_changing_the_losses(streams):
    """Each domain's loss is the mean over its own windows' targets, as a window-by-window loop computes
    it, whatever the batch size (1, one that straddles domains, all rows at once)."""
    torch.manual_seed(0)
    model = build_model("tiny", streams.vocab_size, SEQ_LEN)
    expected = {}
    with torch.no_grad():
        for d in streams.domains:
            w = torch.from_numpy(validation_windows(streams, d, SEQ_LEN))
            nll = [
                F.cross_entropy(model(input_ids=row[None, :-1]).logits[0], row[1:], reduction="sum")
                for row in w
            ]
            expected[d] = float(sum(nll)) / w[:, 1:].numel()
    windows = eval_set(streams, streams.domains, SEQ_LEN)
    assert windows is eval_set(streams, list(streams.domains), SEQ_LEN)  # made once per stream set
    assert len({int(n) for n in windows.targets}) == 1 and len(windows.windows) % 7 != 0
    for batch_size in (1, 7, 1000):
        got = evaluate(model, windows, torch.device("cpu"), batch_size)
        assert list(got) == streams.domains
        for d in streams.domains:
            assert got[d] == pytest.approx(expected[d], rel=1e-5)
    assert model.training  # evaluation leaves the model's mode as it found it
