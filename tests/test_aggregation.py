"""The tidy table with paired bootstrap intervals, the paper-shaped Markdown/LaTeX, and the plots from the table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from forgetbench.aggregation import intervals
from forgetbench.aggregation.plots import DODGE_SHARE, loss_forgetting_plot, spread_ties, tradeoff_plot
from forgetbench.aggregation.table import build_tables, display_lr, paper_table, to_latex, to_markdown

GENERAL = ["arc_easy", "gsm8k"]
N_ARC, N_GSM, N_TEXT, N_DOMAIN = 20, 4, 12, 16
LN2 = math.log(2)


def _text_items(shift: float) -> list[tuple[float, int]]:
    """Per passage (log-likelihood, bytes): widely varying losses, the cell's loss `shift` bits per byte above."""
    return [(-(0.5 + 0.2 * i) * LN2 * (100 + 10 * i) - shift * LN2 * (100 + 10 * i), 100 + 10 * i) for i in range(N_TEXT)]


def write_eval(folder, name, model, method, lr, seed, domain, arc, gsm, text_shift, loss_shift=0.0,
               engine=("hf", "float32")):
    """A metrics file and its items file whose scores agree; `domain`, `arc`, `gsm` are per-item 0/1 lists."""
    folder.mkdir(parents=True, exist_ok=True)
    text = _text_items(text_shift)
    loss = [(-(1.0 + 0.1 * i) * 20 - loss_shift * 20, 20) for i in range(N_DOMAIN)]
    items = ([{"task": "domain", "leaf": "fb_domain", "doc_id": i, "value": v} for i, v in enumerate(domain)]
             + [{"task": "arc_easy", "leaf": "fb_arc_easy", "doc_id": i, "value": v} for i, v in enumerate(arc)]
             + [{"task": "gsm8k", "leaf": "fb_gsm8k", "doc_id": i, "value": v} for i, v in enumerate(gsm)]
             + [{"task": "general_text", "leaf": "fb_general_text", "doc_id": i, "value": list(v)} for i, v in enumerate(text)]
             + [{"task": "domain_loss", "leaf": "fb_domain_loss", "doc_id": i, "value": list(v)} for i, v in enumerate(loss)])
    ratio = lambda pairs, scale: -sum(a for a, _ in pairs) / sum(b for _, b in pairs) * scale  # noqa: E731
    metrics = {"domain": {"score": float(np.mean(domain)), "metric": "accuracy"},
               "arc_easy": {"score": float(np.mean(arc)), "metric": "acc"},
               "gsm8k": {"score": float(np.mean(gsm)), "metric": "exact_match"},
               "general_text": {"score": ratio(text, 1 / LN2), "metric": "bits_per_byte"},
               "domain_loss": {"score": ratio(loss, 1.0), "metric": "nll_per_token"}}
    backend, dtype = engine
    settings = {"backend": backend, "dtype": dtype, "vllm_version": "0.32.0+cpu" if backend == "vllm" else None}
    result = {"cell": {"model": model, "method": method, "lr": lr, "seed": seed}, "metrics": metrics,
              "families": {"general": {"settings": settings}}, "packages": {"transformers": "4.99.0"}}
    (folder / f"{name}.json").write_text(json.dumps(result))
    (folder / f"{name}.items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return folder / f"{name}.json", folder / f"{name}.items.jsonl"


ARC_BASE = [1] * 10 + [0] * 10


def flip(values, k):
    """`values` with its first k ones set to 0."""
    out, left = list(values), k
    for i, v in enumerate(out):
        if v and left:
            out[i], left = 0, left - 1
    return out


@pytest.fixture
def evaluations(tmp_path):
    domain = [1] * 8 + [0] * 8
    rows = [
        ("base", "m", "base", None, None, domain, ARC_BASE, [0, 0, 1, 0], 0.0, 0.0),
        ("sft0", "m", "sft", 2e-5, 0, [1] * 12 + [0] * 4, flip(ARC_BASE, 1), [0, 0, 1, 0], 0.05, -0.3),
        ("sft1", "m", "sft", 2e-5, 1, [1] * 12 + [0] * 4, flip(ARC_BASE, 1), [0, 0, 1, 0], 0.15, -0.3),
        ("lora0", "m", "lora", 2e-5, 0, domain, ARC_BASE, [0, 0, 1, 0], 0.01, -0.1),
        ("sfthi", "m", "sft", 2e-4, 0, [1] * 14 + [0] * 2, flip(ARC_BASE, 9), [0, 0, 0, 0], 0.80, -0.6),
    ]
    return [write_eval(tmp_path, *row) for row in rows]


def tables(evaluations, **kwargs):
    return build_tables([m for m, _ in evaluations], [i for _, i in evaluations], GENERAL, **kwargs)


def test_scores_and_deltas_against_base(evaluations):
    tidy, _ = tables(evaluations)
    assert list(tidy["method"]) == ["base", "lora", "sft", "sft", "sft"]
    sft0 = tidy[(tidy["method"] == "sft") & (tidy["seed"] == 0) & (tidy["lr"] == 2e-5)].iloc[0]
    assert sft0["arc_easy"] == pytest.approx(0.45) and sft0["general_avg"] == pytest.approx((0.45 + 0.25) / 2)
    assert sft0["delta_general"] == pytest.approx(-0.025)
    assert sft0["forgetting"] == pytest.approx(0.05)
    assert sft0["delta_domain_loss"] == pytest.approx(-0.3)
    assert (sft0["n_arc_easy"], sft0["n_gsm8k"], sft0["n_general_text"]) == (N_ARC, N_GSM, N_TEXT)
    base = tidy[tidy["method"] == "base"].iloc[0]
    assert base["forgetting"] == 0 and base["delta_general"] == 0


def test_paired_interval_of_a_constant_shift_is_the_shift(evaluations):
    """Passages' losses vary 0.5-2.7 bpb, so each cell's own interval is wide; the same shift on every passage gives
    a paired difference with no spread at all: the interval is the shift and it excludes 0."""
    tidy, _ = tables(evaluations)
    sft0 = tidy[(tidy["method"] == "sft") & (tidy["seed"] == 0) & (tidy["lr"] == 2e-5)].iloc[0]
    assert sft0["general_text_hi"] - sft0["general_text_lo"] > 0.3
    assert sft0["forgetting_lo"] == pytest.approx(0.05) and sft0["forgetting_hi"] == pytest.approx(0.05)
    assert sft0["forgetting_p"] == 0.0


def test_one_flipped_item_of_twenty_is_not_significant(evaluations):
    tidy, _ = tables(evaluations)
    sft0 = tidy[(tidy["method"] == "sft") & (tidy["seed"] == 0) & (tidy["lr"] == 2e-5)].iloc[0]
    assert sft0["delta_arc_easy"] == pytest.approx(-0.05)
    # Paired: only the flipped item moves the difference, so it lies in [-0.15, 0]; it touches 0.
    assert -0.2 < sft0["delta_arc_easy_lo"] < -0.04 and sft0["delta_arc_easy_hi"] == 0.0
    assert sft0["delta_arc_easy_p"] > 0.05


def test_seeds_are_resampled_in_the_pooled_row(evaluations):
    """Two seeds forgetting 0.05 and 0.15 bpb on every passage: the pooled difference is 0.05, 0.10 or 0.15 by which
    seeds are drawn (probabilities 1/4, 1/2, 1/4), so its 95 % interval runs from one seed to the other."""
    _, grouped = tables(evaluations)
    sft = grouped[(grouped["method"] == "sft") & (grouped["lr"] == 2e-5)].iloc[0]
    assert sft["seeds"] == 2 and sft["forgetting"] == pytest.approx(0.10)
    assert (sft["forgetting_lo"], sft["forgetting_hi"]) == (pytest.approx(0.05), pytest.approx(0.15))


def test_difference_against_sft_at_the_same_lr(evaluations):
    tidy, grouped = tables(evaluations)
    lora = tidy[tidy["method"] == "lora"].iloc[0]
    assert lora["vs_sft_forgetting"] == pytest.approx(0.01 - 0.05)  # seed 0 against sft seed 0
    assert lora["vs_sft_forgetting_lo"] == pytest.approx(-0.04) and lora["vs_sft_forgetting_hi"] == pytest.approx(-0.04)
    pooled = grouped[grouped["method"] == "lora"].iloc[0]
    assert pooled["vs_sft_forgetting"] == pytest.approx(0.01 - 0.10)
    assert pd.isna(grouped[(grouped["method"] == "sft") & (grouped["lr"] == 2e-4)].iloc[0]["vs_sft_forgetting"])


def test_bootstrap_is_seeded(evaluations):
    a, _ = tables(evaluations, seed=3)
    b, _ = tables(evaluations, seed=3)
    c, _ = tables(evaluations, seed=4)
    assert a["general_avg_lo"].tolist() == b["general_avg_lo"].tolist()
    assert a["domain_lo"].tolist() != c["domain_lo"].tolist()


def test_items_that_do_not_give_the_reported_score_are_refused(evaluations):
    metrics_path, _ = evaluations[1]
    result = json.loads(metrics_path.read_text())
    result["metrics"]["arc_easy"]["score"] = 0.5
    metrics_path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"sft0.items.jsonl: task 'arc_easy' scores 0.45 from its 20 items but 0.5 in its metrics"):
        tables(evaluations)


def test_different_item_sets_cannot_be_paired(evaluations):
    _, items_path = evaluations[3]
    lines = [line for line in items_path.read_text().splitlines() if '"doc_id": 19' not in line or "arc_easy" not in line]
    items_path.write_text("\n".join(lines) + "\n")
    metrics_path = evaluations[3][0]
    result = json.loads(metrics_path.read_text())
    result["metrics"]["arc_easy"]["score"] = 10 / 19
    metrics_path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"model m, task arc_easy: evaluations were scored on different items \(19 vs 20\)"):
        tables(evaluations)


def _delta_text(grouped, method, lr, column):
    r = grouped[(grouped["method"] == method) & (grouped["lr"] == lr)].iloc[0]
    text = f"{r[column]:.3f} [{r[column + '_lo']:.3f}, {r[column + '_hi']:.3f}]"
    return text + ("*" if r[column + "_lo"] > 0 or r[column + "_hi"] < 0 else "")


def test_paper_table_shows_intervals_item_counts_and_marks(evaluations):
    _, grouped = tables(evaluations)
    paper = paper_table(grouped, GENERAL)
    frame = paper.frame
    assert list(frame["Method"]) == ["base", "lora", "sft (2 seeds)", "sft"]
    assert list(frame["LR"]) == ["—", "2e-5", "2e-5", "2e-4"]
    assert "ARC-Easy (n=20)" in frame.columns and "GSM8K (n=4†)" in frame.columns
    assert "Forgetting (Δ bpb) (n=12)" in frame.columns
    hi = frame[frame["LR"] == "2e-4"].iloc[0]
    assert hi["Forgetting (Δ bpb) (n=12)"] == "0.800 [0.800, 0.800]*"
    assert hi["Δ general"].startswith("-0.350 [") and hi["Δ general"].endswith("]*")
    assert frame[frame["Method"] == "lora"].iloc[0]["Δ general"] == "0.000 [0.000, 0.000]"
    # the domain score's change against the base model, and against sft, beside the general ones
    assert [c for c in frame.columns if c.startswith("Δ domain")] == [
        "Δ domain (n=16)", "Δ domain loss (n=16)", "Δ domain vs sft"]
    assert hi["Δ domain (n=16)"] == _delta_text(grouped, "sft", 2e-4, "delta_domain")
    assert "per comparison, uncorrected" in paper.caption and "Evaluated with dtype float32, transformers 4.99.0." in paper.caption
    md = to_markdown(paper, "T")
    assert md.startswith("# T\n\n| Model") and "fewer than 10 items, interval unreliable" in md
    tex = to_latex(paper_table(grouped, GENERAL, latex=True), "T")
    assert r"0.800 {\scriptsize [0.800, 0.800]}$^{*}$" in tex and r"(n=4$^\dagger$)" in tex and r"95 \%" in tex


def test_holm_adjusts_and_changes_the_marks(evaluations):
    adjusted = intervals.holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06)] and math.isnan(adjusted[3])
    low, high, p = [0.1, 0.1, -0.2], [0.2, 0.2, -0.1], [0.01, 0.03, 0.04]
    assert intervals.marks(low, high, p, None) == [True, True, True]
    assert intervals.marks(low, high, p, "holm") == [True, False, False]  # adjusted 0.03, 0.06, 0.06
    _, grouped = tables(evaluations)
    assert "after Holm–Bonferroni correction" in paper_table(grouped, GENERAL, "holm").caption


def test_mixed_engines_are_named_in_the_caption(evaluations, tmp_path):
    extra = write_eval(tmp_path / "v", "dft0", "m", "dft", 2e-5, 0, [1] * 8 + [0] * 8, ARC_BASE, [0, 0, 1, 0], 0.02,
                       engine=("vllm", "bfloat16"))
    tidy, grouped = tables([*evaluations, extra])
    assert tidy[tidy["method"] == "dft"].iloc[0]["engine"] == "vllm 0.32.0+cpu"
    caption = paper_table(grouped, GENERAL).caption
    assert "Evaluated with MIXED engines or dtypes: dtype bfloat16, dtype float32, transformers 4.99.0, vllm 0.32.0+cpu." in caption


def test_training_responses_cut_by_max_seq_len_are_counted_in_the_tables(evaluations, tmp_path):
    tidy, grouped = tables(evaluations)
    assert tidy["truncated_responses"].isna().all()  # no training facts: nothing said
    assert "max_seq_len" not in paper_table(grouped, GENERAL).caption
    for (path, _), cut in zip(evaluations[1:], [0, 3, 0, 1]):  # sft seed 0 and 1, lora, sft at 2e-4
        result = json.loads(path.read_text())
        result["training"] = {"examples": 16, "truncated_responses": cut, "truncated_share": cut / 16}
        path.write_text(json.dumps(result))
    tidy, grouped = tables(evaluations)
    assert tidy.set_index(["method", "lr", "seed"])["truncated_responses"].dropna().to_dict() == {
        ("sft", 2e-5, 0): 0, ("sft", 2e-5, 1): 3, ("lora", 2e-5, 0): 0, ("sft", 2e-4, 0): 1}
    assert grouped.set_index(["method", "lr"]).loc[("sft", 2e-5), "truncated_responses"] == 3  # the worse seed
    assert paper_table(grouped, GENERAL).caption.endswith(
        " 2 row(s) trained with responses cut by max_seq_len (up to 3 per cell; column truncated_responses of "
        "tradeoff.csv).")
    for path, _ in evaluations[1:]:
        result = json.loads(path.read_text())
        result["training"]["truncated_responses"] = 0
        path.write_text(json.dumps(result))
    assert paper_table(tables(evaluations)[1], GENERAL).caption.endswith(" No training response was cut by max_seq_len.")


def test_diverged_cells_show_in_the_tables(evaluations, tmp_path):
    diverged = tmp_path / "d.json"
    diverged.write_text(json.dumps({"status": "diverged", "cell": {"model": "m", "method": "dft", "lr": 2e-5, "seed": 0},
                                    "metrics": {t: {"score": None} for t in ["domain", *GENERAL, "general_text"]}}))
    (tmp_path / "d.items.jsonl").write_text("")
    tidy, grouped = tables([*evaluations, (diverged, tmp_path / "d.items.jsonl")])
    row = tidy[tidy["method"] == "dft"].iloc[0]
    assert row["status"] == "diverged" and pd.isna(row["domain"]) and pd.isna(row["forgetting_lo"])
    frame = paper_table(grouped, GENERAL).frame
    assert frame[frame["Method"] == "dft (diverged 1/1)"].iloc[0]["Domain (n=16)"] == "—"


def test_missing_score_names_the_file_and_task(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"cell": {"model": "m", "method": "base", "lr": None, "seed": None},
                                "metrics": {"domain": {"score": 0.1}}}))
    with pytest.raises(ValueError, match=r"x.json: no score for arc_easy, gsm8k"):
        build_tables([path], [tmp_path / "x.items.jsonl"], GENERAL)


def test_missing_domain_eval_score_names_the_task(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"cell": {"model": "m", "method": "base", "lr": None, "seed": None},
                                "metrics": {"domain": {"score": 0.1}, "arc_easy": {"score": 0.5}}}))
    with pytest.raises(ValueError, match=r"x.json: no score for domain.gsm8k$"):
        build_tables([path], [tmp_path / "x.items.jsonl"], ["arc_easy"], domain_tasks=["domain.gsm8k"])


def test_learning_rates_print_in_one_notation():
    assert [display_lr(x) for x in (2e-5, 0.0002, 1.5e-3, 0.1, None)] == ["2e-5", "2e-4", "1.5e-3", "1e-1", "—"]


def test_ties_are_spread_apart():
    x = pd.Series([0.5, 0.5, 0.5, 0.9])
    shown = spread_ties(x, pd.Series([0.2, 0.2, 0.2, 0.1]))
    step = DODGE_SHARE * 0.4  # of the x range
    assert shown.tolist() == pytest.approx([0.5 - step, 0.5, 0.5 + step, 0.9])


def test_plots_are_drawn_from_the_csv_alone(evaluations, tmp_path, monkeypatch):
    from forgetbench.aggregation import plots

    csv = tmp_path / "t.csv"
    tables(evaluations)[0].to_csv(csv, index=False)
    table = pd.read_csv(csv)
    for draw in (tradeoff_plot, loss_forgetting_plot):
        out = tmp_path / f"{draw.__name__}.png"
        draw(table, str(out))
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: captured.setdefault("fig", fig))
    loss_forgetting_plot(table, "unused.png")
    ax = captured["fig"].axes[0]
    assert ax.get_ylabel() == "forgetting: Δ general-text bpb\nvs base (> 0: forgot)"
    # error bars: the 2e-4 sft cell's forgetting interval has no spread, its domain-loss one neither
    labels = [t.get_text() for t in captured["fig"].legends[0].get_texts()]
    assert labels == ["lora, LR 2e-5", "sft, LR 2e-5", "sft, LR 2e-4"]


def test_tradeoff_plot_colours_a_method_alike_in_every_panel(monkeypatch):
    """Panels with different sets of methods: each method keeps one colour, the one the shared legend gives it."""
    from matplotlib.colors import to_hex

    from forgetbench.aggregation import plots

    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: captured.setdefault("fig", fig))
    rows = [("a", "base", None, 0.1, 0.5), ("a", "lora", 1e-5, 0.2, 0.4),
            ("b", "base", None, 0.1, 0.5), ("b", "dft", 1e-5, 0.3, 0.3), ("b", "lora", 1e-5, 0.4, 0.2)]
    table = pd.DataFrame(rows, columns=["model", "method", "lr", "domain", "general_avg"])
    for column in ("domain", "general_avg"):
        table[f"{column}_lo"], table[f"{column}_hi"] = table[column] - 0.05, table[column] + 0.05
    plots.tradeoff_plot(table, "unused.png")
    fig = captured["fig"]
    legend = {text.get_text(): to_hex(np.atleast_2d(handle.get_color())[0])
              for handle, text in zip(fig.legends[0].legend_handles, fig.legends[0].get_texts())
              if text.get_text() != "base"}
    lines = {round(float(line.get_xdata()[0]), 6): to_hex(line.get_color())
             for ax in fig.axes[:2] for line in ax.lines if len(line.get_xdata()) == 1 and line.get_marker() != "*"}
    assert legend["lora, LR 1e-5"] == lines[0.2] == lines[0.4]  # lora, first in a, second in b
    assert legend["dft, LR 1e-5"] == lines[0.3] != lines[0.4]


def test_token_stats_table_names_its_columns_in_words(tmp_path):
    from forgetbench.aggregation.token_stats import to_markdown as token_markdown
    from forgetbench.aggregation.token_stats import token_stats_table

    stats = {"tokens": 10, "mean_prob": 0.6, "median_prob": 0.7, "fraction_below": {"0.05": 0.1},
             "loss_share_below": {"0.05": 0.5}, "histogram": {"edges": [0.0, 0.5, 1.0], "counts": [3, 7]}}
    (tmp_path / "s.json").write_text(json.dumps(stats))
    md = token_markdown(token_stats_table([tmp_path / "s.json"], ["m"]))
    header = md.splitlines()[2]
    assert "tokens with p < 0.05" in header and "loss share of p < 0.05" in header and "frac_p" not in md


def test_a_narrow_interval_is_printed_with_the_digits_that_show_it():
    from forgetbench.aggregation.table import _with_interval, interval_decimals

    assert interval_decimals(0.0, 0.0) == 3 and interval_decimals(-0.25, 0.25) == 3
    assert interval_decimals(0.00005, 0.00076) == 5
    assert _with_interval(0.00031, 0.00005, 0.00076, latex=False) == "0.00031 [0.00005, 0.00076]"
    assert _with_interval(0.0004, 0.0001, 0.0009, latex=False) == "0.00040 [0.00010, 0.00090]"
    assert _with_interval(0.8, 0.8, 0.8, latex=False) == "0.800 [0.800, 0.800]"
    assert _with_interval(1e-9, 1e-10, 1e-5, latex=False) == "0.000000 [0.000000, 0.000010]"


# Any general task, a domain score from lm-eval tasks (domain.eval) or none, and group tasks.


def add_task(paths, task, leaves: dict[str, list], score=None, metric="acc", **extra):
    """Add task `task` to an evaluation written by write_eval: per leaf its items' 0/1 values; its reported score
    is `score`, else the mean over all its items (lm-eval's size-weighted aggregate)."""
    metrics_path, items_path = paths
    result = json.loads(metrics_path.read_text())
    values = [v for vs in leaves.values() for v in vs]
    result["metrics"][task] = {"score": float(np.mean(values)) if score is None else score, "metric": metric, **extra}
    metrics_path.write_text(json.dumps(result))
    with items_path.open("a") as out:
        for leaf, vs in leaves.items():
            out.writelines(json.dumps({"task": task, "leaf": leaf, "doc_id": i, "value": v}) + "\n" for i, v in enumerate(vs))
    return paths


def drop_task(paths, task):
    metrics_path, items_path = paths
    result = json.loads(metrics_path.read_text())
    del result["metrics"][task]
    metrics_path.write_text(json.dumps(result))
    lines = [line for line in items_path.read_text().splitlines() if json.loads(line)["task"] != task]
    items_path.write_text("".join(line + "\n" for line in lines))
    return paths


def paired_bootstrap(seed, model, task, values: dict[str, list], n_resamples=1000):
    """[n_resamples, evaluations] mean of one single-leaf task's items per resample, the same resampled items for
    every evaluation, drawn as intervals.resampled_scores draws them (its generator, one multinomial draw)."""
    rng = intervals.stable_rng(seed, model, task)
    first = next(iter(values.values()))
    counts = rng.multinomial(len(first), np.full(len(first), 1 / len(first)), size=n_resamples)
    return {name: counts @ np.asarray(v, dtype=float) / len(v) for name, v in values.items()}


MY_BASE = [1] * 6 + [0] * 6
MY_SFT = [1] * 9 + [0] * 3  # the base's items plus 3 right
MY_DOMAIN_BASE = [1, 0] * 6
MY_DOMAIN_SFT = [1] * 10 + [0] * 2


def my_task_evaluations(folder, domain_key):
    """base and sft evaluations with general tasks arc_easy and my_task and the domain score under `domain_key`."""
    out = []
    for name, method, lr, domain, general in (("base", "base", None, MY_DOMAIN_BASE, MY_BASE),
                                              ("sft", "sft", 2e-5, MY_DOMAIN_SFT, MY_SFT)):
        paths = drop_task(drop_task(write_eval(folder, name, "m", method, lr, 0, [1] * N_DOMAIN, ARC_BASE,
                                               [0, 0, 1, 0], 0.1 if lr else 0.0), "gsm8k"), "domain")
        add_task(paths, "my_task", {"my_task": general})
        add_task(paths, domain_key, {domain_key.removeprefix("domain."): domain}, metric="exact_match")
        out.append(paths)
    return out


def test_any_general_task_and_a_domain_score_from_an_lm_eval_task(tmp_path):
    general = ["arc_easy", "my_task"]
    evaluations = my_task_evaluations(tmp_path / "eval", "domain.my_task")
    tidy, grouped = build_tables(*zip(*evaluations), general, domain_tasks=["domain.my_task"])
    sft = tidy[tidy["method"] == "sft"].iloc[0]
    assert sft["domain"] == sft["domain.my_task"] == pytest.approx(10 / 12)
    assert sft["n_domain"] == sft["n_domain.my_task"] == sft["n_my_task"] == 12
    assert sft["delta_domain"] == sft["delta_domain.my_task"] == pytest.approx(10 / 12 - 0.5)
    # Δ domain is paired: the same resampled items for base and sft
    boot = paired_bootstrap(0, "m", "domain.my_task", {"base": MY_DOMAIN_BASE, "sft": MY_DOMAIN_SFT})
    low, high = np.percentile(boot["sft"] - boot["base"], [2.5, 97.5])
    assert (sft["delta_domain_lo"], sft["delta_domain_hi"]) == (pytest.approx(low), pytest.approx(high))
    assert (sft["domain_lo"], sft["domain_hi"]) == tuple(pytest.approx(v) for v in np.percentile(boot["sft"], [2.5, 97.5]))
    # the same items under the key `domain` (a QA domain's answer accuracy) give the same numbers
    under_domain = my_task_evaluations(tmp_path / "qa", "domain")
    qa, _ = build_tables(*zip(*under_domain), general)
    qa_sft = qa[qa["method"] == "sft"].iloc[0]
    assert qa_sft["domain"] == sft["domain"] and qa_sft["delta_domain"] == sft["delta_domain"]
    assert "domain.my_task" not in qa

    paper = paper_table(grouped, general, domain_tasks=["domain.my_task"])
    assert list(paper.frame.columns[3:7]) == ["Domain (n=12)", "ARC-Easy (n=20)", "my_task (n=12)", "General avg"]
    row = paper.frame[paper.frame["Method"] == "sft"].iloc[0]
    assert row["my_task (n=12)"].startswith("0.750 [") and row["Domain (n=12)"].startswith("0.833 [")
    assert "Domain: the primary score of lm-eval task my_task." in paper.caption
    md = to_markdown(paper, "T")
    assert "| Domain (n=12)" in md and "| my_task (n=12)" in md
    tex = to_latex(paper_table(grouped, general, latex=True, domain_tasks=["domain.my_task"]), "T")
    assert r"my\_task (n=12)" in tex and r"lm-eval task my\_task." in tex


def test_two_domain_eval_tasks_average_and_resample_both(tmp_path):
    values = {"domain.a": ([1] * 5 + [0] * 5, [1] * 8 + [0] * 2), "domain.b": ([1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0])}
    evaluations = []
    for i, (name, method, lr) in enumerate((("base", "base", None), ("sft", "sft", 2e-5))):
        paths = drop_task(write_eval(tmp_path, name, "m", method, lr, 0, [1] * N_DOMAIN, ARC_BASE, [0, 0, 1, 0],
                                     0.1 * i), "domain")
        for task, per_eval in values.items():
            add_task(paths, task, {task.removeprefix("domain."): per_eval[i]})
        evaluations.append(paths)
    tidy, grouped = build_tables(*zip(*evaluations), GENERAL, domain_tasks=["domain.a", "domain.b"])
    sft = tidy[tidy["method"] == "sft"].iloc[0]
    assert sft["domain"] == pytest.approx((0.8 + 4 / 6) / 2)
    assert (sft["domain.a"], sft["domain.b"]) == (pytest.approx(0.8), pytest.approx(4 / 6))
    assert (sft["n_domain"], sft["n_domain.a"], sft["n_domain.b"]) == (16, 10, 6)
    assert sft["delta_domain"] == pytest.approx((0.8 + 4 / 6) / 2 - (0.5 + 1 / 6) / 2)
    a = paired_bootstrap(0, "m", "domain.a", {"base": values["domain.a"][0], "sft": values["domain.a"][1]})
    b = paired_bootstrap(0, "m", "domain.b", {"base": values["domain.b"][0], "sft": values["domain.b"][1]})
    mean = {k: (a[k] + b[k]) / 2 for k in a}
    assert (sft["domain_lo"], sft["domain_hi"]) == tuple(pytest.approx(v) for v in np.percentile(mean["sft"], [2.5, 97.5]))
    difference = np.percentile(mean["sft"] - mean["base"], [2.5, 97.5])
    assert (sft["delta_domain_lo"], sft["delta_domain_hi"]) == tuple(pytest.approx(v) for v in difference)
    assert (sft["domain.b_lo"], sft["domain.b_hi"]) == tuple(pytest.approx(v) for v in np.percentile(b["sft"], [2.5, 97.5]))
    paper = paper_table(grouped, GENERAL, domain_tasks=["domain.a", "domain.b"])
    assert list(paper.frame.columns[3:6]) == ["Domain avg", "Domain: a (n=10)", "Domain: b (n=6†)"]
    assert "Domain avg: the mean of the primary scores of lm-eval tasks a, b" in paper.caption


def test_without_a_domain_score_the_domain_loss_stands_in(evaluations, tmp_path, monkeypatch):
    from forgetbench.aggregation import plots

    for paths in evaluations:
        drop_task(paths, "domain")
    tidy, grouped = tables(evaluations, domain_tasks=[])
    assert not any(c == "domain" or c.startswith(("domain_l", "domain_h", "delta_domain_", "n_domain"))
                   and "loss" not in c for c in tidy.columns)
    assert "delta_domain" not in grouped and "vs_sft_domain" not in grouped
    sft0 = tidy[(tidy["method"] == "sft") & (tidy["seed"] == 0) & (tidy["lr"] == 2e-5)].iloc[0]
    assert sft0["delta_domain_loss"] == pytest.approx(-0.3) and sft0["forgetting"] == pytest.approx(0.05)
    paper = paper_table(grouped, GENERAL, domain_tasks=[])
    assert list(paper.frame.columns[3:7]) == ["ARC-Easy (n=20)", "GSM8K (n=4†)", "General avg", "Domain loss (n=16)"]
    assert "the domain is measured by its loss only" in paper.caption
    assert "Domain (" not in to_markdown(paper, "T")
    assert "Domain (" not in to_latex(paper_table(grouped, GENERAL, latex=True, domain_tasks=[]), "T")

    csv = tmp_path / "t.csv"
    tidy.to_csv(csv, index=False)
    table = pd.read_csv(csv)
    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: captured.setdefault("fig", fig))
    tradeoff_plot(table, "unused.png")
    ax = captured["fig"].axes[0]
    assert ax.get_xlabel() == "domain loss (nats/token; lower is better)"
    points = [line for line in ax.lines if line.get_marker() not in ("None", "|", "_")]  # not the caps nor the front
    drawn = sorted(float(x) for line in points for x in line.get_xdata())
    assert sorted(round(v, 2) for v in table["domain_loss"]) == [1.15, 1.45, 1.45, 1.65, 1.75]
    half_dodge = DODGE_SHARE / 2 * (ax.get_xlim()[1] - ax.get_xlim()[0])  # the tied pair, each moved < this
    assert drawn == pytest.approx(sorted(table["domain_loss"]), abs=half_dodge) and drawn[1] < drawn[2]
    tradeoff_plot(table, str(tmp_path / "t.png"))  # and it draws
    monkeypatch.undo()
    tradeoff_plot(table, str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").stat().st_size > 10_000


@pytest.mark.parametrize("weighting, delta", [("size", 4 / 12), ("unweighted", 0.5), ("recorded", 0.75)])
def test_a_group_of_two_leaves_is_resampled_as_lm_eval_aggregates_it(tmp_path, weighting, delta):
    """Leaves of 8 and 4 items; sft answers every item of the small leaf right where base answers none, and the
    large leaf alike: on every resample the group's difference is the small leaf's weight share, exactly."""
    leaf_a = [1, 1, 1, 0, 0, 0, 0, 0]
    weights = {"size": None, "unweighted": {"grp_a": 1.0, "grp_b": 1.0}, "recorded": {"grp_a": 1.0, "grp_b": 3.0}}[weighting]
    evaluations = []
    for name, method, lr, leaf_b in (("base", "base", None, [0] * 4), ("sft", "sft", 2e-5, [1] * 4)):
        leaves = {"grp_a": leaf_a, "grp_b": leaf_b}
        if weights is None:
            score = float(np.mean(leaf_a + leaf_b))
        else:
            score = sum(w * np.mean(leaves[leaf]) for leaf, w in weights.items()) / sum(weights.values())
        extra = {"leaf_weights": weights} if weighting == "recorded" else {}
        paths = write_eval(tmp_path, name, "m", method, lr, 0, [1] * N_DOMAIN, ARC_BASE, [0, 0, 1, 0], 0.0)
        evaluations.append(add_task(paths, "grp", leaves, score=score, **extra))
    general = ["arc_easy", "grp"]
    metrics = {m: json.loads(p.read_text())["metrics"]["grp"]["score"] for m, (p, _) in zip(("base", "sft"), evaluations)}
    tidy, grouped = build_tables(*zip(*evaluations), general)
    by_method = tidy.set_index("method")
    assert by_method.loc["base", "grp"] == metrics["base"] and by_method.loc["sft", "grp"] == metrics["sft"]
    assert by_method.loc["sft", "n_grp"] == 12
    sft = by_method.loc["sft"]
    assert sft["delta_grp"] == pytest.approx(delta)
    assert (sft["delta_grp_lo"], sft["delta_grp_hi"]) == (pytest.approx(delta), pytest.approx(delta))
    assert sft["grp_lo"] < sft["grp"] < sft["grp_hi"]
    assert "grp (n=12)" in paper_table(grouped, general).frame.columns


def test_pareto_front_of_a_loss_axis_minimises_it():
    import matplotlib.pyplot as plt

    from forgetbench.aggregation.plots import draw_pareto_front

    df = pd.DataFrame({"domain_loss": [1.0, 1.2, 0.8, 0.9], "general_avg": [0.5, 0.6, 0.3, 0.2]})
    fig, ax = plt.subplots()
    front = draw_pareto_front(ax, df, "domain_loss", "general_avg", lower_x_better=True)
    plt.close(fig)
    assert front["domain_loss"].tolist() == [0.8, 1.0, 1.2]  # 0.9 is beaten by 0.8 on both


def two_panels() -> pd.DataFrame:
    """Panel a: lora and dft at the very same point (intervals ±0.05 on both axes); panel b: the two far apart.
    Both views' columns, so either plot draws it."""
    rows = [("a", "base", None, 0.1, 0.5), ("a", "lora", 1e-5, 0.3, 0.4), ("a", "dft", 1e-5, 0.3, 0.4),
            ("b", "base", None, 0.1, 0.5), ("b", "lora", 1e-5, 0.2, 0.4), ("b", "dft", 1e-5, 0.6, 0.1)]
    table = pd.DataFrame(rows, columns=["model", "method", "lr", "domain", "general_avg"])
    table["delta_domain_loss"], table["forgetting"] = table["domain"], table["general_avg"]
    for column in ("domain", "general_avg", "delta_domain_loss", "forgetting"):
        table[f"{column}_lo"], table[f"{column}_hi"] = table[column] - 0.05, table[column] + 0.05
    return table


def markers_x(ax) -> list[float]:
    """x of the cells' markers (not the base star, the caps or the front's line)."""
    return sorted(float(x) for line in ax.lines if line.get_marker() not in ("None", "|", "_", "*")
                  for x in line.get_xdata())


@pytest.mark.parametrize("draw, span", [(tradeoff_plot, 0.3), (loss_forgetting_plot, 0.1)])
def test_coinciding_points_are_noted_and_dodged_by_the_documented_offset(draw, span, monkeypatch):
    from forgetbench.aggregation import plots

    monkeypatch.setattr(plots, "save_figure", lambda fig, out: None)
    fig = draw(two_panels(), "unused.png")
    same, apart = fig.axes[:2]
    assert [t.get_text() for t in same.texts] == ["points indistinguishable within their 95 % intervals"]
    assert [t.get_text() for t in apart.texts] == []
    left, right = markers_x(same)
    # the panel's x range, intervals included, is 0.05..0.35 with the base star, 0.25..0.35 without: the two
    # markers end 2.5 % of it apart, centred on their true x
    assert right - left == pytest.approx(DODGE_SHARE * span) and DODGE_SHARE == 0.025
    assert (left + right) / 2 == pytest.approx(0.3)
    assert markers_x(apart) == pytest.approx([0.2, 0.6])  # nothing to dodge
    # the horizontal interval bars stay at the cells' true x: both span 0.25..0.35
    from matplotlib.collections import LineCollection

    spans = [tuple(np.round(seg[:, 0], 6)) for c in same.collections if isinstance(c, LineCollection)
             for seg in c.get_segments() if seg[0, 1] == seg[1, 1]]
    assert spans.count((0.25, 0.35)) == 2


def test_indistinguishable_asks_every_pair_to_overlap_on_both_axes():
    from forgetbench.aggregation.plots import indistinguishable

    frame = pd.DataFrame({"x": [0.5, 1.4, 2.4], "x_lo": [0.0, 0.9, 1.9], "x_hi": [1.0, 2.0, 3.0],
                          "y": [0.0] * 3, "y_lo": [-1.0] * 3, "y_hi": [1.0] * 3})
    assert not indistinguishable(frame, "x", "y")  # a chain: 1 meets 2, 2 meets 3, 1 not 3
    assert indistinguishable(frame.iloc[:2], "x", "y")
    assert not indistinguishable(frame.iloc[:2].assign(y_hi=[0.0, 1.0], y=[-0.5, 0.5], y_lo=[-1.0, 0.2]), "x", "y")
    assert not indistinguishable(frame.iloc[:1], "x", "y")  # one point coincides with nothing


def test_the_html_view_is_the_markdown_views_table(evaluations):
    """tradeoff.html, the table's view in `snakemake --report`: the same header, rows and caption, escaped, each
    interval under its score (the report test reads it in a browser)."""
    from html.parser import HTMLParser

    from forgetbench.aggregation.table import to_html

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.inside = [], False

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")
                self.inside = True
            elif tag == "br":  # the interval's line break reads as the Markdown view's space
                self.rows[-1][-1] += " "

        def handle_endtag(self, tag):
            self.inside = self.inside and tag not in ("td", "th")

        def handle_data(self, data):
            if self.inside:
                self.rows[-1][-1] += data

    _, grouped = tables(evaluations)
    paper = paper_table(grouped, GENERAL)
    page = to_html(paper, "Trade-off <smoke & co>")
    assert "<title>Trade-off &lt;smoke &amp; co&gt;</title>" in page and "<smoke" not in page
    parser = Cells()
    parser.feed(page)
    header, *rows = parser.rows
    assert header == list(paper.frame.columns)
    assert rows == [[str(v) for v in row] for row in paper.frame.itertuples(index=False)]
    assert '0.800<br><span class="ci">[0.800, 0.800]*</span>' in page
    import html

    assert html.escape(paper.caption) in page
