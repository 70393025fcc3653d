"""Issue 14.4 leftovers: a CLI that behaves like its neighbours. One default tokenizer; --text-field and
--skip-bad-rows on every verb that reads a corpus (honoured, through each verb's real code path); one name
per concept (--eval-step, --drop-below, --eval-seeds; comma lists); `-` means stdout or is refused; --json -
gives only JSON; -q silences warnings.

The verbs run in-process through `mixlab.cli.main` (the real parser, error mapping and exit codes) to save
an interpreter start per call; the training verbs run at the tiniest sizes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import types
import warnings
from pathlib import Path

import pytest
import typer.main

from mixcli import assert_one_line_cause, stdlib_texts
from mixlab import cli
from mixlab.commands import common
from mixlab.errors import BadInput

FIELD = "body"
BAD_SHARD = "prose/part-001.jsonl"
BAD_LINE = 7  # after six good documents
TINY_TRAINING = ["--tokenizer", "bpe:300", "--tokens-per-run", "256", "--seq-len", "16", "--batch-size", "2",
                 "--val-tokens", "32", "--threads", "1", "--device", "cpu", "--precision", "fp32"]  # fmt: skip


def run(*args: str, cwd: Path | None = None) -> types.SimpleNamespace:
    """`mixlab ARGS` in this process: exit code, stdout and stderr as a subprocess would give them."""
    import io

    saved = (signal.getsignal(signal.SIGTERM), sys.unraisablehook, warnings.showwarning)
    saved_quiet = os.environ.get("MIXLAB_QUIET")
    out, err = io.StringIO(), io.StringIO()
    old_cwd = Path.cwd()
    code = 0
    real_out, real_err = sys.stdout, sys.stderr
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdout, sys.stderr = out, err
        cli.main(["--workers", "1", *args])  # inline: no process pool to start per call
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout, sys.stderr = real_out, real_err
        os.chdir(old_cwd)
        signal.signal(signal.SIGTERM, saved[0])
        sys.unraisablehook, warnings.showwarning = saved[1], saved[2]
        common.out_console.quiet = False
        common.out_console.capture_tables(False)
        if saved_quiet is None:
            os.environ.pop("MIXLAB_QUIET", None)
        else:
            os.environ["MIXLAB_QUIET"] = saved_quiet
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def _leaves(command):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            for path, leaf in _leaves(sub):
                yield [name, *path], leaf
    else:
        yield [], command


def _commands() -> dict[str, object]:
    root = typer.main.get_command(cli.app)
    return {" ".join(path): leaf for path, leaf in _leaves(root)}


def _option(command, flag: str):
    return next((p for p in command.params if flag in p.opts), None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two domains, text under `body`, and one malformed row (prose/part-001.jsonl line 7)."""
    root = tmp_path_factory.mktemp("p4cli") / "corpus"
    for d, domain in enumerate(("code", "prose")):
        for k in range(2):
            texts = stdlib_texts("code" if d == 0 else "prose", 6, offset=k * 6 + d * 7)
            lines = [json.dumps({FIELD: t}) for t in texts]
            if f"{domain}/part-{k:03d}.jsonl" == BAD_SHARD:
                lines.append('{"body": "a row cut sho')
            path = root / domain / f"part-{k:03d}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# --- one default tokenizer ----------------------------------------------------------------------------------


def test_every_verb_defaults_to_one_tokenizer_and_says_so() -> None:
    with_tokenizer = {name: c for name, c in _commands().items() if _option(c, "--tokenizer") is not None}
    assert {"corpus stats", "entropy", "score", "sweep", "doremi", "mixtures random", "export"} <= set(
        with_tokenizer
    )
    for name, command in with_tokenizer.items():
        option = _option(command, "--tokenizer")
        if name == "demo":  # the demo passes its own (bpe:1024) to every stage
            continue
        assert option.default == common.DEFAULT_TOKENIZER == "bpe:8192", name
        assert f"default is {common.DEFAULT_TOKENIZER}" in option.help, name


# --- --text-field and --skip-bad-rows on every verb that reads a corpus ------------------------------------


def test_every_verb_that_reads_a_corpus_has_text_field_and_skip_bad_rows() -> None:
    readers = {
        name: c
        for name, c in _commands().items()
        if any(p.name == "corpus" for p in c.params) and name not in ("demo",)
    }
    assert {
        "corpus stats",
        "entropy",
        "score",
        "sample",
        "sweep",
        "doremi",
        "mixtures random",
        "export",
    } <= set(readers)
    for name, command in readers.items():
        assert _option(command, "--text-field") is not None, name
        assert _option(command, "--skip-bad-rows") is not None, name


def _verb_cases(corpus: Path, tmp: Path) -> dict[str, list[str]]:
    mixture = tmp / "uniform.json"
    mixture.write_text(json.dumps({"name": "u", "weights": {"code": 0.5, "prose": 0.5}}))
    mixtures = tmp / "mixtures.csv"
    mixtures.write_text("name,code,prose\nhalf,0.5,0.5\n")
    c = str(corpus)
    return {
        "stats": ["corpus", "stats", c, "--json", str(tmp / "stats.json")],
        "entropy": ["entropy", c, "--measures", "se", "--seq-len", "16", "--out", str(tmp / "entropy")],
        "random": ["mixtures", "random", "--n", "2", "--corpus", c, "--min-distance", "0", "-o", str(tmp / "r.csv")],
        "export": ["export", str(mixture), "--format", "hf", "--corpus", c],
        "score": ["score", c, "--annotate-n", "20", "--clusters", "2", "--out", str(tmp / "scores.parquet")],
        "sample": ["sample", c, "--scores", str(tmp / "scores.parquet"), "--budget-tokens", "2000",
                   "--min-share", "code=0.1,prose=0.1", "--out", str(tmp / "sample")],
        "sweep": ["sweep", c, "--mixtures", str(mixtures), "--out", str(tmp / "sweep"), "--evals", "1",
                  *TINY_TRAINING],
        "doremi": ["doremi", c, "--out", str(tmp / "doremi"), *TINY_TRAINING],
    }  # fmt: skip


def test_each_verb_reads_the_text_field_and_fails_or_skips_the_bad_row(corpus: Path, tmp_path: Path) -> None:
    cases = _verb_cases(corpus, tmp_path)
    # without --skip-bad-rows: exit 2 naming the bad row, which is only reached when --text-field is read
    for verb, args in cases.items():
        if verb == "sample":
            continue  # needs the scores written below
        failed = run("-q", *args, "--text-field", FIELD)
        assert_one_line_cause(failed, f"{BAD_SHARD}:{BAD_LINE}")
    for verb, args in cases.items():
        skipped = run(*args, "--text-field", FIELD, "--skip-bad-rows")
        assert skipped.returncode == 0, (verb, skipped.stderr)
        if verb == "score":
            failed = run("-q", *cases["sample"], "--text-field", FIELD)
            assert_one_line_cause(failed, f"{BAD_SHARD}:{BAD_LINE}")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["total"]["documents"] == 24 and stats["total"]["skipped"] == 1
    entropy = json.loads((tmp_path / "entropy" / "entropy.json").read_text())
    assert sum(v["skipped_rows"] for v in entropy["domains"].values()) == 1
    sample = json.loads((tmp_path / "sample" / "summary.json").read_text())
    assert sample["realised_tokens"] > 0
    assert (tmp_path / "sweep" / "runs.csv").is_file() and (tmp_path / "doremi" / "mixture.json").is_file()
    # the field is part of the corpus's cache key: the same files read under another field are another corpus
    from mixlab.corpus import Corpus

    assert Corpus.open(corpus, FIELD).fingerprint() != Corpus.open(corpus).fingerprint()


def test_training_tables_are_the_only_stdout_under_json(corpus: Path, tmp_path: Path) -> None:
    args = _verb_cases(corpus, tmp_path)["doremi"]
    done = run("--json", "-", *args, "--text-field", FIELD, "--skip-bad-rows")
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    assert [t["columns"] for t in tables] == [["domain", "reference", "DoReMi"]]
    weights = {row["domain"]: row["DoReMi"] for row in tables[0]["rows"]}
    assert set(weights) == {"code", "prose"} and abs(sum(weights.values()) - 1) < 2e-4


# --- `-` is stdout where an option says PATH|-, and refused elsewhere ---------------------------------------


def test_corpus_stats_json_dash_is_stdout_only(corpus: Path, tmp_path: Path) -> None:
    done = run("corpus", "stats", str(corpus), "--text-field", FIELD, "--skip-bad-rows", "--json", "-",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"]["documents"] == 24
    assert "token share" in done.stderr  # the table went to stderr
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_export_out_dash_is_stdout(tmp_path: Path) -> None:
    mixture = tmp_path / "m.json"
    mixture.write_text(json.dumps({"name": "m", "weights": {"a": 0.25, "b": 0.75}}))
    done = run("export", str(mixture), "--format", "yaml", "--out", "-", cwd=tmp_path)
    assert done.returncode == 0 and "0.75" in done.stdout, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


@pytest.mark.parametrize(
    "args",
    [
        ["mixtures", "random", "--n", "2", "--domains", "a,b", "--prior", "uniform", "--out", "-"],
        ["fit", "-m", "m.csv", "-r", "r.csv", "-o", "-"],
        ["evaluate", "-m", "m.csv", "-r", "r.csv", "-o", "e.json", "--plots", "-"],
        ["sweep", "c", "--mixtures", "m.csv", "--out", "-"],
        ["entropy", "c", "--out", "-"],
        ["report", "d", "--out", "-"],
        ["corpus", "demo", "--out", "-"],
    ],
)
def test_dash_is_refused_where_a_verb_writes_files(args: list[str], tmp_path: Path) -> None:
    done = run(*args, cwd=tmp_path)
    flag = "--plots" if "--plots" in args else "--out"
    assert_one_line_cause(done, f"{flag} -", "not stdout")
    assert list(tmp_path.iterdir()) == []


def test_every_output_option_takes_dash_or_refuses_it() -> None:
    root = typer.main.get_command(cli.app)
    cli.refuse_stdout(root)
    for command in _commands_of(root).values():
        for option in command.params:
            if cli.OUTPUT_OPTIONS.intersection(option.opts) and option.metavar != common.STDOUT_METAVAR:
                with pytest.raises(BadInput, match="not stdout"):
                    option.callback(None, option, "-")


def _commands_of(root) -> dict[str, object]:
    return {" ".join(path): leaf for path, leaf in _leaves(root)}


# --- one name per concept -----------------------------------------------------------------------------------

RANDOM = ["mixtures", "random", "--n", "3", "--domains", "a,b,c", "--prior", "uniform"]


def test_drop_below_is_the_old_min_weight_of_mixtures_random(tmp_path: Path) -> None:
    new = run(*RANDOM, "--drop-below", "0.3", "-o", str(tmp_path / "new.csv"))
    old = run(*RANDOM, "--min-weight", "0.3", "-o", str(tmp_path / "old.csv"))
    quiet = run("-q", *RANDOM, "--min-weight", "0.3", "-o", str(tmp_path / "quiet.csv"))
    assert new.returncode == old.returncode == quiet.returncode == 0, old.stderr
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    assert "deprecated" in old.stderr and "--drop-below" in old.stderr and "deprecated" not in new.stderr
    assert quiet.stderr == "" and quiet.stdout == ""  # -q: errors only, no warnings
    both = run(*RANDOM, "--min-weight", "0.3", "--drop-below", "0.3", "-o", str(tmp_path / "x.csv"))
    assert "--min-weight is the old spelling of --drop-below" in both.stderr and both.returncode == 2
    help_text = run(*RANDOM[:2], "-h").stdout
    assert "--drop-below" in help_text and "--min-weight" not in help_text


def test_eval_step_names_the_step_of_an_evaluation() -> None:
    commands = _commands()
    for name in ("fit", "evaluate", "import olmix", "import regmix"):
        assert _option(commands[name], "--eval-step") is not None, name
        assert _option(commands[name], "--step").hidden, name  # the old spelling still parses
    for name in ("predict", "optimize"):
        assert _option(commands[name], "--steps") is not None and _option(commands[name], "--step") is None
    assert (
        _option(commands["demo"], "--eval-seeds") is not None and _option(commands["demo"], "--seeds").hidden
    )
    assert _option(commands["corpus demo"], "--domains") is not None


def test_key_value_lists_are_comma_separated() -> None:
    assert common.key_values(["a=[1,2],b=3", "c = x"], "--hyper", "a=1") == [
        ("a", "[1,2]"),
        ("b", "3"),
        ("c", "x"),
    ]
    with pytest.raises(BadInput, match="'a' is given twice"):
        common.key_values(["a=1,a=2"], "--hyper", "a=1")
    with pytest.raises(BadInput, match="--min-share code: expected KEY=VALUE"):
        common.key_values(["code"], "--min-share", "code=0.1")
    assert common.comma_list("code, wiki", "--domains") == ["code", "wiki"]
    with pytest.raises(BadInput, match="no empty item"):
        common.comma_list("code,,wiki", "--domains")
