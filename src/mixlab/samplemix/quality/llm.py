"""The `llm` annotator: any OpenAI-compatible chat-completions endpoint scores documents with the rubric.

    LLMAnnotator(url="http://localhost:8000/v1", model="qwen2.5-7b-instruct", key_env="OPENAI_API_KEY")

Each document gets one request (temperature 0) asking for a JSON object {dimension: integer score}; the
reply is parsed (a fenced ```json block or the first {...} in the text is accepted) and validated against
the rubric. Transport failures (connection errors, timeouts, HTTP 429 and 5xx) and invalid replies are retried
with exponential backoff; other HTTP errors (401, 404, ...) stop the run with BadInput at once. Requests run
on `concurrency` threads. Labels are cached on disk by document hash + rubric version + endpoint/model, so a
rerun only asks for what is missing. A document that still fails after `max_retries` gets NaN labels and its
cause in `failures` (the pipeline leaves it out of training).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mixlab.errors import BadInput
from mixlab.progress import track
from mixlab.samplemix.quality.cache import AnnotationCache
from mixlab.samplemix.quality.rubric import DIMENSIONS, RUBRIC, validate_labels

SYSTEM_PROMPT = (
    "You are a strict annotator of pre-training data quality. You read a document and score it on a fixed"
    " rubric. You answer with a single JSON object and nothing else."
)
FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)
BRACES = re.compile(r"\{.*\}", re.S)


class RetryableError(Exception):
    """A failure worth another attempt (transport, 429/5xx, or an invalid reply)."""


def rubric_prompt(text: str) -> str:
    """The user message for one document (rubric, document, the JSON shape expected)."""
    lines = ["Score the document below on each dimension of this rubric:"]
    for d in RUBRIC:
        lines.append(f'- "{d.key}" ({d.title}), integer {"/".join(map(str, d.scores))}: {d.definition}')
    example = ", ".join(f'"{k}": 0' for k in DIMENSIONS)
    lines += [
        "",
        "Document:",
        "<<<",
        text,
        ">>>",
        "",
        f"Answer with only a JSON object with exactly these keys and integer scores, e.g. {{{example}}}.",
    ]
    return "\n".join(lines)


def parse_reply(content: str, where: str) -> np.ndarray:
    """Rubric labels [7] from a model reply; BadInput when it is not a valid rubric JSON object."""
    match = FENCED.search(content) or BRACES.search(content)
    if match is None:
        raise BadInput(f"{where}: reply holds no JSON object ({content[:80]!r})")
    try:
        obj = json.loads(match.group(1) if match.re is FENCED else match.group(0))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where}: malformed JSON in reply ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: reply JSON is not an object")
    return validate_labels(obj, where)


class LLMAnnotator:
    """Rubric labels from an OpenAI-compatible chat endpoint (see the module docstring)."""

    name = "llm"

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        max_chars: int = 6000,
        json_mode: bool = True,
        cache_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        if not url or not model:
            raise BadInput("`quality` llm needs `url` (e.g. http://host:8000/v1) and `model`")
        if concurrency < 1:
            raise BadInput(f"`concurrency` {concurrency}: must be at least 1")
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else f"{url}/chat/completions"
        self.model = model
        self.key_env = key_env
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.max_chars = max_chars
        self.json_mode = json_mode
        self.cache = AnnotationCache(
            f"llm\x00{self.endpoint}\x00{model}\x00{max_chars}",
            Path(cache_directory) if cache_directory else None,
        )
        self.failures: list[tuple[int, str]] = []
        self.requests = 0

    def _request(self, text: str) -> str:
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": rubric_prompt(text)},
            ],
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.endpoint, json.dumps(body).encode(), headers, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            if exc.code == 429 or exc.code >= 500:
                raise RetryableError(f"HTTP {exc.code} {detail}") from None
            raise BadInput(f"`url` {self.endpoint}: HTTP {exc.code} ({detail.strip()})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RetryableError(f"not a chat-completions response: {str(payload)[:120]}") from None

    def annotate_one(self, text: str, where: str = "document") -> np.ndarray:
        """Labels [7] of one document (cache first); raises RetryableError when every attempt failed."""
        text = text[: self.max_chars]
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                content = self._request(text)  # fatal HTTP errors raise BadInput through here
            except RetryableError as exc:
                cause = str(exc)
                continue
            try:
                labels = parse_reply(content, f"{self.endpoint} reply for {where}")
            except BadInput as exc:
                cause = str(exc)
                continue
            self.cache.put(text, labels)
            return labels.astype(np.float64)
        raise RetryableError(f"{where}: gave up after {self.max_retries + 1} attempts; last error: {cause}")

    def annotate(self, texts: Sequence[str]) -> np.ndarray:
        """Labels [len(texts), 7] (float64); rows of documents that kept failing are NaN (see `failures`)."""
        out = np.full((len(texts), len(DIMENSIONS)), np.nan)
        self.failures = []

        def one(i: int) -> tuple[int, np.ndarray | str]:
            try:
                return i, self.annotate_one(texts[i], f"document {i}")
            except RetryableError as exc:
                return i, str(exc)

        with ThreadPoolExecutor(self.concurrency) as pool:
            for i, result in track(pool.map(one, range(len(texts))), len(texts), "annotating (llm)"):
                if isinstance(result, str):
                    self.failures.append((i, result))
                else:
                    out[i] = result
        if len(texts) and len(self.failures) == len(texts):
            raise BadInput(f"`url` {self.endpoint}: every annotation failed, e.g. {self.failures[0][1]}")
        return out


__all__ = ["LLMAnnotator", "parse_reply", "rubric_prompt"]
