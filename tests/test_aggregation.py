"""The tidy table, its deltas against the base model, the paper-shaped Markdown/LaTeX, and the plot from the table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from forgetbench.aggregation.plots import tradeoff_plot
from forgetbench.aggregation.table import build_table, paper_table, to_latex, to_markdown

GENERAL = ["arc_easy", "gsm8k"]


def write_metrics(path, model, method, lr, seed, domain, arc, gsm, bpb):
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {"domain": {"score": domain}, "arc_easy": {"score": arc}, "gsm8k": {"score": gsm},
               "general_text": {"score": bpb}}
    path.write_text(json.dumps({"cell": {"model": model, "method": method, "lr": lr, "seed": seed},
                                "metrics": metrics}))
    return path


@pytest.fixture
def metric_files(tmp_path):
    rows = [
        ("m", "base", None, None, 0.10, 0.60, 0.20, 1.00),
        ("m", "sft", 1e-5, 0, 0.50, 0.50, 0.10, 1.20),
        ("m", "sft", 1e-5, 1, 0.70, 0.40, 0.10, 1.40),
        ("m", "lora", 1e-5, 0, 0.30, 0.60, 0.20, 1.05),
    ]
    return [write_metrics(tmp_path / f"{i}.json", *row) for i, row in enumerate(rows)]


def test_table_has_general_average_and_deltas_against_base(metric_files):
    table = build_table(metric_files, GENERAL)
    assert list(table["method"]) == ["base", "lora", "sft", "sft"]
    sft0 = table[(table["method"] == "sft") & (table["seed"] == 0)].iloc[0]
    assert sft0["general_avg"] == pytest.approx(0.30)
    assert sft0["delta_general"] == pytest.approx(0.30 - 0.40)
    assert sft0["delta_domain"] == pytest.approx(0.40)
    assert sft0["forgetting"] == pytest.approx(0.20)
    base = table[table["method"] == "base"].iloc[0]
    assert base["forgetting"] == 0 and base["delta_general"] == 0


def test_paper_table_averages_seeds_with_std_and_puts_base_first(metric_files):
    paper = paper_table(build_table(metric_files, GENERAL), GENERAL)
    assert list(paper["Method"]) == ["base", "lora", "sft"]
    sft = paper[paper["Method"] == "sft"].iloc[0]
    assert sft["Domain"] == "0.600 ± 0.141"
    assert sft["LR"] == "1e-05"
    assert paper.iloc[0]["LR"] == "—"
    md = to_markdown(paper, "T")
    assert "| Model   | Method   | LR    | Domain" in md
    assert "0.600 ± 0.141" in md
    tex = to_latex(paper, "cap")
    assert r"0.600 $\pm$ 0.141" in tex and r"\caption{cap}" in tex


def test_missing_score_names_the_file_and_task(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"cell": {"model": "m", "method": "base", "lr": None, "seed": None},
                                "metrics": {"domain": {"score": 0.1}}}))
    with pytest.raises(ValueError, match=r"x.json: no score for arc_easy, gsm8k"):
        build_table([path], GENERAL)


def test_plot_is_drawn_from_the_csv_alone(metric_files, tmp_path):
    csv = tmp_path / "t.csv"
    build_table(metric_files, GENERAL).to_csv(csv, index=False)
    out = tmp_path / "fig.png"
    tradeoff_plot(pd.read_csv(csv), str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_diverged_cells_show_in_the_tables(metric_files, tmp_path):
    diverged = tmp_path / "d.json"
    diverged.write_text(json.dumps({"status": "diverged", "cell": {"model": "m", "method": "dft", "lr": 1e-5, "seed": 0},
                                    "metrics": {t: {"score": None} for t in ["domain", *GENERAL, "general_text"]}}))
    table = build_table([*metric_files, diverged], GENERAL)
    row = table[table["method"] == "dft"].iloc[0]
    assert row["status"] == "diverged" and pd.isna(row["domain"]) and pd.isna(row["general_avg"])
    paper = paper_table(table, GENERAL)
    assert "dft (diverged 1/1)" in list(paper["Method"])
    assert paper[paper["Method"] == "dft (diverged 1/1)"].iloc[0]["Domain"] == "—"


def test_tradeoff_plot_colours_a_method_alike_in_every_panel(monkeypatch):
    """Panels with different sets of methods: each method keeps one colour, the one the shared legend gives it."""
    from matplotlib.colors import to_hex

    from forgetbench.aggregation import plots

    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: captured.setdefault("fig", fig))
    rows = [("a", "base", None, 0.1, 0.5), ("a", "lora", 1e-5, 0.2, 0.4),
            ("b", "base", None, 0.1, 0.5), ("b", "dft", 1e-5, 0.3, 0.3), ("b", "lora", 1e-5, 0.4, 0.2)]
    table = pd.DataFrame(rows, columns=["model", "method", "lr", "domain", "general_avg"])
    plots.tradeoff_plot(table, "unused.png")
    fig = captured["fig"]

    def colour_at(ax, x):
        points = ax.collections[0]
        index = [round(float(px), 6) for px, _ in points.get_offsets()].index(x)
        return to_hex(points.get_facecolors()[index])

    panel_a, panel_b = fig.axes[:2]
    assert colour_at(panel_a, 0.2) == colour_at(panel_b, 0.4)  # lora, first in a, second in b
    assert colour_at(panel_b, 0.3) != colour_at(panel_b, 0.4)
    legend = {text.get_text(): to_hex(handle.get_facecolor()[0] if hasattr(handle, "get_facecolor") else handle.get_color())
              for handle, text in zip(fig.legends[0].legend_handles, fig.legends[0].get_texts())
              if text.get_text() in ("dft", "lora")}
    assert legend == {"lora": colour_at(panel_b, 0.4), "dft": colour_at(panel_b, 0.3)}
