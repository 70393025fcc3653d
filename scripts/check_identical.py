#!/usr/bin/env python3
"""Byte-identity check of every `mixlab` verb on a small demo corpus (issue 13, "the house").

Run it before and after a refactor, then compare the two manifests:

    git worktree add ../mixlab-before REF   # the commit before the change
    scripts/check_identical.py --python "PYTHONPATH=$PWD/../mixlab-before/src $PWD/.venv/bin/python" --out ../identity/before
    scripts/check_identical.py --python "PYTHONPATH=$PWD/src $PWD/.venv/bin/python" --out ../identity/after
    scripts/check_identical.py --compare ../identity/before/manifest.json ../identity/after/manifest.json   # exit 1 on any difference

--python is the interpreter that imports the mixlab under test; leading NAME=VALUE words are set in its
environment (so PYTHONPATH can pick the source tree). Every verb runs as a subprocess
`PYTHON -m mixlab.cli --seed 0 --workers 2 -q VERB ...` in OUT/run, with the steps, arguments and exit codes
recorded in OUT/steps.json (a failing verb stops the script with exit 1).

What is hashed (manifest.json: relative path -> sha256):
- every file under OUT/run (the verbs' outputs), plus each verb's stdout (OUT/run/stdout/NN-verb.txt);
- text files (.json .csv .txt .yaml .html .sh .jsonl .md) after normalisation: the absolute paths of OUT and
  of the private cache are replaced by <OUT> and <CACHE>;
- JSON files after dropping the volatile keys in VOLATILE_KEYS at any depth (wall-clock seconds, throughput,
  timings, timestamps, host names, pids), re-dumped in their own key order (files without such keys are
  hashed byte for byte);
- sweep.json without "streams" and the score work dir's config.json without "corpus" (FILE_VOLATILE_KEYS):
  both are hashes over the corpus files' mtimes, which differ between two builds of the same corpus;
- report.html after replacing its "generated YYYY-MM-DD HH:MM UTC" stamp (VOLATILE_HTML);
- stdout after replacing throughput figures ("12,345 tok/s" in the sweep's summary; VOLATILE_STDOUT).

What is excluded (listed in manifest.json under "excluded" with the reason):
- checkpoints (*.pt) — torch.save pickles carry no times but their zip records are written with the
  file's own names; they are compared through the losses they produce instead;
- the private cache (OUT/cache: trained tokenizers, token streams): an input of the verbs, not an output.

The private cache OUT/cache links `sources` and `demo` (downloaded packages and their cleaned documents)
from ~/.cache/mixlab (or $MIXLAB_CACHE) so the demo corpus builds in seconds; everything else (BPE
tokenizers, token-stream caches) is rebuilt from scratch in each run, so a cached artefact of the "before"
tree can never hide a change of the "after" tree. --fresh-demo-cache re-extracts the demo documents too
(minutes; covers corpus/demo.py's cleaning).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

TEXT_SUFFIXES = {".json", ".csv", ".txt", ".yaml", ".yml", ".html", ".sh", ".jsonl", ".md", ".tsv"}
EXCLUDED_SUFFIXES = {".pt": "torch checkpoint (binary pickle); its effect is checked through the losses"}

# JSON keys whose values are wall-clock measurements or host facts (dropped at any depth before hashing).
VOLATILE_KEYS = {
    "wall_seconds",
    "wall_seconds_this_session",
    "seconds",
    "elapsed",
    "elapsed_seconds",
    "duration",
    "duration_seconds",
    "tokens_per_second",
    "train_seconds",
    "proxy_seconds",
    "timings",
    "docs_per_second",
    "documents_per_second",
    "stage_seconds",
    "time",
    "timestamp",
    "created",
    "created_at",
    "started",
    "started_at",
    "finished",
    "finished_at",
    "date",
    "hostname",
    "host",
    "pid",
    "python",
    "torch_version",
    "versions",
}

# Top-level keys volatile in one kind of file only: hashes of the corpus files' modification times
# (Corpus.fingerprint: name, size, mtime_ns per shard), which differ between two builds of the same corpus.
FILE_VOLATILE_KEYS = {
    "sweep.json": {"streams"},  # the streams cache directory name (streams_key includes the fingerprint)
    "config.json": {"corpus"},  # score's work-dir key (samplemix/pipeline.py _prepare_work)
}

LAW_NAMES = ("bimix", "dml", "powerlaw", "regmix")
EXPORT_FORMATS = ("megatron", "olmix", "doremi", "hf", "yaml")
TOKENIZER = "bpe:512"
PROXY = ["--model", "tiny", "--tokenizer", TOKENIZER, "--seq-len", "64", "--batch-size", "8",
         "--val-tokens", "512", "--precision", "fp32", "--device", "cpu", "--threads", "1"]  # fmt: skip


class Runner:
    """Runs `mixlab` verbs under one interpreter and records every step."""

    def __init__(self, python: str, out: Path, fresh_demo_cache: bool) -> None:
        words = shlex.split(python)
        self.env = dict(os.environ)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            self.env[name] = value
        if not words:
            raise SystemExit("--python names no interpreter")
        self.python = words
        self.out = out
        self.run_dir = out / "run"
        self.cache = out / "cache"
        self.steps: list[dict] = []
        self.env.update(
            MIXLAB_CACHE=str(self.cache),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            COLUMNS="160",
            NO_COLOR="1",
            TERM="dumb",
        )
        self.env.pop("MIXLAB_QUIET", None)
        self.cache.mkdir(parents=True)
        shared = Path(os.environ.get("MIXLAB_CACHE") or Path.home() / ".cache" / "mixlab")
        for part in ("sources",) if fresh_demo_cache else ("sources", "demo"):
            if (shared / part).is_dir():
                (self.cache / part).symlink_to((shared / part).resolve())
        (self.run_dir / "stdout").mkdir(parents=True)

    def mixlab(self, *args: object, name: str | None = None) -> str:
        argv = [str(a) for a in args]
        label = name or "-".join(a for a in argv[:2] if not a.startswith("-") and "/" not in a)
        index = len(self.steps)
        cmd = [*self.python, "-m", "mixlab.cli", "--seed", "0", "--workers", "2", "-q", *argv]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.run_dir, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        self.steps.append({"step": index, "argv": argv, "rc": proc.returncode, "seconds": round(seconds, 2)})
        print(f"[{index:02d}] {seconds:6.1f}s rc={proc.returncode} mixlab {shlex.join(argv)}", flush=True)
        (self.run_dir / "stdout" / f"{index:02d}-{label}.txt").write_text(proc.stdout, encoding="utf-8")
        if proc.returncode != 0:
            self.save_steps()
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
            raise SystemExit(f"step {index} failed (rc {proc.returncode}): mixlab {shlex.join(argv)}")
        return proc.stdout

    def save_steps(self) -> None:
        (self.out / "steps.json").write_text(json.dumps(self.steps, indent=1) + "\n", encoding="utf-8")


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def write_csv_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def foreign_layouts(sweep: Path, dest: Path) -> None:
    """olmix and RegMix input files built from the sweep's mixtures.csv and last-step runs.csv rows."""
    mix_header, mix_rows = read_csv_rows(sweep / "mixtures.csv")
    domains = mix_header[1:]
    runs_header, runs_rows = read_csv_rows(sweep / "runs.csv")
    col = {c: i for i, c in enumerate(runs_header)}
    last: dict[str, float] = {}
    for row in runs_rows:
        last[row[col["run"]]] = max(last.get(row[col["run"]], 0.0), float(row[col["step"]]))
    loss: dict[tuple[str, str], str] = {}
    for row in runs_rows:
        if float(row[col["step"]]) == last[row[col["run"]]]:
            loss[(row[col["run"]], row[col["domain"]])] = row[col["loss"]]
    names = [r[0] for r in mix_rows]
    write_csv_rows(dest / "olmix" / "ratios.csv", ["run_id", "name", *domains],
                   [[f"r{i}", r[0], *r[1:]] for i, r in enumerate(mix_rows)])  # fmt: skip
    write_csv_rows(dest / "olmix" / "metrics.csv", ["run_id", *[f"eval/{d}/CE loss" for d in domains]],
                   [[f"r{i}", *[loss[(n, d)] for d in domains]] for i, n in enumerate(names)])  # fmt: skip
    write_csv_rows(dest / "regmix" / "mixture.csv", ["index", *[f"train_{d}" for d in domains]],
                   [[str(i), *r[1:]] for i, r in enumerate(mix_rows)])  # fmt: skip
    write_csv_rows(dest / "regmix" / "loss.csv", ["index", *[f"metric/{d}_val_loss" for d in domains]],
                   [[str(i), *[loss[(n, d)] for d in domains]] for i, n in enumerate(names)])  # fmt: skip


def sweep_plan(entropy_csv: Path, random_csv: Path, plan: Path) -> list[str]:
    """se, ce, je, vne from the entropy verb plus the random mixtures (the demo's sweep), in one file."""
    header, rows = read_csv_rows(entropy_csv)
    random_header, random_rows = read_csv_rows(random_csv)
    if random_header != header:
        raise SystemExit(f"{random_csv}: domains differ from {entropy_csv}")
    chosen = [r for r in rows if r[0] in {"se", "ce", "je", "vne"}] + random_rows
    write_csv_rows(plan, header, chosen)
    return [r[0] for r in chosen]


def run_all(r: Runner, with_demo: bool) -> None:
    d = r.run_dir
    r.mixlab("corpus", "demo", "--out", "corpus", "--max-mb-per-domain", "0.25")
    r.mixlab("corpus", "stats", "corpus", "--tokenizer", TOKENIZER, "--json", "stats/corpus_stats.json")
    stats = json.loads((d / "stats" / "corpus_stats.json").read_text(encoding="utf-8"))
    (d / "stats" / "available.json").write_text(
        json.dumps({k: v["tokens"] for k, v in stats["domains"].items()}, indent=1) + "\n", encoding="utf-8"
    )
    r.mixlab("entropy", "corpus", "--out", "entropy", "--tokenizer", TOKENIZER, "--max-tokens-per-domain",
             "40000", "--vne-max-documents", "40", "--miller-madow", "--seq-len", "256")  # fmt: skip
    r.mixlab("mixtures", "random", "--n", "2", "--prior", "natural", "--corpus", "corpus", "--tokenizer",
             TOKENIZER, "--out", "plan/random.csv")  # fmt: skip
    r.mixlab("mixtures", "random", "--n", "3", "--prior", "uniform", "--domains", "a,b,c", "--out",
             "plan/random-uniform.csv", name="mixtures-random-uniform")  # fmt: skip
    names = sweep_plan(d / "entropy" / "mixtures.csv", d / "plan" / "random.csv", d / "plan" / "sweep.csv")
    r.mixlab("sweep", "corpus", "--mixtures", "plan/sweep.csv", "--out", "sweep", *PROXY,
             "--tokens-per-run", "6144", "--evals", "4")  # fmt: skip
    mixtures, runs = "sweep/mixtures.csv", "sweep/runs.csv"
    train_runs = ",".join(n for n in names if n in {"se", "ce", "je", "vne"})
    test_runs = ",".join(n for n in names if n not in {"se", "ce", "je", "vne"})

    for law in LAW_NAMES:
        r.mixlab("fit", "-m", mixtures, "-r", runs, "--law", law, "--out", f"laws/{law}.law.json")
    r.mixlab("fit", "-m", mixtures, "-r", runs, "--law", "bimix", "--bootstrap", "3", "--hyper",
             "residual=relative", "--out", "laws/bimix-boot.law.json", name="fit-bimix-boot")  # fmt: skip
    for law in LAW_NAMES:
        r.mixlab("evaluate", "-m", mixtures, "-r", runs, "--law", law, "--protocol", "extrapolate",
                 "--out", f"laws/metrics-{law}-extrapolate.json",
                 *(["--plots", "laws/plots-bimix"] if law == "bimix" else []))  # fmt: skip
        r.mixlab("evaluate", "-m", mixtures, "-r", runs, "--law", law, "--protocol", "unseen", "--train-runs",
                 train_runs, "--test-runs", test_runs, "--out", f"laws/metrics-{law}-unseen.json")  # fmt: skip
    for law in ("bimix", "powerlaw"):  # k-fold refits every fold: the two fast laws only
        r.mixlab("evaluate", "-m", mixtures, "-r", runs, "--law", law, "--protocol", "kfold", "--folds", "3",
                 "--out", f"laws/metrics-{law}-kfold.json")  # fmt: skip

    r.mixlab("predict", "laws/bimix.law.json", "-m", "entropy/mixtures.csv", "--steps", "4,12",
             "--out", "predict/bimix.csv")  # fmt: skip
    r.mixlab("predict", "laws/dml.law.json", "-m", "entropy/mixtures.csv", "--steps", "12",
             name="predict-dml-stdout")  # fmt: skip

    r.mixlab("optimize", "laws/bimix.law.json", "--steps", "24", "--available", "stats/available.json",
             "--target-tokens", "20000", "--max-epochs", "4", "--min-weight", "0.01", "--bootstrap", "5",
             "-m", mixtures, "-r", runs, "--reference", "entropy/mixtures.csv", "--name", "bimix-opt",
             "--out", "optimum/mixture.json")  # fmt: skip
    for law in ("dml", "powerlaw", "regmix"):
        r.mixlab("optimize", f"laws/{law}.law.json", "--steps", "12", "--min-weight", "0.02",
                 "--samples", "2000", "--top-k", "20", "--out", f"optimum/{law}.json")  # fmt: skip

    prefixes = {dom: f"/data/{dom}_text_document" for dom in stats["domains"]}
    (d / "export").mkdir()
    (d / "export" / "paths.json").write_text(json.dumps(prefixes, indent=1) + "\n", encoding="utf-8")
    for fmt in EXPORT_FORMATS:
        r.mixlab("export", "optimum/mixture.json", "--format", fmt, "--paths", "export/paths.json",
                 "--out", f"export/mixture.{fmt}")  # fmt: skip
        r.mixlab("export", "optimum/mixture.json", "--format", fmt, name=f"export-{fmt}-stdout")

    foreign_layouts(d / "sweep", d / "foreign")
    r.mixlab("import", "olmix", "foreign/olmix/ratios.csv", "foreign/olmix/metrics.csv", "--step", "12",
             "--out", "imported/olmix")  # fmt: skip
    r.mixlab("import", "regmix", "foreign/regmix/mixture.csv", "foreign/regmix/loss.csv", "--out",
             "imported/regmix")  # fmt: skip

    r.mixlab("score", "corpus", "--tokenizer", TOKENIZER, "--annotate-n", "200", "--out",
             "samplemix/scores.parquet")  # fmt: skip
    r.mixlab("score", "corpus", "--tokenizer", TOKENIZER, "--annotate-n", "200", "--clusters", "4",
             "--separation", "nearest", "--head", "classification", "--normalisation", "rank", "--alpha", "0.5",
             "--out", "samplemix/scores-variant.parquet", name="score-variant")  # fmt: skip
    sample = ["corpus", "--scores", "samplemix/scores.parquet", "--budget-tokens", "30000"]
    r.mixlab("sample", *sample, "--out", "samplemix/sample")
    r.mixlab("sample", *sample, "--target-mixture", "optimum/mixture.json", "--out", "samplemix/hybrid",
             name="sample-hybrid")  # fmt: skip
    r.mixlab("sample", *sample, "--alpha", "0.3", "--normalisation", "rank", "--max-repeats", "2",
             "--min-share", "code=0.2", "--max-share", "spam=0.05", "--out", "samplemix/bounded",
             name="sample-bounded")  # fmt: skip

    r.mixlab("doremi", "corpus", "--out", "doremi", *PROXY, "--tokens-per-run", "2048")

    r.mixlab("report", "stats", "entropy", "sweep", "laws", "optimum", "samplemix", "doremi", "--out",
             "report.html", "--title", "identity check")  # fmt: skip
    if with_demo:
        r.mixlab("demo", "--out", "demo", "--quick", "--corpus", "corpus", "--tokenizer", TOKENIZER,
                 "--sweep-tokens", "4096", "--eval-tokens", "4096", "--seeds", "0")  # fmt: skip


def without_volatile(text: str, top_level: set[str] = frozenset()) -> str:
    """`text` unchanged unless it is JSON holding volatile keys; then re-dumped without them, key order kept."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return text
    kept = drop_volatile(obj)
    if isinstance(kept, dict) and top_level:
        kept = {k: v for k, v in kept.items() if k not in top_level}
    return text if kept == obj else "<volatile keys dropped>\n" + json.dumps(kept, indent=1)


def drop_volatile(value: object) -> object:
    if isinstance(value, dict):
        return {k: drop_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [drop_volatile(v) for v in value]
    return value


# (regex, replacement) applied to report.html: the throughput and timing cells of its tables.
VOLATILE_HTML = [
    (re.compile(r"generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"), "generated <DATE>"),
]
# (regex, replacement) applied to the verbs' stdout: throughput and durations printed in their summaries.
VOLATILE_STDOUT = [
    (re.compile(r"[0-9][0-9,.]* tok/s"), "# tok/s"),
    (re.compile(r"[0-9][0-9.]* ?s\b(?= (elapsed|wall))"), "#s"),
]


def normalised(path: Path, out: Path, cache: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix not in TEXT_SUFFIXES:
        return data
    text = data.decode("utf-8")
    for real, placeholder in ((str(cache.resolve()), "<CACHE>"), (str(cache), "<CACHE>"),
                              (str(out.resolve()), "<OUT>"), (str(out), "<OUT>")):  # fmt: skip
        text = text.replace(real, placeholder)
    if path.suffix == ".json":
        text = without_volatile(text, FILE_VOLATILE_KEYS.get(path.name, set()))
    elif path.suffix == ".jsonl":
        text = "\n".join(without_volatile(line) for line in text.split("\n"))
    elif path.parent.name == "stdout" and path.parent.parent.name == "run":
        for pattern, repl in VOLATILE_STDOUT:
            text = pattern.sub(repl, text)
    elif path.suffix == ".html":
        for pattern, repl in VOLATILE_HTML:
            text = pattern.sub(repl, text)
    return text.encode("utf-8")


def manifest(out: Path, cache: Path) -> dict:
    files, excluded = {}, {}
    run_dir = out / "run"
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir).as_posix()
        if path.suffix in EXCLUDED_SUFFIXES:
            excluded[rel] = EXCLUDED_SUFFIXES[path.suffix]
            continue
        files[rel] = hashlib.sha256(normalised(path, out, cache)).hexdigest()
    return {"files": files, "excluded": excluded, "volatile_json_keys": sorted(VOLATILE_KEYS)}


def compare(a: Path, b: Path, ignore_stdout: bool = False) -> int:
    ma, mb = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
    fa, fb = ma["files"], mb["files"]
    if ignore_stdout:
        fa, fb = ({k: v for k, v in f.items() if not k.startswith("stdout/")} for f in (fa, fb))
    problems = [f"only in {a}: {k}" for k in sorted(fa.keys() - fb.keys())]
    problems += [f"only in {b}: {k}" for k in sorted(fb.keys() - fa.keys())]
    problems += [f"differs: {k}" for k in sorted(fa.keys() & fb.keys()) if fa[k] != fb[k]]
    ea, eb = ma.get("excluded", {}), mb.get("excluded", {})
    problems += [f"excluded set differs: {k}" for k in sorted(ea.keys() ^ eb.keys())]
    for line in problems:
        print(line)
    print(f"{len(fa)} files compared, {len(problems)} difference(s)")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", help="interpreter (with optional leading NAME=VALUE env words)")
    parser.add_argument("--out", type=Path, help="empty or new directory for this run")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two manifest.json files")
    parser.add_argument("--ignore-stdout", action="store_true", help="--compare: skip the verbs' stdout")
    parser.add_argument("--rehash", type=Path, metavar="OUT", help="recompute OUT/manifest.json from OUT/run")
    parser.add_argument("--with-demo", action="store_true", help="also run `mixlab demo --quick` (slower)")
    parser.add_argument("--fresh-demo-cache", action="store_true", help="re-extract the demo documents")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare, ignore_stdout=args.ignore_stdout)
    if args.rehash:
        out = args.rehash.absolute()
        old = (
            json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            if (out / "manifest.json").is_file()
            else {}
        )
        result = {**manifest(out, out / "cache"), "seconds": old.get("seconds")}
        (out / "manifest.json").write_text(
            json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        print(f"{len(result['files'])} files hashed: {out / 'manifest.json'}")
        return 0
    if not args.python or not args.out:
        parser.error("--python and --out are required (or --compare A B)")
    out = args.out.absolute()
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty")
    runner = Runner(args.python, out, args.fresh_demo_cache)
    start = time.perf_counter()
    run_all(runner, args.with_demo)
    runner.save_steps()
    result = manifest(out, runner.cache)
    result["seconds"] = round(time.perf_counter() - start, 1)
    (out / "manifest.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(result['files'])} files hashed in {result['seconds']} s: {out / 'manifest.json'}")
    shutil.rmtree(runner.cache / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
