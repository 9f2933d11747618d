"""The paper-comparison table (forgetbench.aggregation.paper_comparison): published numbers beside ours, built on a
grouped trade-off table in the format the aggregate step writes (tests/fixtures/paper_comparison, no training),
with inside, outside, not-run and other-domain cases, and the published files of configs/ checked."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from conftest import REPO
from forgetbench.aggregation.paper_comparison import build, load_published
from forgetbench.errors import ConfigError

FIXTURES = REPO / "tests" / "fixtures" / "paper_comparison"


@pytest.fixture(scope="module")
def comparison():
    return build(FIXTURES / "tradeoff_grouped.csv", FIXTURES / "published.yaml", "calc", ["ifeval", "gsm8k"], "fixture")


def row(table, method, metric, lr=None):
    match = table[(table["method"] == method) & (table["metric"] == metric)]
    if lr is not None:
        match = match[[math.isclose(v, lr) for v in match["lr"]]]
    assert len(match) == 1
    return match.iloc[0]


def test_each_published_value_gets_ours_its_interval_items_and_status(comparison):
    table, _ = comparison
    assert len(table) == 7  # the eighth value is another domain's
    inside = row(table, "sft", "domain", 1e-6)
    assert (inside["ours"], inside["ours_lo"], inside["ours_hi"], inside["n_items"]) == (0.5, 0.375, 0.625, 16)
    assert inside["difference"] == pytest.approx(0.05) and inside["status"] == "inside"
    outside = row(table, "sft", "general_avg", 1e-6)
    # the general average: the items of both its tasks
    assert outside["n_items"] == 60 and outside["difference"] == pytest.approx(-0.15)
    assert outside["status"] == "outside"
    # a paper in percent: ours scaled by 100 before the comparison
    percent = row(table, "talr", "gsm8k", 1e-6)
    assert (percent["ours"], percent["ours_lo"], percent["ours_hi"]) == pytest.approx((70.0, 60.0, 80.0))
    assert percent["difference"] == pytest.approx(8.0) and percent["status"] == "inside" and percent["n_items"] == 40
    forgetting = row(table, "talr", "forgetting", 1e-6)
    assert forgetting["n_items"] == 30 and forgetting["status"] == "inside"  # counted on the general text
    base = row(table, "base", "ifeval")
    assert (base["difference"], base["status"], base["n_items"]) == (0.0, "inside", 20)
    # a cell the sweep did not produce, and one it produced without a score (a diverged run)
    for method, lr in (("lora", 1e-6), ("sft", 5e-6)):
        missing = row(table, method, "domain", lr)
        assert missing["status"] == "not run" and math.isnan(missing["ours"]) and math.isnan(missing["difference"])


def test_the_markdown_says_what_differs_and_shows_every_row(comparison):
    _, markdown = comparison
    lines = markdown.splitlines()
    assert lines[0] == "# Published numbers beside ours (fixture)"
    assert "7 published value(s): 4 inside, 1 outside, 2 not run." in markdown
    assert "- Published: A fixture paper (Nobody et al., 2099) (arXiv 9999.00001)" in markdown
    assert "- 1 published value(s) of other domains belong to the paper's other configs." in markdown
    assert "- Differs from the paper: greedy decoding instead of the paper's sampling" in markdown
    assert "- Ours: engine vllm 0.11.0." in markdown and "- Ours: dtype bfloat16." in markdown
    assert "- Ours: 1–2 seed(s) per cell." in markdown
    assert "items per metric domain 16, forgetting 30, general_avg 60, gsm8k 40, ifeval 20" in markdown
    assert "| Table 1 | domain | tiny | sft | 1e-06 | 0.450 | 0.500 [0.375, 0.625] | 16 | +0.050 | inside |" in lines
    assert "| Table 1 | general_avg | tiny | sft | 1e-06 | 0.700 | 0.550 [0.470, 0.630] | 60 | -0.150 | outside |" in lines
    assert "| Table 1 | gsm8k | tiny | talr | 1e-06 | 62.000 | 70.000 [60.000, 80.000] | 40 | +8.000 | inside |" in lines
    assert "| Table 1 | ifeval | tiny | base | – | 0.500 | 0.500 [0.400, 0.600] | 20 | +0.000 | inside |" in lines
    assert "| Table 2 | domain | tiny | lora | 1e-06 | 0.300 | not run | – | – | not run |" in lines


def test_an_empty_published_file_gives_a_table_that_says_so(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("paper: P\narxiv: '1'\nvalues: []\n")
    table, markdown = build(FIXTURES / "tradeoff_grouped.csv", path, "calc", ["ifeval", "gsm8k"], "x")
    assert len(table) == 0 and "0 published value(s): 0 inside, 0 outside, 0 not run." in markdown
    assert "No published value is recorded yet: the file says why." in markdown


@pytest.mark.parametrize("text, message", [
    ("paper: P\narxiv: '1'\n", "`values` must be a list"),
    ("paper: P\narxiv: '1'\nvalues: [{where: T1, metric: domain, model: m, method: sft, lr: 1.0e-6, domain: d, value: 1}]\n",
     "values[0]: missing read_from"),
    ("paper: P\narxiv: '1'\nvalues: [{where: T1, read_from: x, metric: domain, model: m, method: sft, domain: d, value: 1}]\n",
     "method sft needs its learning rate `lr`"),
    ("paper: P\narxiv: '1'\nvalues: [{where: T1, read_from: x, metric: domain, model: m, method: base, domain: d, value: high}]\n",
     "value 'high' is not a number"),
    ("paper: P\narxiv: '1'\nvalue: []\n", "unknown keys value"),
])
def test_a_malformed_published_file_is_refused_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as error:
        load_published(path)
    assert message in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.published.yaml")), ids=lambda p: p.name)
def test_the_published_files_of_configs_load_and_say_where_each_number_was_read(path):
    published = load_published(path)
    assert published.paper and published.arxiv and published.setup_differences
    for value in published.values:
        assert value["read_from"].strip() and value["where"].strip()


def test_the_rule_script_writes_both_tables(tmp_path, monkeypatch):
    # the rule's script, run as Snakemake runs it: a `snakemake` object with input, output, params, log, config
    class Namespace(dict):
        __getattr__ = dict.__getitem__

    out = tmp_path / "tables"
    snake = Namespace(input=Namespace(grouped=str(FIXTURES / "tradeoff_grouped.csv"),
                                      published=str(FIXTURES / "published.yaml")),
                      output=Namespace(csv=str(out / "paper_comparison.csv"), md=str(out / "paper_comparison.md")),
                      params=Namespace(domain="calc", general=["ifeval", "gsm8k"]), log=[str(tmp_path / "log")],
                      config={"experiment": "fixture"})
    code = (REPO / "workflow" / "scripts" / "paper_comparison.py").read_text()
    exec(compile(code, "paper_comparison.py", "exec"), {"snakemake": snake, "__name__": "__main__"})
    table = pd.read_csv(out / "paper_comparison.csv")
    assert list(table["status"]) == ["inside", "outside", "inside", "inside", "inside", "not run", "not run"]
    assert (out / "paper_comparison.md").read_text().startswith("# Published numbers beside ours (fixture)")
