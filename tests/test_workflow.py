"""The workflow as a whole: the DAG of the default and of a paper-scale config, lint, and an end-to-end smoke
run of every rule on the tiny model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO


def snakemake(*args, cwd=REPO, timeout=1800, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def test_dry_run_of_the_default_shows_the_whole_dag(tmp_path):
    # in an empty working directory: results of a default run in the checkout must not change the count
    result = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml"),
                       "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    # SmolLM2: 2 LRs × (7 trained methods + wise-0.5 and lines from the sft run); Gemma: 2 LRs × (sft, lora);
    # each base model is evaluated once and scores the training data once.
    # The scaling study: 2 LoRA ranks + full fine-tuning on one model, 3 checkpoints each, plus the base as step 0.
    # Each of the 24 evaluated models runs one evaluation job (the family `all`: on a CPU one start-up per
    # model), written to its metrics file by merge_evaluations.
    # base_checked: a model's training waits for its base evaluation and its scores of the training data.
    assert counts == {"aggregate": 1, "aggregate_scaling": 1, "aggregate_token_stats": 1, "all": 1,
                      "base_checked": 2, "combine_posthoc": 4, "evaluate": 24, "evaluate_base_checkpoint": 1,
                      "evaluate_checkpoint": 9, "merge_evaluations": 24, "plot_scaling": 1, "plot_token_probs": 1,
                      "plot_tradeoff": 1, "prepare_domain": 1, "prepare_model": 2, "score_base": 2, "train": 18,
                      "train_scaling": 3, "total": 97}
    trains = [block for block in (result.stdout + result.stderr).split("\nrule ")[1:] if block.startswith("train")]
    assert len(trains) == 21 and all(re.search(r"reason: .*Input files updated by another job: results/default/"
                                               + re.escape(b.split("model=")[1].split(",")[0]) + r"/base/checked.json", b)
                                     for b in trains)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def paper_config(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiment"] = "paper"
    config["models"] = {name: {"source": "hub", "id": hub_id} for name, hub_id in
                        [("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct"), ("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
                         ("gemma3-4b", "google/gemma-3-4b-it")]}
    config["learning_rates"] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5]
    config["seeds"] = [0, 1, 2]
    config["scaling"]["models"] = ["qwen2.5-3b"]
    del config["evaluation"]["families"]  # a cluster runs one job per task
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def paper_hub_cache(tmp_path) -> dict:
    """The environment of a login node that has fetched the paper models' config.json (what the offline checks
    and the memory check read); gemma-3-4b stands in with a Qwen config, the dry run only counts its jobs."""
    from test_memory import hub_cache

    cache = hub_cache(tmp_path / "hub", {"Qwen/Qwen2.5-3B-Instruct": "qwen2.5-3b-instruct",
                                         "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b-instruct",
                                         "google/gemma-3-4b-it": "qwen2.5-3b-instruct"})
    return {"HF_HUB_CACHE": str(cache)}


def test_dry_run_of_a_paper_scale_config(tmp_path):
    path = paper_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    result = snakemake("-n", "--configfile", str(path), env=paper_hub_cache(tmp_path))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    cells = 3 * 5 * 3  # models × LRs × seeds
    assert counts["train"] == cells * 7
    assert counts["combine_posthoc"] == cells * 2
    tasks = len(config["evaluation"]["general"]) + 3  # + domain, domain loss and the general text
    assert counts["merge_evaluations"] == cells * 9 + 3
    assert counts["evaluate"] == (cells * 9 + 3) * tasks
    assert counts["prepare_model"] == 3
    assert counts["train_scaling"] == 3 and counts["evaluate_checkpoint"] == 3 * 3


def test_gpu_requests_are_sized_per_model(tmp_path):
    """models.<name>.gpus sizes the `gpu` resource of that model's training and evaluation jobs only."""
    path = paper_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["models"]["qwen2.5-7b"]["gpus"] = 2
    config["resources"]["gpu"] = 1
    config["resources"]["gpu_mem_gb"] = 200  # fp32 full fine-tunes of a 7B on 1-2 GPUs: the memory check's 80 GB would refuse
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), env=paper_hub_cache(tmp_path))
    assert result.returncode == 0, result.stderr
    gpus = {}
    for block in (result.stdout + result.stderr).split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        model = re.search(r"wildcards: .*?model=([^,\s]+)", block)
        gpu = re.search(r"resources: .*?\bgpu=(\d+)", block)
        if model and gpu:
            gpus.setdefault((rule, model.group(1)), set()).add(int(gpu.group(1)))
    assert gpus[("train", "qwen2.5-7b")] == {2} and gpus[("evaluate", "qwen2.5-7b")] == {2}
    assert gpus[("train", "qwen2.5-3b")] == {1} and gpus[("evaluate", "gemma3-4b")] == {1}


@pytest.mark.parametrize(
    "backend, gpu, python, message",
    [
        ("vllm", 0, "/nonexistent/bin/python",
         "vllm.yaml: evaluation.backend: vLLM evaluates models smollm2-135m, gemma3-270m, but there is no vLLM "
         "environment (/nonexistent/bin/python not found): run `make install-vllm`"),
        # `auto` follows the jobs' GPUs, not the machine that parses the config
        ("auto", 1, "/nonexistent/bin/python", "vLLM evaluates models smollm2-135m, gemma3-270m, but there is no vLLM"),
        ("vllm", 0, sys.executable, f"but {sys.executable} has no vllm package: run `make install-vllm`"),
    ],
)
def test_vllm_without_its_environment_fails_when_the_config_is_parsed(tmp_path, backend, gpu, python, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["evaluation"]["backend"], config["resources"]["gpu"] = backend, gpu
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("-n", "--configfile", str(path), env={"FORGETBENCH_VLLM_PYTHON": python})
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Job stats" not in result.stdout + result.stderr


def test_use_conda_skips_the_vllm_environment_check(tmp_path):
    """Under --use-conda Snakemake builds envs/vllm.yaml itself: parsing passes the vLLM check and goes on to
    conda (which this machine lacks)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["evaluation"]["backend"] = "vllm"
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("-n", "--use-conda", "--configfile", str(path), env={"FORGETBENCH_VLLM_PYTHON": "/nonexistent/bin/python"})
    output = result.stdout + result.stderr
    assert "Building DAG of jobs" in output and "no vLLM environment" not in output


def test_auto_on_cpu_jobs_needs_no_vllm_environment(tmp_path):
    result = snakemake("-n", "--configfile", str(REPO / "config.yaml"), "--directory", str(tmp_path),
                       "--snakefile", str(REPO / "Snakefile"), env={"FORGETBENCH_VLLM_PYTHON": "/nonexistent/bin/python"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_bad_config_fails_before_any_job_with_one_line(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["methods"]["lroa"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path))
    assert result.returncode != 0
    assert "bad.yaml: methods: unknown method 'lroa' (did you mean 'lora'?)" in result.stdout + result.stderr


def smoke_config(tmp_path, tiny_model_dir):
    config = {
        "experiment": "smoke",
        "models": {
            "tiny-chat": {"source": "local", "path": str(tiny_model_dir)},
            "tiny-plain": {"source": "local", "path": str(tiny_model_dir), "chat_template": "none",
                           "methods": ["sft", "lora"]},
        },
        "domain": {"name": "medcalc-synth", "source": "medcalc_synth", "format": "label", "n_train": 16,
                   "n_test": 4, "seed": 0},
        "methods": {"sft": {}, "lora": {"r": 4, "alpha": 8}, "wise": {"alphas": [0.5]}, "lines": {}},
        "learning_rates": [1e-3],
        "seeds": [0],
        "training": {"max_steps": 2, "batch_size": 2, "max_seq_len": 256, "logging_steps": 1},
        "evaluation": {
            "batch_size": 4,
            "domain": {"limit": 4, "max_gen_toks": 8},
            "general": {"arc_easy": {"limit": 3}, "hellaswag": {"limit": 3}, "piqa": {"limit": 3},
                        "gsm8k": {"limit": 2, "max_gen_toks": 16}, "humaneval": {"limit": 2, "max_gen_toks": 16}},
            "forgetting": {"limit": 2},
            "families": {"general": ["arc_easy", "hellaswag", "piqa", "gsm8k", "humaneval", "general_text"],
                         "domain": ["domain", "domain_loss"]},
        },
        "scaling": {"lora_ranks": [2, 4], "full": True, "lr": 1e-3, "steps": [1, 2], "n_boot": 20,
                    "models": ["tiny-chat"]},
        "resources": {"train_threads": 1, "eval_threads": 1},
    }
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_model_dir):
    """The smoke experiment run once; the tests below read it, then rerun parts of it."""
    tmp_path = tmp_path_factory.mktemp("smoke")
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = smoke_config(tmp_path, tiny_model_dir)
    result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
                       "--directory", str(workdir))
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, config


def in_smoke(smoke_run, *args, config=None):
    workdir, default_config = smoke_run
    return snakemake(*args, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config or default_config),
                     "--directory", str(workdir))


def planned_jobs(result) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run plans."""
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?:local)?(?:rule|checkpoint) ", "\n" + result.stdout + result.stderr)[1:]:
        rule = block.split(":", 1)[0]
        found = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        wildcards = dict(kv.split("=", 1) for kv in found.group(1).split(", ")) if found else {}
        jobs.append((rule, wildcards))
    return jobs


@pytest.mark.slow
def test_smoke_run_goes_through_every_rule(smoke_run):
    workdir, config = smoke_run
    results = workdir / "results" / "smoke"

    table = pd.read_csv(results / "tables" / "tradeoff.csv")
    assert sorted(zip(table["model"], table["method"])) == sorted(
        [(m, k) for m in ("tiny-chat", "tiny-plain") for k in ("base", "lora", "sft")]
        + [("tiny-chat", "wise-0.5"), ("tiny-chat", "lines")])
    for column in ["domain", "arc_easy", "hellaswag", "piqa", "gsm8k", "humaneval", "general_avg"]:
        assert table[column].between(0, 1).all(), column
    assert (table["general_text"] > 0).all()
    assert (table.loc[table["method"] == "base", "forgetting"] == 0).all()
    assert pd.read_parquet(results / "tables" / "tradeoff.parquet").shape == table.shape
    # every score with its paired bootstrap interval and item count; the base row's differences are exactly 0
    assert (table["arc_easy_lo"] <= table["arc_easy"]).all() and (table["arc_easy"] <= table["arc_easy_hi"]).all()
    assert (table["n_arc_easy"] == 3).all() and (table["n_domain_loss"] == 4).all() and (table["n_general_text"] == 2).all()
    cells = table[table["method"] != "base"]
    assert (cells["forgetting_lo"] <= cells["forgetting"]).all() and (cells["forgetting"] <= cells["forgetting_hi"]).all()
    assert (table["domain_loss"] > 0).all() and cells["delta_domain_loss"].notna().all()
    assert set(table["backend"]) == {"hf"} and set(table["dtype"]) == {"float32"}
    grouped = pd.read_csv(results / "tables" / "tradeoff_grouped.csv")
    assert len(grouped) == len(table) and grouped["vs_sft_forgetting"].notna().sum() == 4  # lora x 2 models, wise, lines

    md = (results / "tables" / "tradeoff.md").read_text()
    assert "| tiny-chat | base" in md.replace("  ", " ") or re.search(r"\| tiny-chat\s+\| base\s+\|", md)
    assert "ARC-Easy (n=3†)" in md and "Evaluated with dtype float32, transformers" in md
    assert r"\begin{tabular}" in (results / "tables" / "tradeoff.tex").read_text()
    for figure in ("tradeoff", "loss_vs_forgetting"):
        assert (results / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"

    wise = json.loads((results / "tiny-chat" / "wise-0.5" / "lr~0.001" / "seed~0" / "run.json").read_text())
    assert wise["config"]["variant_settings"] == {"alpha": 0.5} and wise["status"] == "finished"
    cell = results / "tiny-chat" / "lora" / "lr~0.001" / "seed~0"
    assert not (cell / "model").exists()  # temp(): removed once evaluated (training.keep_weights keeps it)
    assert not (cell / "resume").exists()
    assert len((cell / "train_log.jsonl").read_text().splitlines()) == 2
    metrics = json.loads((cell / "eval" / "metrics.json").read_text())
    assert metrics["cell"] == {"model": "tiny-chat", "method": "lora", "lr": 0.001, "seed": 0}
    assert metrics["git_commit"] and metrics["packages"]["lm_eval"] == "0.4.13"
    assert sorted(metrics["families"]) == ["domain", "general"]
    assert sorted(metrics["metrics"]) == ["arc_easy", "domain", "domain_loss", "general_text", "gsm8k", "hellaswag",
                                          "humaneval", "piqa"]
    items = [json.loads(line) for line in (cell / "eval" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 3 * 3 + 2 + 2 + 2 + 4 + 4 and {i["task"] for i in items} == set(metrics["metrics"])
    assert len(list((cell / "eval" / "cache").glob("general-*_rank0.db"))) == 1
    plain = json.loads((results / "tiny-plain" / "base" / "eval" / "metrics.json").read_text())
    assert plain["families"]["general"]["settings"]["chat_template"] is False
    assert (results / "benchmarks" / "train" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0.tsv").exists()
    assert "step 2/2" in (results / "logs" / "train" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0.log").read_text()

    scaling = pd.read_csv(results / "tables" / "scaling.csv")
    assert sorted(set(scaling["method"])) == ["scaling-lora-r2", "scaling-lora-r4", "scaling-sft"]
    assert sorted(set(scaling["step"])) == [0, 1, 2]
    assert (scaling.loc[scaling["step"] == 0, "forgetting"] == 0).all()
    assert scaling.groupby("method")["n_params"].first().is_monotonic_increasing
    fits = pd.read_csv(results / "tables" / "scaling_fits.csv")
    assert {"linear", "power_law"} <= set(fits["law"])
    for name in ("scaling_steps", "scaling_ft_loss", "scaling_predicted", "learning_vs_forgetting"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 10_000
    assert not (results / "tiny-chat" / "scaling-lora-r2" / "lr~0.001" / "seed~0" / "checkpoints").exists()
    assert (results / "tiny-chat" / "scaling-lora-r2" / "lr~0.001" / "seed~0" / "step~1" / "metrics.json").exists()

    # a second run has nothing to do; the report bundles tables and figures
    again = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake("--snakefile", str(REPO / "Snakefile"), "--configfile", str(config), "--directory", str(workdir),
                       "--report", str(workdir / "report.html"))
    assert report.returncode == 0, report.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert all(name in html for name in ("tradeoff.png", "loss_vs_forgetting.png", "tradeoff.csv", "tradeoff.tex",
                                          "scaling_fits.csv", "tradeoff.html", "token_stats.html", "scaling_fits.html"))


# The report app (a React page): a category's entries are rows of the navbar's table, the first cell the file,
# the first link of the row its view button; a viewed HTML file is the content's iframe.
_OPEN_CATEGORY = """(() => {
    const item = [...document.querySelectorAll('nav li')].find(li => li.textContent.trim() === %s);
    if (!item) return false;
    (item.querySelector('a') || item).click();
    return true;
})()"""
_ENTRIES = "[...document.querySelectorAll('nav tbody tr')].map(row => row.cells[0].textContent.trim())"
_VIEW = "document.querySelectorAll('nav tbody tr')[%d].querySelector('a').click()"
_TABLE = """(() => {
    const table = document.querySelector('table');
    if (!table) return null;
    const cells = row => [...row.cells].map(cell => cell.innerText.replace(/\\s+/g, ' ').trim());
    return {headers: [...table.querySelectorAll('thead tr')].flatMap(cells),
            rows: [...table.querySelectorAll('tbody tr')].map(cells)};
})()"""


def report_views(report, category: str, stem: str, screenshot=None) -> dict[str, dict | None]:
    """Open the report in headless Chromium, open `category` and view each of its entries named `stem`.<ext>
    as a reader would (its view button): entry -> the table its view shows ({headers, rows}), or None where the
    view shows no table (a link to download, or no page); it stops at the first that shows one."""
    from headless import Browser, BrowserError

    views = {}
    with Browser() as browser:
        browser.open(report.as_uri())
        browser.wait_for("document.querySelectorAll('nav li').length > 0")
        assert browser.evaluate(_OPEN_CATEGORY % json.dumps(category)), f"no category {category} in the report"
        entries = browser.wait_for(_ENTRIES)
        for i, entry in enumerate(entries):
            if os.path.basename(entry).split(".")[0] != stem:
                continue
            browser.evaluate("document.querySelectorAll('iframe').forEach(f => f.dataset.seen = 1); true")
            browser.evaluate(_VIEW % i)
            try:  # a viewed page replaces the content's iframe by a new one
                browser.wait_for("!!document.querySelector('iframe:not([data-seen])')", timeout=3)
            except BrowserError:
                views[entry] = None
                continue
            views[entry] = browser.wait_for(f"document.readyState === 'complete' && {_TABLE}",
                                            frame_id=browser.frames()[-1]["id"], timeout=10)
            if screenshot:
                browser.screenshot(screenshot.with_name(f"{stem}.png"))
            if views[entry] and views[entry]["rows"]:
                break
    return views


@pytest.mark.slow
def test_the_report_shows_each_table_as_a_table(smoke_run, tmp_path):
    """snakemake --report in a real browser (headless Chromium): viewing a table of the report shows its rows."""
    from headless import chromium

    if chromium() is None:
        pytest.skip("no chromium (.ci/run installs Debian's)")
    workdir, _ = smoke_run
    tables = workdir / "results" / "smoke" / "tables"
    report = tmp_path / "report.html"
    result = in_smoke(smoke_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]

    grouped = pd.read_csv(tables / "tradeoff_grouped.csv")
    fits = pd.read_csv(tables / "scaling_fits.csv")
    expected = {  # table -> (category, a header it must show, the (first, second) cells of its rows)
        "tradeoff": ("Tables", "General avg", sorted(zip(grouped["model"], grouped["method"]))),
        "token_stats": ("Tables", "tokens with p < 0.05", None),
        "scaling_fits": ("Scaling", "R²", sorted(zip(fits.loc[fits["law"] != "power_law_holdout", "model"],
                                                     fits.loc[fits["law"] != "power_law_holdout", "law"]
                                                     .map({"linear": "linear", "power_law": "power law"})))),
    }
    for stem, (category, header, rows) in expected.items():
        views = report_views(report, category, stem, screenshot=tmp_path / "shot.png")
        shown = [table for table in views.values() if table and table["rows"]]
        assert shown, f"{category}: no entry of {stem} shows a table in the report: {views}"
        table = shown[0]
        assert any(h.startswith(header) for h in table["headers"]), table["headers"]
        if rows is not None:
            assert sorted((r[0], r[1]) for r in table["rows"]) == rows
        else:
            assert sorted(r[0] for r in table["rows"]) == ["tiny-chat", "tiny-plain"]
        # the score cells read as the Markdown table writes them: the value then its interval
        if stem == "tradeoff":
            general = table["headers"].index(next(h for h in table["headers"] if h.startswith(header)))
            score = re.compile(r"-?\d\.\d+ \[-?\d\.\d+, -?\d\.\d+\]")
            assert all(score.fullmatch(r[general]) for r in table["rows"]), table["rows"]


def _edited(path, extra: str):
    """Append `extra` to a source file of the checkout for the length of a with-block, then restore it."""
    import contextlib

    @contextlib.contextmanager
    def edit():
        original = path.read_bytes()
        stat = path.stat()
        path.write_bytes(original + extra.encode())
        try:
            yield
        finally:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    return edit()


@pytest.mark.slow
def test_a_rerun_redoes_only_what_changed(smoke_run, tmp_path):
    # editing plotting code: only the figures are redrawn, from the tables
    with _edited(REPO / "workflow/forgetbench/aggregation/plots.py", "\n# an edit\n"):
        jobs = planned_jobs(in_smoke(smoke_run, "-n"))
    assert sorted(rule for rule, _ in jobs) == ["all", "plot_scaling", "plot_token_probs", "plot_tradeoff"]

    # editing one method's code: that method's cells (and its scaling runs) only, then the tables
    with _edited(REPO / "workflow/forgetbench/methods/lora.py", "\n# an edit\n"):
        jobs = planned_jobs(in_smoke(smoke_run, "-n"))
    trained = {(w["model"], w.get("method") or w.get("run")) for rule, w in jobs if rule.startswith("train")}
    assert trained == {("tiny-chat", "lora"), ("tiny-plain", "lora"), ("tiny-chat", "scaling-lora-r2"),
                       ("tiny-chat", "scaling-lora-r4")}
    evaluated = {w["cell"].split("/")[0] for rule, w in jobs if rule == "evaluate"}
    assert evaluated == {"lora"}
    assert not {"prepare_model", "score_base", "combine_posthoc"} & {rule for rule, _ in jobs}

    # editing a task's scoring: that task's family is evaluated again. The base models are kept, so for them only
    # the general family reruns; a cell's weights are removed once evaluated (training.keep_weights: false), so
    # the cell trains again (to the same weights: training is deterministic) and both its families rerun
    with _edited(REPO / "workflow/tasks/fb_gsm8k.yaml", "\n# an edit\n"):
        jobs = planned_jobs(in_smoke(smoke_run, "-n"))
    evaluated = [(w["model"], w["cell"].split("/")[0], w["family"]) for rule, w in jobs if rule == "evaluate"]
    assert {(model, family) for model, cell, family in evaluated if cell == "base"} == {
        ("tiny-chat", "general"), ("tiny-plain", "general")}
    assert len(evaluated) == 2 + 2 * 6  # the two base models' general family; both families of the 6 cells
    trained = {(w["model"], w["method"]) for rule, w in jobs if rule == "train"}
    assert trained == {("tiny-chat", "sft"), ("tiny-chat", "lora"), ("tiny-plain", "sft"), ("tiny-plain", "lora")}
    assert not {"train_scaling", "prepare_model", "score_base"} & {rule for rule, _ in jobs}
    # the Python only GSM8K's YAML calls stamps that family alone too
    with _edited(REPO / "workflow/tasks/fb_gsm8k_answer.py", "\n# an edit\n"):
        jobs_python = planned_jobs(in_smoke(smoke_run, "-n"))
    as_set = lambda planned: {(rule, tuple(sorted(w.items()))) for rule, w in planned}  # noqa: E731
    assert as_set(jobs_python) == as_set(jobs)

    # a setting score_base and every training job read (training.max_truncated_share): score_base and every cell
    # rerun. (With an ordering-only ancient() input from score_base, Snakemake 9 reran score_base alone and kept
    # every trained cell and its evaluation as they were.)
    config = yaml.safe_load(smoke_run[1].read_text())
    config["training"]["max_truncated_share"] = 0.02
    path = tmp_path / "share.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(in_smoke(smoke_run, "-n", config=path))
    assert {w["model"] for rule, w in jobs if rule == "score_base"} == {"tiny-chat", "tiny-plain"}
    trained = {(w["model"], w["method"]) for rule, w in jobs if rule == "train"}
    assert trained == {(m, method) for m in ("tiny-chat", "tiny-plain") for method in ("sft", "lora")}
    assert len([rule for rule, _ in jobs if rule == "train_scaling"]) == 3
    assert {w["cell"].split("/")[0] for rule, w in jobs if rule == "evaluate"} == {"sft", "lora", "wise-0.5", "lines"}

    # one more learning rate: only the new cells, then the tables
    config = yaml.safe_load(smoke_run[1].read_text())
    config["learning_rates"] = [1e-3, 5e-4]
    path = tmp_path / "more_lrs.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(in_smoke(smoke_run, "-n", config=path))
    assert {w["lr"] for rule, w in jobs if rule in ("train", "combine_posthoc")} == {"0.0005"}
    assert {w["cell"].split("/")[1] for rule, w in jobs if rule == "evaluate"} == {"lr~0.0005"}
    assert not {"prepare_model", "score_base", "train_scaling", "evaluate_checkpoint"} & {rule for rule, _ in jobs}


@pytest.mark.slow
def test_the_same_seed_gives_byte_identical_metrics(smoke_run):
    """Retrain and re-evaluate one cell from scratch: on CPU its training losses and metrics files are the same
    bytes as the first time."""
    workdir, _ = smoke_run
    cell = workdir / "results" / "smoke" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0"
    before = {p.relative_to(cell): p.read_bytes() for p in (cell / "eval").glob("*.json")}
    losses = [json.loads(line)["loss"] for line in (cell / "train_log.jsonl").read_text().splitlines()]
    for path in [cell / "run.json", cell / "train_log.jsonl", *(cell / "eval").glob("*.json")]:
        path.unlink()
    import shutil

    shutil.rmtree(cell / "eval" / "cache")  # no cached answers: the evaluation really reruns
    result = in_smoke(smoke_run, "--cores", "2", str(cell.relative_to(workdir) / "eval" / "metrics.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [json.loads(line)["loss"] for line in (cell / "train_log.jsonl").read_text().splitlines()] == losses
    after = {p.relative_to(cell): p.read_bytes() for p in (cell / "eval").glob("*.json")}
    assert sorted(after) == sorted(before) and len(before) == 3
    assert after == before


def _kill_tree(proc) -> None:
    """SIGKILL snakemake and every process under it (its jobs), as a preempted node would."""
    import psutil

    parent = psutil.Process(proc.pid)
    for p in [*parent.children(recursive=True), parent]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def _run_until(args, workdir, done, timeout=900) -> bool:
    """Start snakemake; SIGKILL it as soon as `done()` is true. Returns whether it was killed (False: it ended)."""
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    with open(workdir / "snakemake.out", "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if done():
                _kill_tree(proc)
                return True
            time.sleep(0.2)
        if proc.poll() is None:
            _kill_tree(proc)
            raise TimeoutError("snakemake did not finish")
        return False


@pytest.mark.slow
def test_a_run_killed_anywhere_resumes_and_ends_as_an_uninterrupted_one(tmp_path, tiny_model_dir):
    """SIGKILL during training, during evaluation and during aggregation; each time the same command (after
    `--unlock`) resumes; the training continues from its checkpoint and every result equals a straight run's."""
    config = yaml.safe_load(smoke_config(tmp_path, tiny_model_dir).read_text())
    config["models"] = {"tiny-chat": config["models"]["tiny-chat"]}
    config["methods"] = {"sft": {}}
    config["training"].update(max_steps=6, resume_every=1)
    config["evaluation"]["families"] = {}  # one job per task: several evaluation jobs to interrupt
    config.pop("scaling")
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(config))

    runs = {}
    for name in ("straight", "killed"):
        workdir = tmp_path / name
        workdir.mkdir()
        runs[name] = workdir
    common = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(path), "--cores", "2"]
    straight = runs["straight"]
    assert not _run_until([*common, "--directory", str(straight)], straight, lambda: False)

    killed = runs["killed"]
    results = killed / "results" / "smoke"
    cell = results / "tiny-chat" / "sft" / "lr~0.001" / "seed~0"
    train_log = results / "logs" / "train" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0.log"
    eval_logs = results / "logs" / "evaluate" / "tiny-chat"
    stages = {
        "training": lambda: train_log.exists() and "step 3/6" in train_log.read_text()
        and (cell / "resume" / "checkpoint-3" / "progress.json").exists(),
        "evaluation": lambda: len(list(eval_logs.rglob("*.log"))) >= 3 if eval_logs.exists() else False,
        "aggregation": lambda: (results / "tables" / "tradeoff.csv").exists(),
    }
    args = [*common, "--directory", str(killed), "--rerun-incomplete"]
    for stage, reached in stages.items():
        snakemake("--unlock", *common, "--directory", str(killed))
        assert _run_until(args, killed, reached), f"the run ended before it could be killed during {stage}"
    snakemake("--unlock", *common, "--directory", str(killed))
    assert not _run_until(args, killed, lambda: False)

    assert "resuming from" in train_log.read_text()
    assert not (cell / "resume").exists()
    for relative in ["tiny-chat/sft/lr~0.001/seed~0/eval/metrics.json", "tiny-chat/base/eval/metrics.json"]:
        assert (results / relative).read_bytes() == (straight / "results" / "smoke" / relative).read_bytes(), relative
    losses = [[json.loads(line)["loss"] for line in (root / "tiny-chat/sft/lr~0.001/seed~0/train_log.jsonl")
               .read_text().splitlines()] for root in (results, straight / "results" / "smoke")]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    tables = [pd.read_csv(root / "results" / "smoke" / "tables" / "tradeoff.csv") for root in (killed, straight)]
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_a_gpu_job_that_sees_fewer_gpus_than_it_asked_for_fails_and_says_so(tmp_path, tiny_model_dir):
    """A model's first GPU jobs are its base evaluation and score_base (training waits for both): the first to
    start refuses, naming what it asked for and saw, and nothing trains. (The training job's own refusal:
    test_sharding and test_gpu_scoring.)"""
    config = yaml.safe_load(smoke_config(tmp_path, tiny_model_dir).read_text())
    config["models"] = {"tiny-chat": config["models"]["tiny-chat"]}
    config["methods"] = {"sft": {}}
    config["resources"]["gpu"] = 1
    config["evaluation"]["backend"] = "hf"  # no vLLM needed: the GPU jobs are what is checked
    del config["scaling"]
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    target = "results/smoke/tiny-chat/sft/lr~0.001/seed~0/run.json"
    result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(tmp_path), target, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode != 0
    logs = tmp_path / "results/smoke/logs"
    refusals = {p.relative_to(logs).parts[0]: p.read_text() for p in logs.rglob("*.log")
                if "sees 0 (CUDA_VISIBLE_DEVICES=); not falling back to the CPU" in p.read_text()}
    assert refusals and set(refusals) <= {"score_base", "evaluate"}
    if "score_base" in refusals:
        assert ("RuntimeError: rule score_base (results/smoke/tiny-chat/base/train_scores/token_stats.json): asked "
                "for 1 GPU but sees 0") in refusals["score_base"]
    assert not (tmp_path / target).exists() and not (logs / "train").exists()


def test_a_task_that_fails_on_the_base_model_stops_its_training_before_it_starts(tmp_path, tiny_model_dir):
    """Each task runs on the base model before any training of that model (the base_checked checkpoint): a task
    that cannot run (here its documents cannot be rendered) fails there, and no cell trains, even with
    --keep-going."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "items.jsonl").write_text("".join(json.dumps({"question": f"q{i}", "answer": "a"}) + "\n" for i in range(3)))
    (tasks / "broken.py").write_text("def doc_to_text(doc):\n    raise RuntimeError('this task cannot read its data')\n")
    (tasks / "fbt_broken.yaml").write_text(
        f"task: fbt_broken\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'items.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: !function broken.doc_to_text\n"
        "doc_to_target: '{{answer}}'\ngeneration_kwargs:\n  until: ['\\n']\n  max_gen_toks: 4\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n")
    config = yaml.safe_load(smoke_config(tmp_path, tiny_model_dir).read_text())
    config["models"] = {"tiny-chat": config["models"]["tiny-chat"]}
    config["methods"] = {"sft": {}}
    config["evaluation"].update(backend="hf", include_path=str(tasks), general={"fbt_broken": {}}, families={})
    del config["scaling"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("--cores", "2", "--keep-going", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(tmp_path))
    assert result.returncode != 0
    results = tmp_path / "results/smoke"
    assert "RuntimeError: this task cannot read its data" in (results / "logs/evaluate/tiny-chat/base/fbt_broken.log").read_text()
    assert (results / "tiny-chat/base/train_scores/token_stats.json").is_file()  # what could run, ran
    assert not (results / "tiny-chat/base/checked.json").exists()
    assert not (results / "logs/train").exists() and not (results / "tiny-chat/sft").exists()


def test_a_trained_cell_does_not_wait_for_the_base_check(tmp_path, tiny_model_dir):
    """Results made before the base_checked checkpoint have no checked.json: a trained cell does not wait for it
    (Snakemake 9 would skip its rerun checks, or rerun everything after it once the checkpoint ran), so a changed
    method retrains its cells and nothing else reruns; a cell that has not trained yet waits, and the checkpoint
    is written for it."""
    config = yaml.safe_load(smoke_config(tmp_path, tiny_model_dir).read_text())
    config["models"] = {"tiny-chat": config["models"]["tiny-chat"]}
    config["methods"] = {"sft": {}, "lora": {"r": 4, "alpha": 8}}
    config["evaluation"]["backend"] = "hf"
    config["training"]["keep_weights"] = True  # so that only what changed has a reason to run again
    del config["scaling"]

    def run(name):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                           "--directory", str(tmp_path))
        assert result.returncode == 0, result.stderr[-3000:]
        return planned_jobs(result)

    run("first")
    results = tmp_path / "results/smoke"
    checked = results / "tiny-chat/base/checked.json"
    assert json.loads(checked.read_text())["model"] == "tiny-chat"
    checked.unlink()
    sft_run = (results / "tiny-chat/sft/lr~0.001/seed~0/run.json").read_bytes()

    config["methods"]["lora"] = {"r": 2, "alpha": 4}
    ran = run("changed")
    assert sorted((rule, w.get("method") or w.get("cell", "").split("/")[0]) for rule, w in ran
                  if rule not in ("aggregate", "plot_tradeoff", "all")) == [
        ("evaluate", "lora"), ("evaluate", "lora"), ("merge_evaluations", "lora"), ("train", "lora")]
    assert json.loads((results / "tiny-chat/lora/lr~0.001/seed~0/run.json").read_text())["config"]["hparams"]["r"] == 2
    assert (results / "tiny-chat/sft/lr~0.001/seed~0/run.json").read_bytes() == sft_run
    assert not checked.exists()

    config["learning_rates"] = [1e-3, 5e-4]
    ran = run("new_lr")
    assert ("base_checked", {"model": "tiny-chat"}) in ran and checked.is_file()
    assert {w["lr"] for rule, w in ran if rule == "train"} == {"0.0005"}
