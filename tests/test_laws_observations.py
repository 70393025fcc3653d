"""runs.csv / parquet validation against mixtures, the Observations arrays, and the olmix/RegMix importers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixlab.errors import BadInput
from mixlab.laws import load_observations, read_runs, write_runs
from mixlab.laws.importers import import_olmix, import_regmix, strip_common_affixes
from mixlab.mixture import Mixture, write_mixtures

MIXTURES = "name,web,code\nm1,3,1\nm2,1,1\n"


def write(tmp_path, runs: str, mixtures: str = MIXTURES):
    (tmp_path / "mixtures.csv").write_text(mixtures)
    (tmp_path / "runs.csv").write_text(runs)
    return tmp_path / "mixtures.csv", tmp_path / "runs.csv"


GOOD = (
    "run,step,tokens,domain,loss\n"
    "m1,200,,web,3.0\nm1,100,1000,web,4.0\nm1,100,1000,code,5.0\nm2,100,,web,4.5\nm2,100,,code,4.2\n"
)


def test_observations_arrays(tmp_path):
    obs = load_observations(*write(tmp_path, GOOD))
    assert obs.domains == ("web", "code") and obs.eval_domains == ("web", "code")
    assert obs.runs == ("m1", "m2")
    np.testing.assert_allclose(obs.proportions, [[0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_array_equal(obs.point_run, [0, 0, 1])
    np.testing.assert_array_equal(obs.steps, [100, 200, 100])  # sorted by run, then step
    np.testing.assert_array_equal(obs.tokens[:1], [1000])
    assert np.isnan(obs.losses[1, 1])  # code not evaluated at m1/200
    np.testing.assert_array_equal(obs.losses[0], [4.0, 5.0])
    sub = obs.select_runs(["m2"])
    assert sub.runs == ("m2",) and sub.n_points == 1 and list(sub.point_run) == [0]
    boot = obs.resample_runs([1, 1, 0])
    assert boot.runs == ("m2#0", "m2#1", "m1#2") and boot.n_points == 4


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (GOOD + "m2,200,,web,nan\n", "runs.csv: row 7: field 'loss' is 'nan'"),
        (GOOD + "m2,200,,web,inf\n", "row 7: field 'loss' is 'inf'"),
        (GOOD + "m2,200,,web,abc\n", "row 7: field 'loss' is not a number"),
        (GOOD + "m2,200,,web,-1\n", "row 7: field 'loss'"),
        (GOOD + "m2,-5,,web,3\n", "row 7: field 'step' is negative"),
        (GOOD + "m1,100,,web,3.9\n", "row 7: duplicate (run, step, domain) = (m1, 100, web), first at row 3"),
        (GOOD + "m3,100,,web,3.9\n", "row 7: run 'm3' has no mixture in"),
        (GOOD + "m2,200,,math,3.9\n", "row 7: domain 'math' is not a column of"),
        ("run,step,domain\nm1,1,web\n", "missing column 'loss'"),
        ("run,step,tokens,domain,loss\n", "no observations"),
    ],
)
def test_bad_runs_name_file_row_and_field(tmp_path, runs, message):
    with pytest.raises(BadInput) as err:
        load_observations(*write(tmp_path, runs))
    assert message in str(err.value)


def test_bad_mixture_rows_are_rejected(tmp_path):
    with pytest.raises(BadInput, match="row 3: weight of 'web' is negative"):
        load_observations(*write(tmp_path, GOOD, "name,web,code\nm1,3,1\nm2,-1,1\n"))
    with pytest.raises(BadInput, match="row 2: weights are all zero"):
        load_observations(*write(tmp_path, GOOD, "name,web,code\nm1,0,0\nm2,1,1\n"))


def test_parquet_and_csv_round_trip(tmp_path):
    mixtures, runs = write(tmp_path, GOOD)
    frame = read_runs(runs)
    write_runs(tmp_path / "again.parquet", frame)
    write_runs(tmp_path / "again.csv", frame)
    for path in ("again.parquet", "again.csv"):
        a, b = load_observations(mixtures, runs), load_observations(mixtures, tmp_path / path)
        np.testing.assert_array_equal(a.losses, b.losses)
        np.testing.assert_array_equal(a.tokens, b.tokens)
    bad = frame.drop(columns="where").copy()
    bad.loc[2, "loss"] = np.inf
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(BadInput, match="bad.parquet: record 3: field 'loss'"):
        read_runs(tmp_path / "bad.parquet")


def test_strip_common_affixes():
    assert strip_common_affixes(["train_the_pile_arxiv", "train_the_pile_github"]) == ["arxiv", "github"]
    assert strip_common_affixes(["metric/the_pile_arxiv_val_loss", "metric/the_pile_amazon_val_loss"]) == [
        "arxiv",
        "amazon",
    ]
    assert strip_common_affixes(["web"]) == ["web"]


def test_import_regmix_layout(tmp_path):
    rng = np.random.default_rng(0)
    domains = ["arxiv", "github", "pile_cc"]
    w = rng.dirichlet(np.ones(3), size=6).round(3)
    mix = pd.DataFrame(w, columns=[f"train_the_pile_{d}" for d in domains])
    mix.insert(0, "index", range(1, 7))
    loss = pd.DataFrame(
        4 + rng.random((6, 2)), columns=[f"metric/the_pile_{d}_val_loss" for d in domains[:2]]
    )
    loss.insert(0, "index", range(1, 7))
    mix.to_csv(tmp_path / "train_mixture_1m.csv", index=False)
    loss.to_csv(tmp_path / "train_pile_loss_1m.csv", index=False)
    result = import_regmix(tmp_path / "train_mixture_1m.csv", tmp_path / "train_pile_loss_1m.csv", step=1000)
    assert [m.name for m in result.mixtures] == [str(i) for i in range(1, 7)]
    assert result.mixtures[0].domains == domains
    assert sorted(result.runs["domain"].unique()) == ["arxiv", "github"]
    assert len(result.runs) == 12 and set(result.runs["step"]) == {1000}
    write_mixtures(tmp_path / "m.csv", result.mixtures)
    write_runs(tmp_path / "r.csv", result.runs)
    obs = load_observations(tmp_path / "m.csv", tmp_path / "r.csv")
    assert obs.eval_domains == ("arxiv", "github")
    np.testing.assert_allclose(obs.losses[:, 0], loss["metric/the_pile_arxiv_val_loss"])


def test_import_olmix_layout_with_pattern_steps_and_downstream_metrics(tmp_path):
    ratios = pd.DataFrame({"run_id": ["a1", "b2", "c3"], "name": ["swarm-0", "swarm-1", "swarm-2"],
                           "dclm": [0.5, 0.2, 0.3], "wikipedia": [0.3, 0.4, 0.3], "arxiv": [0.2, 0.4, 0.4]})  # fmt: skip
    rows = [
        {"run_id": r, "step": s, "eval/dclm/CE loss": 3.0 + k / 10 - s / 1e4, "eval/arxiv/CE loss": 2.5 - s / 1e4,
         "eval/downstream/hellaswag (BPB v2)": 1.1}
        for k, r in enumerate(["a1", "b2", "c3"]) for s in (1000, 2000)
    ]  # fmt: skip
    ratios.to_csv(tmp_path / "ratios.csv", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    result = import_olmix(
        tmp_path / "ratios.csv", tmp_path / "metrics.csv", metric_pattern="eval/{domain}/CE loss"
    )
    assert [m.name for m in result.mixtures] == ["swarm-0", "swarm-1", "swarm-2"]
    assert result.skipped_columns == ["eval/downstream/hellaswag (BPB v2)"]
    assert len(result.runs) == 12 and set(result.runs["step"]) == {1000.0, 2000.0}
    with pytest.raises(BadInput, match="no metric column matches a domain"):
        import_olmix(tmp_path / "ratios.csv", tmp_path / "metrics.csv")
    pd.DataFrame(rows + [{**rows[0], "run_id": "zz"}]).to_csv(tmp_path / "metrics.csv", index=False)
    with pytest.raises(BadInput, match="row 8: run_id 'zz' has no mixture"):
        import_olmix(
            tmp_path / "ratios.csv", tmp_path / "metrics.csv", metric_pattern="eval/{domain}/CE loss"
        )


def test_mixtures_of_observations_round_trip():
    m = Mixture.from_weights("x", {"a": 1, "b": 3})
    assert m.weights == {"a": 0.25, "b": 0.75}


def test_runs_appender_writes_the_sweeps_runs_csv_that_read_runs_reads(tmp_path):
    from mixlab.runs import RunsAppender

    first = {"step": 2, "tokens": 64, "losses": {"a": 3.1234567, "b": 2.5}}
    with RunsAppender(tmp_path / "runs.csv", {"r0": [first], "r1": []}) as runs:
        runs.append("r1", {"step": 2, "tokens": 64, "losses": {"b": 2.0, "a": 1.0}})
    assert (tmp_path / "runs.csv").read_text().splitlines() == [
        "run,step,tokens,domain,loss",
        "r0,2,64,a,3.123457",
        "r0,2,64,b,2.500000",
        "r1,2,64,b,2.000000",
        "r1,2,64,a,1.000000",
    ]
    frame = read_runs(tmp_path / "runs.csv")
    assert frame["loss"].tolist() == [3.123457, 2.5, 2.0, 1.0] and frame["tokens"].tolist() == [64.0] * 4
