"""Quality: the rubric, the ordinal scorer, the heuristic annotator and the `llm` annotator against a real
HTTP server that speaks the chat-completions API."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mixlab.errors import BadInput
from mixlab.samplemix.quality import (
    DIMENSIONS,
    MAX_SCORES,
    ClassificationHead,
    HeuristicAnnotator,
    OrdinalHead,
    QualityScorer,
    compare_heads,
    ordinal_metrics,
    validate_labels,
)
from mixlab.samplemix.quality.llm import LLMAnnotator, parse_reply

GOOD = dict(zip(DIMENSIONS, [1, 1, 0, 1, 1, 2, 1], strict=True))


def test_rubric_validation() -> None:
    np.testing.assert_array_equal(validate_labels(GOOD, "x"), [1, 1, 0, 1, 1, 2, 1])
    by_title = {"Clarity of Expression and Accuracy": 1, **{k: 0 for k in DIMENSIONS[1:]}}
    assert validate_labels(by_title, "x")[0] == 1
    with pytest.raises(BadInput, match="'knowledge' = 3 is outside"):
        validate_labels({**GOOD, "knowledge": 3}, "doc 4")
    with pytest.raises(BadInput, match="missing rubric dimension.*logic"):
        validate_labels({k: v for k, v in GOOD.items() if k != "logic"}, "x")
    with pytest.raises(BadInput, match="unknown rubric dimension 'style'"):
        validate_labels({**GOOD, "style": 1}, "x")
    with pytest.raises(BadInput, match="integer"):
        validate_labels({**GOOD, "clarity": 0.5}, "x")
    assert MAX_SCORES.sum() == 9


def test_ordinal_metrics_hand_computed() -> None:
    m = ordinal_metrics(np.array([0, 1, 2, 3]), np.array([0, 2, 4, 3]))
    assert m == {"acc": 0.5, "mae": 0.75, "mse": 1.25, "close_acc": 0.75, "n": 4}


def synthetic_ordinal(n: int, seed: int, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 20))
    latent = x @ np.linspace(1, -1, 20) + 0.5 * rng.standard_normal(n)
    y = np.digitize(latent, np.quantile(latent, np.linspace(0, 1, k + 1)[1:-1]))
    return x, y


def test_ordinal_head_learns_ordinal_labels_better_than_chance() -> None:
    x, y = synthetic_ordinal(1500, 0)
    xt, yt = synthetic_ordinal(500, 1)
    head = OrdinalHead(6).fit(x, y)
    assert np.all(np.diff(head.thresholds_) < 0)  # P(y > k) falls with k: rank-consistent thresholds
    m = ordinal_metrics(yt, head.predict(xt))
    chance = ordinal_metrics(yt, np.full(yt.size, np.bincount(y).argmax()))
    assert m["acc"] > 2 * chance["acc"] and m["mae"] < 0.5 * chance["mae"] and m["close_acc"] > 0.9
    expected = head.predict_expected(xt)
    assert expected.min() >= 0 and expected.max() <= 5 and np.corrcoef(expected, yt)[0, 1] > 0.9
    cls = ordinal_metrics(yt, ClassificationHead(6).fit(x, y).predict(xt))
    assert cls["acc"] > 2 * chance["acc"]


def test_compare_heads_reports_the_four_metrics_and_scorer_predicts_in_range() -> None:
    x, total = synthetic_ordinal(600, 2, k=10)
    # spread the overall label over the 7 dimensions (each within its range) so the sums equal `total`
    labels = np.zeros((600, 7), dtype=int)
    rest = total.copy()
    for j, cap in enumerate(MAX_SCORES):
        labels[:, j] = np.minimum(rest, cap)
        rest -= labels[:, j]
    report = compare_heads(x, labels, seed=0)
    for head in ("ordinal", "classification", "majority"):
        assert set(report[head]) == {"acc", "mae", "mse", "close_acc", "n"}
    assert report["ordinal"]["mae"] < report["majority"]["mae"]
    quality, per_dim = QualityScorer().fit(x, labels).predict(x[:50])
    assert quality.shape == (50,) and per_dim.shape == (50, 7)
    assert np.all(per_dim >= 0) and np.all(per_dim <= MAX_SCORES + 1e-9)
    assert np.corrcoef(quality, total[:50])[0, 1] > 0.8


def test_heuristic_annotator_on_obvious_cases() -> None:
    prose = (
        "The river rises in the northern hills and flows south for about 300 kilometres before it reaches the "
        "sea. Because the valley is wide and fertile, farmers have settled there since the bronze age; however, "
        "frequent floods forced them to build their villages on terraces above the plain. Historians therefore "
        "describe the region as one of the earliest examples of planned settlement in Europe.\n\n"
        "Today the river supplies water to three cities, and its delta is protected as a nature reserve, which "
        "attracts migrating birds and researchers who study wetland ecology."
    )
    spam = "CLICK HERE!!! FREE CASH $$$ http://win.example.com WIN WIN WIN\nCLICK HERE!!! FREE CASH $$$\n" * 4
    labels = HeuristicAnnotator().annotate([prose, spam, "x"])
    assert labels.shape == (3, 7) and np.all(labels >= 0) and np.all(labels <= MAX_SCORES)
    assert labels[0].sum() >= 6 and labels[1].sum() <= 2 and labels[1, DIMENSIONS.index("credibility")] == 0


def test_heuristic_ranks_spam_below_wiki_on_the_demo_corpus(demo_corpus) -> None:
    from mixlab.corpus import Corpus, read_shard

    corpus = Corpus.open(demo_corpus)
    means = {}
    for domain in ("spam", "wiki", "news", "email"):
        texts = [t for s in corpus.shards([domain]) for b in read_shard(s) for t in b.texts][:150]
        means[domain] = HeuristicAnnotator().annotate(texts).sum(1).mean()
    assert means["spam"] < means["wiki"] - 1.0, means
    assert means["spam"] < means["news"] and means["spam"] < means["email"], means


# ------------------------------------------------------------------------------ llm against a real server


class ChatServer(BaseHTTPRequestHandler):
    """A chat-completions endpoint whose behaviour depends on a marker in the document."""

    hits: Counter = Counter()
    auth: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).auth.append(self.headers.get("Authorization", ""))
        prompt = body["messages"][-1]["content"]
        marker = next(
            m for m in ("VALID", "FENCED", "FLAKY", "MALFORMED", "OUTOFRANGE", "DENIED") if m in prompt
        )
        type(self).hits[marker] += 1
        if marker == "DENIED":
            return self.reply(401, {"error": {"message": "invalid api key"}})
        if marker == "FLAKY" and type(self).hits[marker] <= 2:
            return self.reply(500, {"error": "overloaded"})
        content = {
            "VALID": json.dumps(GOOD),
            "FLAKY": json.dumps(GOOD),
            "FENCED": "Here you go:\n```json\n" + json.dumps({**GOOD, "logic": 2}) + "\n```",
            "MALFORMED": "{clarity: one, coherence: ",
            "OUTOFRANGE": json.dumps({**GOOD, "knowledge": 7}),
        }[marker]
        self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

    def reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_server():
    ChatServer.hits = Counter()
    ChatServer.auth = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def test_llm_annotator_valid_malformed_and_failing_replies(chat_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MIXLAB_TEST_KEY", "sk-test")
    annotator = LLMAnnotator(
        chat_server,
        "test-model",
        key_env="MIXLAB_TEST_KEY",
        backoff=0.01,
        max_retries=3,
        concurrency=3,
        cache_directory=tmp_path,
    )
    docs = ["VALID doc", "FENCED doc", "FLAKY doc", "MALFORMED doc", "OUTOFRANGE doc"]
    labels = annotator.annotate(docs)
    np.testing.assert_array_equal(labels[0], [1, 1, 0, 1, 1, 2, 1])
    np.testing.assert_array_equal(labels[1], [1, 1, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(labels[2], labels[0])  # two 500s, then success on the third attempt
    assert np.isnan(labels[3]).all() and np.isnan(labels[4]).all()
    causes = dict(annotator.failures)
    assert "malformed JSON" in causes[3] or "no JSON object" in causes[3]
    assert "outside the allowed scores" in causes[4]
    assert ChatServer.hits == {"VALID": 1, "FENCED": 1, "FLAKY": 3, "MALFORMED": 4, "OUTOFRANGE": 4}
    assert set(ChatServer.auth) == {"Bearer sk-test"}
    # the on-disk cache answers what succeeded, without a request
    again = LLMAnnotator(chat_server, "test-model", key_env="MIXLAB_TEST_KEY", cache_directory=tmp_path)
    before = sum(ChatServer.hits.values())
    np.testing.assert_array_equal(again.annotate(docs[:3]), labels[:3])
    assert sum(ChatServer.hits.values()) == before and again.requests == 0


def test_llm_annotator_stops_on_auth_errors_and_needs_url(chat_server, tmp_path) -> None:
    annotator = LLMAnnotator(chat_server, "m", backoff=0.01, cache_directory=tmp_path)
    with pytest.raises(BadInput, match="HTTP 401"):
        annotator.annotate(["DENIED doc"])
    assert ChatServer.hits["DENIED"] == 1  # not retried
    with pytest.raises(BadInput, match="`url`"):
        LLMAnnotator(None, "m")
    dead = LLMAnnotator("http://127.0.0.1:9/v1", "m", backoff=0.01, max_retries=1, cache_directory=tmp_path)
    with pytest.raises(BadInput, match="every annotation failed"):
        dead.annotate(["VALID doc"])


def test_parse_reply() -> None:
    assert parse_reply("sure: " + json.dumps(GOOD) + " bye", "r").tolist() == [1, 1, 0, 1, 1, 2, 1]
    with pytest.raises(BadInput, match="no JSON object"):
        parse_reply("I cannot rate this.", "r")


@pytest.mark.slow
def test_local_annotator_gives_expected_scores_from_the_offline_model(demo_corpus) -> None:
    """SmolLM2-135M on two short documents: expected scores inside each dimension's range, deterministic,
    and different for different documents."""
    from mixlab.samplemix.quality.local import LocalLMAnnotator

    annotator = LocalLMAnnotator(max_doc_tokens=48, use_cache=False, threads=1)
    docs = ["The cat sat on the mat. It was warm and sunny.", "WIN $$$ NOW!!! CLICK http://spam.example"]
    labels = annotator.annotate(docs)
    assert labels.shape == (2, 7) and np.all(labels >= 0) and np.all(labels <= MAX_SCORES + 1e-9)
    assert not np.allclose(labels[0], labels[1])
    np.testing.assert_allclose(annotator.annotate(docs[:1]), labels[:1], atol=1e-6)


@pytest.mark.slow
def test_local_annotator_ranks_spam_below_wiki_on_the_demo_corpus(demo_corpus) -> None:
    """The few-shot score-card prompt (calibrated) puts spam below wiki on mean quality (sum of 7 dimensions).

    It held on three disjoint sets of 20 documents per domain (dev, held-out, this fixture): wiki - spam =
    0.38, 0.45, 0.50 of 9 (AUC wiki > spam 0.75-0.82); on this fixture's first 12 documents 4.62 vs 4.24, on
    the first 8 (asserted here: ~70 s of SmolLM2 on 2 cores for 24) 4.55 vs 4.09.
    news and email also came out above spam on all three sets, but by less (AUC 0.53-0.72): not asserted."""
    from mixlab.corpus import Corpus, read_shard
    from mixlab.samplemix.quality.local import LocalLMAnnotator

    corpus = Corpus.open(demo_corpus)
    annotator = LocalLMAnnotator(use_cache=False, threads=1)
    means = {}
    for domain in ("spam", "wiki"):
        texts = [t for s in corpus.shards([domain]) for b in read_shard(s) for t in b.texts][:8]
        means[domain] = annotator.annotate(texts).sum(1).mean()
    assert means["spam"] < means["wiki"] - 0.15, means
