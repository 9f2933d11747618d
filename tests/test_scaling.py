"""Forgetting scaling laws (Kalajdzievski, 2024): parameter recovery with bootstrap CIs, degenerate input,
the extrapolation check, the Pareto front, and the tables and figures drawn from CSVs read back from disk."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pandas as pd
import pytest

from forgetbench.scaling import (
    bootstrap,
    fit_linear,
    fit_power_law,
    fit_table,
    holdout_check,
    pareto_front,
    plot_domain_vs_general,
    plot_forgetting_vs_ft_loss,
    plot_forgetting_vs_steps,
    plot_observed_vs_predicted,
    write_fit_table,
)

TRUE = {"A": 0.01, "alpha": 0.35, "beta": 0.25, "B": -0.05}
N_GRID = (1e5, 4e5, 1.6e6, 6.4e6, 2.56e7, 1e8)
T_GRID = (50, 100, 200, 400, 800, 1600)


def law(n, t, p=TRUE):
    return p["A"] * (np.asarray(n, float) ** p["beta"] * np.asarray(t, float)) ** p["alpha"] + p["B"]


def grid(repeats: int = 2):
    n, t = (a.ravel() for a in np.meshgrid(N_GRID, T_GRID))
    return np.tile(n, repeats), np.tile(t, repeats).astype(float)


def exact(pattern: str):
    return pytest.raises(ValueError, match="^" + re.escape(pattern) + "$")


def test_power_law_recovers_parameters_inside_bootstrap_ci():
    n, t = grid()
    f = law(n, t) + np.random.default_rng(1).normal(0, 0.005, n.size)
    result = bootstrap(fit_power_law, {"n_params": n, "steps": t, "forgetting": f}, n_boot=100, seed=0)
    assert result.n_failed == 0 and result.estimate.r2 > 0.99 and result.estimate.n == n.size
    for name, value in TRUE.items():
        assert result.ci_low[name] <= value <= result.ci_high[name], (name, result.table())
    assert abs(result.estimate.alpha - TRUE["alpha"]) < 0.02 and abs(result.estimate.beta - TRUE["beta"]) < 0.02
    assert len(result.samples) == 100 and list(result.table()["parameter"]) == ["A", "alpha", "beta", "B"]


def test_linear_law_recovers_parameters_inside_bootstrap_ci():
    rng = np.random.default_rng(2)
    ft_loss = rng.uniform(1.0, 2.0, 60)
    forgetting = 0.9 - 0.4 * ft_loss + rng.normal(0, 0.01, 60)
    result = bootstrap(fit_linear, {"ft_loss": ft_loss, "forgetting": forgetting}, n_boot=400, seed=0)
    assert result.ci_low["slope"] <= -0.4 <= result.ci_high["slope"]
    assert result.ci_low["intercept"] <= 0.9 <= result.ci_high["intercept"]
    assert result.estimate.r2 > 0.95 and result.ci_high["slope"] < 0


def test_robust_fit_resists_outliers():
    n, t = grid()
    f = law(n, t) + np.random.default_rng(3).normal(0, 0.003, n.size)
    f[[3, 17, 40, 66]] += 0.3
    plain, robust = fit_power_law(n, t, f), fit_power_law(n, t, f, robust=True)
    assert robust.loss == "soft_l1" and fit_power_law(n, t, f, robust="huber").loss == "huber"
    assert abs(robust.alpha - TRUE["alpha"]) < 0.01 < abs(plain.alpha - TRUE["alpha"])


@pytest.mark.parametrize(
    "args, message",
    [
        (([1e6, 2e6, 4e6], [10, 20, 30], [0.1, 0.2, 0.3]), "power law needs at least 5 points, got 3"),
        (([1e6, 2e6, 4e6, 8e6, 1e7], [10, 20, 30, 40, 50], [0.2] * 5),
         "power law: column 'forgetting' is constant (zero variance in the response)"),
        (([1e6] * 5, [10, 20, 30, 40, 50], [0.1, 0.2, 0.3, 0.4, 0.5]),
         "power law: column 'n_params' is constant (zero variance in the predictor)"),
        (([1e6, 2e6, 4e6, 8e6, 1e7], [10, 20, 30, 40, 50], [0.1, np.nan, 0.3, np.inf, 0.5]),
         "power law: column 'forgetting' has 2 NaN/inf values (of 5)"),
        (([1e6, 2e6, 4e6, 8e6, 1e7], [0, 20, 30, 40, 50], [0.1, 0.2, 0.3, 0.4, 0.5]),
         "power law: column 'steps' must be > 0, got 1 non-positive value (min 0)"),
    ],
)
def test_power_law_rejects_degenerate_input(args, message):
    with exact(message) as info:
        fit_power_law(*args)
    assert type(info.value) is ValueError  # data problem, not a ConfigError


def test_linear_law_rejects_degenerate_input():
    with exact("linear law needs at least 3 points, got 2"):
        fit_linear([1.0, 2.0], [0.1, 0.2])
    with exact("linear law: column 'ft_loss' is constant (zero variance in the predictor)"):
        fit_linear([1.5] * 4, [0.1, 0.2, 0.3, 0.4])
    with exact("linear law: column 'ft_loss' has 1 NaN/inf value (of 4)"):
        fit_linear([1.0, np.nan, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4])


def test_bootstrap_counts_failed_refits_without_crashing():
    calls = {"n": 0}

    def flaky(ft_loss, forgetting):
        calls["n"] += 1
        if calls["n"] > 1 and calls["n"] % 3 == 0:
            raise ValueError("did not converge")
        return fit_linear(ft_loss, forgetting)

    x = np.linspace(1, 2, 20)
    result = bootstrap(flaky, {"ft_loss": x, "forgetting": 1 - 0.5 * x}, n_boot=30, seed=0)
    assert result.n_failed == 10 and result.failures["ValueError: did not converge"] == 10
    assert len(result.samples) == 20 and np.isfinite(result.ci_low["slope"])

    def broken(ft_loss, forgetting, calls=[]):
        calls.append(1)
        if len(calls) > 1:  # the fit on all rows succeeds, every refit fails
            raise RuntimeError("boom")
        return fit_linear(ft_loss, forgetting)

    none_left = bootstrap(broken, {"ft_loss": x, "forgetting": 1 - 0.5 * x}, n_boot=5)
    assert none_left.n_failed == 5 and np.isnan(none_left.ci_high["intercept"])


@pytest.mark.parametrize("split_by", ["n_params", "step"])
def test_holdout_small_error_on_clean_data(split_by):
    n, t = grid(repeats=1)
    f = law(n, t) + np.random.default_rng(4).normal(0, 1e-4, n.size)
    result = holdout_check(n, t, f, split_by=split_by, quantile=0.5)
    assert result.n_train == 18 and result.n_test == 18
    assert result.rel_error < 0.01 and result.mae < 0.005 and result.rmse < 0.005
    assert (result.predictions[split_by] > result.threshold).all()
    with pytest.raises(ValueError, match="no cells with n_params > "):
        holdout_check(n, t, f, threshold=1e9)


def test_pareto_front_hand_made():
    df = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "domain": [0.1, 0.5, 0.9, 0.5, 0.3, 0.9, 0.1, np.nan],
            "general": [0.9, 0.7, 0.2, 0.6, 0.8, 0.2, 0.85, 1.0],
        }
    )
    # d is dominated by b, g by a, f ties c exactly (both kept), h has no domain score.
    assert list(pareto_front(df, "domain", "general")["name"]) == ["a", "e", "b", "c", "f"]
    assert pareto_front(df.iloc[:0], "domain", "general").empty


def scaling_table() -> pd.DataFrame:
    """A scaling.csv as the pipeline writes it: two models, LoRA ranks plus full fine-tuning, two seeds."""
    rng = np.random.default_rng(5)
    rows = []
    for model, scale in [("tiny-a", 1.0), ("tiny-b", 1.3)]:
        for method, n_list in [("lora", N_GRID[:-1]), ("full", N_GRID[-1:])]:
            for n in n_list:
                for seed in (0, 1):
                    for step in (0, *T_GRID):
                        f = 0.0 if step == 0 else scale * law(n, step) + rng.normal(0, 0.004)
                        rows.append(
                            {
                                "model": model, "method": method, "lr": 2e-4 if method == "lora" else 1e-5,
                                "seed": seed, "n_params": int(n), "step": step, "forgetting": f,
                                "ft_loss": (0.9 - f) / 0.4 + rng.normal(0, 0.01),
                                "domain": 0.2 + 0.1 * np.log1p(step) * (1 + 0.05 * np.log10(n)),
                                "general_avg": 0.6 - 0.3 * f + rng.normal(0, 0.003),
                            }
                        )
    return pd.DataFrame(rows)


def is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_tables_and_plots_from_csv_on_disk(tmp_path):
    scaling_table().to_csv(tmp_path / "scaling.csv", index=False)
    scaling = pd.read_csv(tmp_path / "scaling.csv")
    table = fit_table(scaling, n_boot=15, seed=0)
    fitted = table[table["law"] != "power_law_holdout"]
    assert set(table["model"]) == {"tiny-a", "tiny-b"} and len(fitted) == 2 * (2 + 4)
    assert len(table) - len(fitted) == 2 * 4  # the held-out fit's parameters, for the observed-vs-predicted plot
    assert (fitted["n_failed"] == 0).all() and (fitted["ci_low"] <= fitted["ci_high"]).all()
    assert (fitted["flag"] == "").all()
    pw_a = fitted[(fitted["model"] == "tiny-a") & (fitted["law"] == "power_law")].iloc[0]
    # 5 LoRA N and full: fit on the 3 smallest N, predict the 3 largest, within 3 % of the observed forgetting
    assert pw_a["holdout"] == "fit on n_params <= 1.6e+06 (36 cells), predicts 36" and pw_a["holdout_rel_error"] < 0.03
    pw = table[(table["model"] == "tiny-a") & (table["law"] == "power_law")].set_index("parameter")
    assert abs(pw.loc["alpha", "estimate"] - TRUE["alpha"]) < 0.03 and (pw["n"] == 2 * 6 * 6).all()
    assert table.loc[table["law"] == "linear", "r2"].min() > 0.9

    for suffix in ("csv", "md", "tex"):
        write_fit_table(table, tmp_path / f"fits.{suffix}")
    md = (tmp_path / "fits.md").read_text()
    assert "| power law" in md and "held-out MAE (rel.)" in md and "power_law_holdout" not in md
    tex = (tmp_path / "fits.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\alpha$" in tex and r"95\% CI" in tex
    fits = pd.read_csv(tmp_path / "fits.csv")

    plot_forgetting_vs_steps(scaling, fits, tmp_path / "a.png")
    plot_forgetting_vs_ft_loss(scaling, fits, tmp_path / "b.png")
    plot_observed_vs_predicted(scaling, fits, tmp_path / "c.png")
    plot_domain_vs_general(scaling, tmp_path / "d.png")
    for name in "abcd":
        assert is_png(tmp_path / f"{name}.png"), name
    assert not list(tmp_path.glob(".*tmp*")), "atomic writes left temporary files"


def test_fit_table_names_the_group_on_bad_data():
    scaling = scaling_table()
    scaling.loc[(scaling["model"] == "tiny-b") & (scaling["step"] == 100), "forgetting"] = np.nan
    with pytest.raises(ValueError, match=r"^model=tiny-b: linear law: column 'forgetting' has 12 NaN/inf values"):
        fit_table(scaling, n_boot=2)
    with pytest.raises(ValueError, match="lacks column"):
        fit_table(scaling.drop(columns=["ft_loss"]))


def test_partial_options_pass_through_bootstrap():
    n, t = grid()
    f = law(n, t) + np.random.default_rng(6).normal(0, 0.004, n.size)
    result = bootstrap(functools.partial(fit_power_law, robust="huber"), pd.DataFrame(
        {"n_params": n, "steps": t, "forgetting": f}), n_boot=10, seed=1)
    assert result.estimate.loss == "huber" and result.n_boot == 10


def test_a_fit_from_too_few_distinct_steps_is_flagged_and_cannot_extrapolate():
    """The default's scaling study: 2 LoRA ranks and full fine-tuning, checkpoints at 2 steps — 6 points for 4
    parameters fit with a high R² that says nothing."""
    scaling = scaling_table()
    few = scaling[(scaling["model"] == "tiny-a") & (scaling["seed"] == 0) & scaling["step"].isin([0, 50, 100])
                  & scaling["n_params"].isin([N_GRID[0], N_GRID[2], N_GRID[-1]])]
    table = fit_table(few, n_boot=20, seed=0)
    pw = table[table["law"] == "power_law"].iloc[0]
    assert pw["flag"].startswith("underdetermined (2 distinct step; needs 3)")
    assert pw["holdout"].startswith("not possible: n_params: holdout training split (n_params <= 1.6e+06): power law")
    assert table[table["law"] == "linear"].iloc[0]["flag"] == ""
    assert "underdetermined" in fit_table_markdown_text(table)


def fit_table_markdown_text(table):
    from forgetbench.scaling import fit_table_markdown

    return fit_table_markdown(table)


def test_a_ci_at_a_bound_is_flagged():
    from forgetbench.scaling.report import _bound_flags
    from forgetbench.scaling.fits import BootstrapResult

    result = BootstrapResult(None, 0.95, {"alpha": 0.001, "beta": -1.0, "B": -1.0}, {"alpha": 0.5, "beta": 5.0, "B": 0.0},
                             10, 0)
    assert _bound_flags("power_law", result, pd.Series([0.1, 0.3])) == ["CI of alpha reaches its bound",
                                                                       "CI of beta reaches its bound"]


def test_scaling_plots_label_forgetting_in_bpb_mark_held_out_cells_and_print_plain_ticks(tmp_path, monkeypatch):
    from forgetbench.scaling import report

    figures = []
    monkeypatch.setattr(report, "save_figure", lambda fig, out: figures.append(fig))
    scaling = scaling_table()
    fits = fit_table(scaling[scaling["model"] == "tiny-a"], n_boot=5, seed=0)
    plot_forgetting_vs_steps(scaling, fits, "unused.png")
    plot_observed_vs_predicted(scaling, fits, "unused.png")
    steps, predicted = figures[0].axes[0], figures[1].axes[0]
    assert steps.get_ylabel() == "forgetting (Δ bpb of general text)"
    steps.figure.canvas.draw()
    assert [t.get_text() for t in steps.get_xticklabels()] == ["50", "100", "200", "400", "800", "1600"]
    labels = [t.get_text() for t in predicted.get_legend().get_texts()]
    assert labels == ["fit on all cells", "held out: N > 1.6e+06, fit on the rest"]
    held = predicted.collections[1]
    assert len(held.get_offsets()) == 2 * 6 * 3  # 3 larger N x 6 steps x 2 seeds


def write_checkpoint_metrics(folder, domain=("domain",), general=("arc_easy", "piqa")) -> list:
    """The metrics.json of every checkpoint of a small scaling study, as evaluate_checkpoint writes them: two
    models, each with its base as step 0, LoRA at 3 ranks and full fine-tuning, 2 seeds, 4 steps; the scores of
    the `domain` tasks (the domain-score tasks) grow with the steps, 0.1 apart from one task to the next."""
    rng, domain_rng = np.random.default_rng(7), np.random.default_rng(8)  # the rest the same whatever `domain`
    runs = [("scaling-lora-r2", 1e5), ("scaling-lora-r8", 4e5), ("scaling-lora-r32", 1.6e6), ("scaling-full", 1e8)]
    cells = [(model, "base", None, None, 0, 0) for model in ("tiny-a", "tiny-b")]
    cells += [(model, method, 2e-4, seed, n, step) for model in ("tiny-a", "tiny-b") for method, n in runs
              for seed in (0, 1) for step in (50, 100, 200, 400)]
    paths = []
    for model, method, lr, seed, n, step in cells:
        f = 0.0 if step == 0 else law(n, step) - law(n, 1) + rng.normal(0, 0.002)
        metrics = {"general_text": {"score": 1.1 + f, "metric": "bits_per_byte"},
                   **{t: {"score": 0.5 - 0.3 * f + 0.02 * k + rng.normal(0, 0.003), "metric": "acc"}
                      for k, t in enumerate(general)},
                   **{t: {"score": 0.2 + 0.05 * np.log1p(step) + 0.1 * k + domain_rng.normal(0, 0.003), "metric": "acc"}
                      for k, t in enumerate(domain)}}
        result = {"metrics": metrics, "settings": {"backend": "hf"},
                  "cell": {"model": model, "method": method, "registry_name": method, "lr": lr, "seed": seed,
                           "step": step, "n_params": int(n)},
                  "ft_loss": 2.0 - 0.08 * np.log1p(step) - 0.02 * np.log10(max(n, 1)) + rng.normal(0, 0.005)}
        path = folder / f"{model}-{method}-{seed}-{step}.json"
        path.write_text(json.dumps(result))
        paths.append(path)
    return paths


def scores_of(paths, task) -> dict:
    """(model, method, seed, step) -> the task's score in each metrics file."""
    out = {}
    for path in paths:
        result = json.loads(path.read_text())
        c = result["cell"]
        out[(c["model"], c["method"], c["seed"], c["step"])] = result["metrics"][task]["score"]
    return out


def test_the_default_scaling_table_keeps_its_columns(tmp_path):
    from forgetbench.scaling.table import build_scaling_table

    paths = write_checkpoint_metrics(tmp_path)
    table = build_scaling_table(paths, ["arc_easy", "piqa"])
    assert list(table.columns) == ["model", "method", "lr", "seed", "n_params", "step", "general_text", "ft_loss",
                                   "domain", "arc_easy", "piqa", "general_avg", "forgetting"]
    assert table.equals(build_scaling_table(paths, ["arc_easy", "piqa"], ["domain"]))
    domain = scores_of(paths, "domain")
    row = table[(table["model"] == "tiny-b") & (table["method"] == "scaling-lora-r8") & (table["seed"] == 1)
                & (table["step"] == 200)].iloc[0]
    assert row["domain"] == domain[("tiny-b", "scaling-lora-r8", 1, 200)]


def test_scaling_table_with_domain_eval_tasks_as_the_domain_score(tmp_path):
    from forgetbench.scaling.table import build_scaling_table

    general = ["arc_easy"]
    one = write_checkpoint_metrics(tmp_path, domain=("domain.my_task",), general=general)
    table = build_scaling_table(one, general, ["domain.my_task"])
    assert list(table.columns)[8:11] == ["domain", "domain.my_task", "arc_easy"]
    mine = scores_of(one, "domain.my_task")
    for _, r in table.iterrows():
        key = (r["model"], "base" if r["step"] == 0 else r["method"], None if r["step"] == 0 else r["seed"], r["step"])
        assert r["domain"] == r["domain.my_task"] == mine[key]
    # two tasks: the domain score is their mean at each checkpoint
    (tmp_path / "two").mkdir()
    two = write_checkpoint_metrics(tmp_path / "two", domain=("domain.my_task", "domain.gsm8k"), general=general)
    both = build_scaling_table(two, general, ["domain.my_task", "domain.gsm8k"])
    a, b = scores_of(two, "domain.my_task"), scores_of(two, "domain.gsm8k")
    r = both[(both["model"] == "tiny-a") & (both["method"] == "scaling-full") & (both["seed"] == 0)
             & (both["step"] == 400)].iloc[0]
    key = ("tiny-a", "scaling-full", 0, 400)
    assert r["domain"] == pytest.approx((a[key] + b[key]) / 2)
    assert r["domain.gsm8k"] - r["domain.my_task"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match=r"no score for domain\.other$"):
        build_scaling_table(one, general, ["domain.other"])
    # the fits do not read the domain score: the same as the default's on the same checkpoints
    default = build_scaling_table(write_checkpoint_metrics(tmp_path / "two", general=general), general)
    assert fit_table(both, n_boot=5).equals(fit_table(default, n_boot=5))


def test_scaling_without_a_domain_score_plots_the_domain_loss(tmp_path, monkeypatch):
    from forgetbench.scaling import learning_vs_forgetting_axes, plot_learning_vs_forgetting, report
    from forgetbench.scaling.table import build_scaling_table

    paths = write_checkpoint_metrics(tmp_path, domain=(), general=())
    table = build_scaling_table(paths, [], [])
    assert "domain" not in table and table["general_avg"].isna().all()
    table.to_csv(tmp_path / "scaling.csv", index=False)
    table = pd.read_csv(tmp_path / "scaling.csv")
    fits = fit_table(table, n_boot=5)
    assert set(fits["law"]) == {"linear", "power_law", "power_law_holdout"}
    assert learning_vs_forgetting_axes(table) == ("ft_loss", "retained")
    figures = []
    monkeypatch.setattr(report, "save_figure", lambda fig, out: figures.append(fig))
    plot_learning_vs_forgetting(table, "unused.png")
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "domain test loss (nats/token; lower is better)"
    assert ax.get_ylabel() == "−forgetting (−Δ bpb of general text; higher = less forgotten)"
    assert ax.get_title() == "tiny-a"
    curves = {line.get_label(): line for line in ax.get_lines()}
    run = table[(table["model"] == "tiny-a") & (table["method"] == "scaling-lora-r8")]
    mean = run.groupby("step")[["ft_loss", "forgetting"]].mean()
    np.testing.assert_allclose(curves["scaling-lora-r8 lr=0.0002"].get_xdata(), mean["ft_loss"])
    np.testing.assert_allclose(curves["scaling-lora-r8 lr=0.0002"].get_ydata(), -mean["forgetting"])
    # the Pareto front minimises the loss: its lowest-loss checkpoint is on it, the base (highest loss, no
    # forgetting) too, and nothing on it is beaten in both
    front = curves["Pareto front"]
    part = table[table["model"] == "tiny-a"]
    xs, ys = np.asarray(front.get_xdata()), np.asarray(front.get_ydata())
    assert xs.min() == part["ft_loss"].min() and ys.max() == -part["forgetting"].min() == 0
    assert list(xs) == sorted(xs)
    for x, y in zip(xs, ys):
        assert not ((part["ft_loss"] < x) & (-part["forgetting"] > y)).any()
    # with general tasks, only the vertical axis changes
    (tmp_path / "g").mkdir()
    with_general = build_scaling_table(write_checkpoint_metrics(tmp_path / "g", domain=()), ["arc_easy", "piqa"], [])
    assert learning_vs_forgetting_axes(with_general) == ("ft_loss", "general_avg")


def test_dry_run_of_a_scaling_study_on_a_text_domain(tmp_path, tiny_model_dir):
    """A TRL `text` domain (no answers, no domain.eval: no domain score) plans the scaling study as the default
    does: its checkpoints evaluated (the domain test loss beside the general text), the table and the plots."""
    import yaml
    from test_workflow import REPO, job_counts, smoke_config, snakemake

    data = tmp_path / "notes"
    data.mkdir()
    for split, n in (("train", 12), ("test", 4)):
        (data / f"{split}.jsonl").write_text("".join(
            json.dumps({"id": f"{split}-{i}", "text": f"Note {split} {i}: the patient was seen on day {i}."}) + "\n"
            for i in range(n)))
    path = smoke_config(tmp_path, tiny_model_dir)
    config = yaml.safe_load(path.read_text())
    config["domain"] = {"name": "notes", "source": "local", "format": "text", "path": str(data / "train.jsonl"),
                        "test_path": str(data / "test.jsonl")}
    del config["evaluation"]["domain"]
    config["evaluation"]["families"]["domain"] = ["domain_loss"]
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    result = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path),
                       "--directory", str(work))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    # 2 LoRA ranks and full fine-tuning, checkpoints at 2 steps, the base as step 0
    assert (counts["train_scaling"], counts["evaluate_checkpoint"], counts["evaluate_base_checkpoint"]) == (3, 6, 1)
    assert counts["aggregate_scaling"] == counts["plot_scaling"] == 1


@pytest.mark.parametrize("domain", [(), ("domain.my_task",)])
def test_the_scaling_rule_scripts_with_any_domain_score(tmp_path, domain):
    """aggregate_scaling.py and plot_scaling.py as their rules run them (params.domain from domain_score_tasks):
    the domain score column is the domain.eval task's, or absent and the learning-vs-forgetting figure drawn on
    the domain test loss."""
    import runpy
    from types import SimpleNamespace

    from conftest import REPO

    (tmp_path / "m").mkdir()
    paths = write_checkpoint_metrics(tmp_path / "m", domain=domain, general=("arc_easy",))
    out = {name: str(tmp_path / name) for name in ("scaling.csv", "fits.csv", "fits.md", "fits.tex", "fits.html",
                                                    "steps.png", "ft_loss.png", "predicted.png", "curves.png")}
    aggregate = SimpleNamespace(
        input=SimpleNamespace(metrics=[str(p) for p in paths]), log=[str(tmp_path / "aggregate.log")],
        output=SimpleNamespace(table=out["scaling.csv"], fits=out["fits.csv"], md=out["fits.md"], tex=out["fits.tex"],
                               html=out["fits.html"]),
        params=SimpleNamespace(general=["arc_easy"], n_boot=5, domain=list(domain)))
    runpy.run_path(str(REPO / "workflow/scripts/aggregate_scaling.py"), init_globals={"snakemake": aggregate})
    table = pd.read_csv(out["scaling.csv"])
    assert ("domain" in table) == bool(domain)
    if domain:
        np.testing.assert_array_equal(table["domain"], table["domain.my_task"])
    page = (tmp_path / "fits.html").read_text()  # the report's view of the fit table: the Markdown view's rows
    assert "<th class=\"text\">law</th>" in page and "<td class=\"text\">power law</td>" in page
    plot = SimpleNamespace(
        input=SimpleNamespace(table=out["scaling.csv"], fits=out["fits.csv"]), log=[str(tmp_path / "plot.log")],
        output=SimpleNamespace(steps=out["steps.png"], ft_loss=out["ft_loss.png"], predicted=out["predicted.png"],
                               curves=out["curves.png"]))
    runpy.run_path(str(REPO / "workflow/scripts/plot_scaling.py"), init_globals={"snakemake": plot})
    for name in ("steps.png", "ft_loss.png", "predicted.png", "curves.png"):
        assert is_png(tmp_path / name), name


def few_cells() -> pd.DataFrame:
    """The default's scaling study in miniature: 3 N, checkpoints at 2 steps, one seed — an underdetermined fit."""
    scaling = scaling_table()
    return scaling[(scaling["model"] == "tiny-a") & (scaling["seed"] == 0) & scaling["step"].isin([0, 50, 100])
                   & scaling["n_params"].isin([N_GRID[0], N_GRID[2], N_GRID[-1]])]


def titles(figures) -> list[str]:
    """Each figure's first panel title on one line (the plots wrap them)."""
    return [" ".join(fig.axes[0].get_title().split()) for fig in figures]


def fits_as_the_rule_reads_them(scaling, tmp_path, n_boot) -> pd.DataFrame:
    fit_table(scaling, n_boot=n_boot, seed=0).to_csv(tmp_path / "fits.csv", index=False)
    return pd.read_csv(tmp_path / "fits.csv")  # an empty flag reads back as NaN


def test_an_underdetermined_fit_s_figures_carry_its_flag_and_no_r2(tmp_path, monkeypatch):
    from forgetbench.scaling import report

    monkeypatch.setattr(report, "save_figure", lambda fig, out: None)
    few = few_cells()
    fits = fits_as_the_rule_reads_them(few, tmp_path, n_boot=20)
    flag = fits.loc[fits["law"] == "power_law", "flag"].iloc[0]
    assert flag.startswith("underdetermined (2 distinct step; needs 3)")
    for title in titles([plot_forgetting_vs_steps(few, fits, "unused.png"),
                         plot_observed_vs_predicted(few, fits, "unused.png")]):
        assert title == f"tiny-a power law: {flag} — not a determined fit; no held-out error"
        assert "R²" not in title and "RMSE" not in title


def test_a_determined_fit_s_figures_show_r2_rmse_and_the_held_out_error(tmp_path, monkeypatch):
    from forgetbench.scaling import report

    monkeypatch.setattr(report, "save_figure", lambda fig, out: None)
    scaling = scaling_table()
    scaling = scaling[scaling["model"] == "tiny-a"]
    fits = fits_as_the_rule_reads_them(scaling, tmp_path, n_boot=5)
    assert fits["flag"].isna().all()
    steps, predicted = titles([plot_forgetting_vs_steps(scaling, fits, "unused.png"),
                               plot_observed_vs_predicted(scaling, fits, "unused.png")])
    assert steps == predicted
    assert re.fullmatch(r"tiny-a power law: R²=0\.9\d\d, RMSE=0\.00\d+; held-out MAE 0\.00\d+ \(\d%\)", steps), steps
    ft_loss = plot_forgetting_vs_ft_loss(scaling, fits, "unused.png")
    assert re.fullmatch(r"tiny-a linear law: R²=0\.9\d\d, RMSE=0\.\d+; no held-out error", titles([ft_loss])[0])
    assert [t.get_text() for t in ft_loss.axes[0].get_legend().get_texts()][-1] == "linear fit (see title)"


def test_a_fit_flagged_otherwise_shows_r2_only_after_its_flag():
    from forgetbench.scaling.report import fit_note

    row = pd.Series({"law": "power_law", "flag": "CI of beta reaches its bound", "r2": 0.9987, "rmse": 0.0123,
                     "holdout_mae": 0.004, "holdout_rel_error": 0.31})
    assert fit_note(row) == ("power law: CI of beta reaches its bound — R²=0.999, RMSE=0.0123 of a flagged fit; "
                             "held-out MAE 0.004 (31%)")


def test_a_law_that_extrapolates_worse_than_the_spread_it_predicts_is_flagged():
    from forgetbench.scaling.report import _holdout_flags

    forgetting = pd.Series([0.1, 0.2, 0.3])  # standard deviation 0.0816
    assert _holdout_flags({"holdout_mae": 0.09}, forgetting) == ["held-out error 0.09 above the observed spread 0.0816"]
    assert _holdout_flags({"holdout_mae": 0.05}, forgetting) == []
    assert _holdout_flags({"holdout_mae": float("nan")}, forgetting) == [] and _holdout_flags({}, forgetting) == []
