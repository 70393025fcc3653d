"""`mixlab import olmix` on the real olmix DCLM swarm (shared/data/olmix: 127 runs over 24 topic domains,
110 downstream-task BPB columns) and the target-metric objective it feeds: the task metrics are targets of the
whole mixture, fitted by regmix/dml/transfer and refused by the own-share laws. Measured here (regmix, 100 train / 27
test runs, mean Spearman over the 110 targets): 0.845 / 0.824 / 0.832 at seeds 0 / 1 / 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from mixcli import assert_one_line_cause, run_mixlab
from mixlab.errors import BadInput
from mixlab.laws import build_observations, get_law, load_observations
from mixlab.laws.evaluate import evaluate_law
from mixlab.laws.importers import import_olmix
from mixlab.mixture import Mixture

OLMIX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "olmix"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    if not (OLMIX / "dclm_ratios.csv").is_file():
        pytest.skip(f"the olmix swarm is not at {OLMIX} (shared/ beside the clone)")
    out = tmp_path_factory.mktemp("olmix") / "imported"
    result = run_mixlab("import", "olmix", str(OLMIX / "dclm_ratios.csv"), str(OLMIX / "dclm_metrics.csv"),
                        "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "110 targets" in result.stdout
    return out, load_observations(out / "mixtures.csv", out / "runs.csv")


def test_swarm_is_read_as_it_is(imported):
    _, obs = imported
    ratios = pd.read_csv(OLMIX / "dclm_ratios.csv")
    metrics = pd.read_csv(OLMIX / "dclm_metrics.csv").set_index("name")
    assert (len(obs.runs), len(obs.domains), len(obs.eval_domains)) == (127, 24, 110)
    assert obs.has_targets and obs.n_points == 127 and set(obs.steps) == {1.0}
    assert list(obs.domains) == list(ratios.columns[4:])  # `Unnamed: 0`, run, name, index are not domains
    assert list(obs.eval_domains) == list(metrics.columns[3:])  # ... nor targets
    assert obs.runs[0] == "dclm-datadelve-5xC-30m-62e7dc06-0000"
    assert obs.proportions[0, obs.domains.index("social_life")] == pytest.approx(0.7)
    np.testing.assert_allclose(obs.losses, metrics.loc[list(obs.runs), list(obs.eval_domains)], rtol=1e-9)


@pytest.mark.parametrize("seed", [0])
def test_regmix_predicts_held_out_targets(imported, seed):
    _, obs = imported
    perm = np.random.default_rng(seed).permutation(len(obs.runs))
    train, test = perm[:100], perm[100:]
    law = get_law("regmix").fit(obs.select_runs([obs.runs[i] for i in train]))
    pred = law.predict(obs.proportions[test], np.ones(len(test)))
    rho = [spearmanr(pred[:, j], obs.losses[test, j]).statistic for j in range(len(obs.eval_domains))]
    assert np.mean(rho) >= 0.75  # 0.845 at seed 0
    # evaluate_law scores targets too; a target has no own share
    metrics = evaluate_law(lambda: get_law("regmix"), obs, "unseen", test_runs=[obs.runs[i] for i in test])
    assert metrics.metrics["summary"]["spearman_final"]["mean"] == pytest.approx(np.mean(rho), abs=1e-9)
    assert metrics.predictions["share"].isna().all()


def _targets(n: int = 12) -> tuple[list[Mixture], pd.DataFrame]:
    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(3), size=n)
    mixtures = [Mixture(f"r{i}", dict(zip("abc", row, strict=True))) for i, row in enumerate(w)]
    rows = [(f"r{i}", 1.0, np.nan, "task_bpb", 2.0 - w[i, 0] + 0.5 * w[i, 1] ** 2) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["run", "step", "tokens", "domain", "loss"])
    return mixtures, frame.assign(where=[f"runs.csv: row {i + 2}" for i in range(n)])


@pytest.mark.parametrize("law", ["bimix", "powerlaw"])
def test_own_share_laws_refuse_targets_naming_them(law):
    obs = build_observations(*_targets(), source="runs.csv")
    with pytest.raises(BadInput, match="runs.csv: target 'task_bpb' is not a mixture domain"):
        get_law(law).fit(obs)


def test_whole_mixture_laws_fit_targets():
    obs = build_observations(*_targets(30))
    assert obs.eval_domains == ("task_bpb",)
    for law in ("dml", "regmix"):
        pred = get_law(law).fit(obs).predict(obs.proportions, np.ones(30))[:, 0]
        assert spearmanr(pred, obs.losses[:, 0]).statistic > 0.9, law


def test_cli_refuses_bimix_on_targets_and_mixed_runs_files(tmp_path):
    mixtures, frame = _targets()
    pd.DataFrame([{"name": m.name, **m.weights} for m in mixtures]).to_csv(tmp_path / "m.csv", index=False)
    frame.drop(columns="where").to_csv(tmp_path / "runs.csv", index=False)
    result = run_mixlab("fit", "-m", str(tmp_path / "m.csv"), "-r", str(tmp_path / "runs.csv"),
                        "--law", "bimix", "-o", str(tmp_path / "law.json"))  # fmt: skip
    assert_one_line_cause(result, "target 'task_bpb'", "dml, regmix")
    assert not (tmp_path / "law.json").exists()
    mixed = pd.concat([frame, frame.assign(domain="a", loss=3.0)]).drop(columns="where")
    mixed.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(BadInput, match="row 2: domain 'task_bpb' is not a column of .*not both"):
        load_observations(tmp_path / "m.csv", tmp_path / "runs.csv")


def test_bad_swarms_name_file_and_row(tmp_path):
    (tmp_path / "m.csv").write_text("run,task\nx,1.5\n")
    (tmp_path / "r.csv").write_text("id,a,b\nx,0.5,0.5\n")
    with pytest.raises(BadInput, match="r.csv: missing join column 'run' or 'run_id'"):
        import_olmix(tmp_path / "r.csv", tmp_path / "m.csv")
    (tmp_path / "r.csv").write_text("run,a,b\nx,0.5,0.5\ny,0.5,0.4\n")
    with pytest.raises(BadInput, match=r"r.csv: row 3: ratios sum to 0.9, not 1"):
        import_olmix(tmp_path / "r.csv", tmp_path / "m.csv")
    (tmp_path / "r.csv").write_text("run_id,a,b\nx,0.5,0.5\n")
    with pytest.raises(BadInput, match="m.csv: join column is 'run' but .*r.csv has 'run_id'"):
        import_olmix(tmp_path / "r.csv", tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("run_id,task\nx,0\n")
    with pytest.raises(BadInput, match="m.csv: row 2: field 'task' is 0 .must be finite and positive"):
        import_olmix(tmp_path / "r.csv", tmp_path / "m.csv")
