"""Training streams from a sampled dataset (`mixlab sample` output), so a proxy model can train on exactly the
documents SampleMix chose and be evaluated on the same held-out validation sets as every other run.

The proxy pipeline holds out whole documents per domain (`prepare_streams`); a sample is drawn from the whole
corpus, so it may contain those documents. They are recognised by their token sequences in the validation
streams and dropped (counted in `streams.json`), so no method is scored on text it trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mixlab.corpus import Tokenizer
from mixlab.errors import BadInput
from mixlab.files import atomic_dir
from mixlab.proxy import Streams


def _digest(tokens: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(tokens, dtype=np.int64).tobytes(), digest_size=16).digest()


def validation_documents(streams: Streams, domain: str) -> tuple[set[bytes], np.ndarray]:
    """Digests of the complete held-out documents of `domain` and the (possibly cut) last one's tokens.

    The validation stream is documents separated by EOS; the last may be cut at `val_tokens`."""
    val = np.asarray(streams.val(domain), dtype=np.int64)
    if streams.eos_id is None:
        raise BadInput(f"{streams.path}: the tokenizer has no EOS token; cannot find held-out documents")
    ends = np.flatnonzero(val == streams.eos_id)
    digests, start = set(), 0
    for end in ends:
        digests.add(_digest(val[start : end + 1]))
        start = end + 1
    return digests, val[start:]


def sample_streams(sample_dir: str | os.PathLike[str], base: Streams, tokenizer: Tokenizer,
                   out: str | os.PathLike[str]) -> Streams:  # fmt: skip
    """Tokenize SAMPLE_DIR/data/*.parquet (`text`, `domain` per row, repeats included) into training streams
    per domain in `out`, with `base`'s validation streams copied unchanged. Cached: an existing `out` is reused.

    Returns a Streams over the domains the sample holds (`train_tokens(d)` = its tokens there); the validation
    streams of every domain of `base` are in the same directory, so pass `eval_domains=base.domains` to
    `train_run` to score the model on all of them."""
    out = Path(out)
    if (out / "streams.json").is_file():
        return Streams.load(out)
    files = sorted(Path(sample_dir, "data").glob("*.parquet"))
    if not files:
        raise BadInput(f"{sample_dir}/data: no parquet files (expected `mixlab sample` output)")
    held_out = {d: validation_documents(base, d) for d in base.domains}
    dtype = np.dtype(base.dtype)
    with atomic_dir(out) as tmp:
        sinks = {d: open(tmp / f"{d}.train.bin", "wb") for d in base.domains}  # noqa: SIM115
        info = {
            d: {"train_tokens": 0, "train_documents": 0, "dropped_validation_documents": 0}
            for d in base.domains
        }
        try:
            for path in files:
                table = pq.read_table(path)
                for col in ("text", "domain"):
                    if col not in table.column_names:
                        raise BadInput(f"{path}: missing column '{col}'")
                texts = table.column("text").to_pylist()
                domains = table.column("domain").to_pylist()
                for lo in range(0, len(texts), 512):
                    ids, offsets = tokenizer.encode_flat(texts[lo : lo + 512])
                    for k, domain in enumerate(domains[lo : lo + 512]):
                        if domain not in sinks:
                            raise BadInput(f"{path}: row {lo + k}: domain '{domain}' is not in the corpus")
                        doc = ids[offsets[k] : offsets[k + 1]]
                        digests, cut = held_out[domain]
                        if _digest(doc) in digests or (len(cut) and np.array_equal(doc[: len(cut)], cut)):
                            info[domain]["dropped_validation_documents"] += 1
                            continue
                        sinks[domain].write(np.ascontiguousarray(doc, dtype=dtype).tobytes())
                        info[domain]["train_tokens"] += len(doc)
                        info[domain]["train_documents"] += 1
        finally:
            for fh in sinks.values():
                fh.close()
        for d in base.domains:
            shutil.copyfile(base.path / f"{d}.val.bin", tmp / f"{d}.val.bin")
            info[d]["val_tokens"] = base.val_tokens
        if not any(v["train_tokens"] for v in info.values()):
            raise BadInput(f"{sample_dir}: the sample holds no training tokens")
        sampled = [d for d in base.domains if info[d]["train_tokens"] > 0]
        for d in base.domains:
            if d not in sampled:
                (tmp / f"{d}.train.bin").unlink()
        meta = {"domains": sampled, "all_domains": base.domains, "vocab_size": base.vocab_size, "eos_id": base.eos_id, "dtype": base.dtype,
                "val_tokens": base.val_tokens, "info": info, "sample": str(sample_dir), "validation_from": str(base.path)}  # fmt: skip
        (tmp / "streams.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Streams.load(out)
