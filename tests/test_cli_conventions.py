"""The CLI behaves like its neighbours: global options before or after the verb, --version, -h, -o for
--out, --json PATH|-, -q, and a bad option value is one line with exit 2 (real `mixlab` processes)."""

from __future__ import annotations

import json

import pytest
import typer.main

from mixcli import assert_one_line_cause, run_mixlab
from mixlab import __version__
from mixlab.cli import add_short_out, app, hoist_global_options

RANDOM = ["mixtures", "random", "--n", "3", "--domains", "a,b,c", "--prior", "uniform"]


def test_global_options_after_the_verb(tmp_path) -> None:
    before = run_mixlab("--seed", "7", "-q", *RANDOM, "-o", str(tmp_path / "a.csv"))
    after = run_mixlab(*RANDOM, "--out", str(tmp_path / "b.csv"), "--seed=7", "--quiet")
    default = run_mixlab(*RANDOM, "-o", str(tmp_path / "c.csv"))
    assert before.returncode == after.returncode == default.returncode == 0, after.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert before.stdout == after.stdout == "" and "wrote" in default.stdout


def test_hoisting_keeps_values_and_the_verbs_own_options() -> None:
    root = typer.main.get_command(app)
    args = ["fit", "--runs", "--seed", "-m", "m.csv", "--workers", "2", "-q", "--", "--seed"]
    assert hoist_global_options(root, args) == [
        "--workers", "2", "-q", "fit", "--runs", "--seed", "-m", "m.csv", "--", "--seed",
    ]  # fmt: skip
    assert hoist_global_options(root, ["--seed", "1", "corpus", "stats", "c", "--json", "x"]) == [
        "--seed", "1", "corpus", "stats", "c", "--json", "x",
    ]  # fmt: skip


def test_version_and_short_help() -> None:
    version = run_mixlab("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"mixlab {__version__}"
    for args in (["-h"], ["sample", "-h"], ["corpus", "stats", "-h"]):
        done = run_mixlab(*args)
        assert done.returncode == 0 and "Usage" in done.stdout, (args, done.stderr)


def test_every_out_has_short_o() -> None:
    root = typer.main.get_command(app)
    add_short_out(root)

    def leaves(command):
        if hasattr(command, "commands"):
            for sub in command.commands.values():
                yield from leaves(sub)
        else:
            yield command

    writers = [c for c in leaves(root) if any("--out" in p.opts for p in c.params)]
    assert len(writers) >= 14
    for command in writers:
        out = next(p for p in command.params if "--out" in p.opts)
        assert "-o" in out.opts, command.name


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (
            ["mixtures", "random", "--n", "1e5", "--domains", "a,b", "--prior", "uniform", "-o", "x.csv"],
            "--n",
        ),
        ([*RANDOM, "-o", "x.csv", "--seed", "nan"], "--seed"),
        ([*RANDOM, "-o", "x.csv", "--no-such-flag"], "--no-such-flag"),
        (["fit", "--runs"], "--runs"),
    ],
)
def test_bad_option_value_is_one_line(args, flag, tmp_path) -> None:
    done = run_mixlab(*args, cwd=tmp_path)
    assert_one_line_cause(done, flag)
    assert "Usage" not in done.stderr and "╭" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_json_tables_to_a_file_and_nothing_on_failure(tmp_path) -> None:
    ok = run_mixlab("--json", str(tmp_path / "t.json"), *RANDOM, "-o", str(tmp_path / "m.csv"))
    assert ok.returncode == 0 and json.loads((tmp_path / "t.json").read_text()) == {"tables": []}
    assert ok.stdout == "" and "wrote" in ok.stderr
    failed = run_mixlab(*RANDOM[:2], "--n", "0", "--domains", "a,b", "--json", str(tmp_path / "f.json"))
    assert failed.returncode == 2 and not (tmp_path / "f.json").exists()
