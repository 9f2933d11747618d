"""The tidy table of every evaluation (one row per base model and per cell) with bootstrap intervals, and its
paper-shaped views (seeds pooled, Markdown, LaTeX and HTML).

Columns of the tidy table, per evaluation: each score (`domain`, `domain_loss`, every general task,
`general_avg`, `general_text`) with `<score>_lo`/`_hi`, its item count `n_<task>`; the differences against the
base model (`delta_domain`, `delta_domain_loss`, `delta_<task>`, `delta_general`, `forgetting` = Δ bits per
byte of the general text) and against `sft` at the same learning rate (`vs_sft_…`), each with `_lo`, `_hi` and
`_p`, all paired over the same items (forgetbench.aggregation.intervals); the backend, engine and dtype it was
evaluated with.

The domain score `domain` is the mean of the domain-score tasks' scores (forgetbench.evaluation.tasks
.domain_score_tasks): the answer-scored `domain` task itself for QA formats, or the `domain.eval` lm-eval tasks,
each also a column of its own (`domain.<task>`, with its interval, differences and `n_`), resampled like the
general average (each task on its own items, paired across a model's evaluations; `n_domain` is then the items of
all of them). Without a domain-score task (a TRL-format domain without `domain.eval`) there is no `domain` column:
the domain loss is the domain's only measure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forgetbench.aggregation import intervals
from forgetbench.aggregation.html import table_html
from forgetbench.evaluation.tasks import DOMAIN_EVAL_PREFIX, SPECS

ID_COLUMNS = ["model", "method", "lr", "seed"]
LOSSES = ["domain_loss", "general_text"]  # lower is better
# Differences shown in the tables: score -> (vs base, vs sft at the same LR)
DELTAS = {"domain": ("delta_domain", "vs_sft_domain"), "domain_loss": ("delta_domain_loss", "vs_sft_domain_loss"),
          "general_avg": ("delta_general", "vs_sft_general"), "general_text": ("forgetting", "vs_sft_forgetting")}


DEFAULT_DOMAIN = ("domain",)  # domain_score_tasks of a QA-format domain without domain.eval


def domain_columns(domain_tasks) -> tuple[list[str], list[str]]:
    """(the quantities the domain columns open with, the domain-score tasks among them that are columns of their
    own): (["domain"], []) for the `domain` task alone, (["domain", "domain.a", ...], ["domain.a", ...]) for
    domain.eval tasks, ([], []) for none."""
    tasks = list(domain_tasks)
    if not tasks:
        return [], []
    if tasks == ["domain"]:
        return ["domain"], []
    if "domain" in tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f"domain-score tasks {tasks}: the `domain` task is the domain score on its own, and each "
                         "task may be named once")
    return ["domain", *tasks], tasks


@dataclass
class Evaluation:
    """One metrics file and its items: who was evaluated, each task's reported score and its items."""

    row: dict
    items: dict[str, intervals.ItemScores]


def _engine(result: dict) -> dict:
    """Backend, engine version and dtype of an evaluation (several, '+'-joined, if its families differ)."""
    settings = [f.get("settings") or {} for f in (result.get("families") or {}).values()] or [result.get("settings") or {}]
    packages = result.get("packages") or {}

    def joined(values):
        return "+".join(sorted({str(v) for v in values if v is not None})) or None

    engines = [f"vllm {s.get('vllm_version')}" if s.get("backend") == "vllm"
               else f"transformers {packages.get('transformers', '?')}" for s in settings if s.get("backend")]
    return {"backend": joined(s.get("backend") for s in settings), "engine": joined(engines),
            "dtype": joined(s.get("dtype") for s in settings)}


def load_evaluations(metric_paths: list[str | Path], item_paths: list[str | Path], general: list[str],
                     domain_tasks=DEFAULT_DOMAIN) -> list[Evaluation]:
    if len(metric_paths) != len(item_paths):
        raise ValueError(f"{len(metric_paths)} metrics files but {len(item_paths)} items files")
    opening, own = domain_columns(domain_tasks)
    evaluations = []
    for path, items_path in zip(metric_paths, item_paths):
        result = json.loads(Path(path).read_text())
        cell, metrics = result["cell"], result["metrics"]
        missing = [t for t in [*domain_tasks, *general] if t not in metrics]
        if missing:
            raise ValueError(f"{path}: no score for {', '.join(missing)}")
        row = {key: cell[key] for key in ID_COLUMNS}
        for task in [*opening, "domain_loss", *general, "general_text"]:
            score = (metrics.get(task) or {}).get("score")
            row[task] = np.nan if score is None else score
        if own:
            row["domain"] = float(np.mean([row[t] for t in own]))
        row["general_avg"] = float(np.mean([row[t] for t in general])) if general else np.nan
        row["status"] = result.get("status", "finished")
        truncated = (result.get("training") or {}).get("truncated_responses")
        row["truncated_responses"] = np.nan if truncated is None else truncated
        row.update(_engine(result))
        evaluations.append(Evaluation(row, intervals.read_items(items_path, metrics)))
    return evaluations


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Per model the base row first, then method, LR and (where the table has them) seed."""
    keys = ["model", "_b", "method", "lr"] + (["seed"] if "seed" in table else [])
    order = table.assign(_b=table["method"] != "base").sort_values(keys)
    return order.drop(columns=["_b"]).reset_index(drop=True)


@dataclass
class ModelResamples:
    """Every evaluation of one model: the observed scores and their resamples, [quantities, resamples, evals]."""

    quantities: list[str]
    observed: np.ndarray
    resampled: np.ndarray
    n_items: dict[str, int]


def _resample_model(model: str, evaluations: list[Evaluation], general: list[str], n_resamples: int,
                    seed: int, domain_tasks=DEFAULT_DOMAIN) -> ModelResamples:
    opening, own = domain_columns(domain_tasks)
    tasks = [*(own or opening), "domain_loss", *general, "general_text"]
    per_task = {}
    n_items = {"domain": 0} if own else {}
    for task in tasks:
        scored = [e.items.get(task) for e in evaluations]
        rng = intervals.stable_rng(seed, model, task)
        per_task[task] = intervals.resampled_scores(scored, n_resamples, rng, f"model {model}, task {task}")
        n_items[task] = next((len(s.keys) for s in scored if s is not None), 0)
    if own:  # the domain score: the mean of its tasks, each resampled on its own items like the general average
        per_task["domain"] = np.mean([per_task[t] for t in own], axis=0)
        n_items["domain"] = sum(n_items[t] for t in own)
    general_avg = np.mean([per_task[t] for t in general], axis=0) if general else np.full((n_resamples, len(evaluations)), np.nan)
    quantities = [*opening, *tasks[len(own or opening):], "general_avg"]
    resampled = np.stack([per_task[t] for t in quantities[:-1]] + [general_avg])
    observed = np.array([[e.row[q] for e in evaluations] for q in quantities], dtype=float)
    return ModelResamples(quantities, observed, resampled, n_items)


def _comparisons(keys: list[tuple]) -> dict[int, dict[str, int | None]]:
    """Unit -> the units it is compared with: the model's base and sft at the same LR (and seed, for single
    evaluations); None where absent or where the unit is that reference itself. Keys are (method, lr[, seed])."""
    base = next((i for i, k in enumerate(keys) if k[0] == "base"), None)
    sft = {tuple(k[1:]): i for i, k in enumerate(keys) if k[0] == "sft"}
    return {i: {"base": None if k[0] == "base" else base,
                "sft": None if k[0] in ("base", "sft") else sft.get(tuple(k[1:]))} for i, k in enumerate(keys)}


def _interval_columns(samples: ModelResamples, units: list[list[int]], keys: list[tuple], rng) -> list[dict]:
    """Per unit: each quantity's observed value (mean over its seeds) and interval, and every difference."""
    unit_resamples = intervals.resample_units(samples.resampled, units, rng)  # [quantities, resamples, units]
    compared = _comparisons(keys)
    rows = []
    for u, columns in enumerate(units):
        observed = np.nanmean(samples.observed[:, columns], axis=1) if len(columns) else None
        row = {}
        for q, quantity in enumerate(samples.quantities):
            row[quantity] = observed[q]
            row[f"{quantity}_lo"], row[f"{quantity}_hi"] = intervals.interval(unit_resamples[q, :, u])
            names = DELTAS.get(quantity, (f"delta_{quantity}", None))
            for reference, name in zip(("base", "sft"), names):
                other = compared[u][reference]
                if name is None:
                    continue
                if other is None:  # the base row against itself differs by exactly 0; no reference: no difference
                    itself = reference == "base" and keys[u][0] == "base"
                    row[name] = row[f"{name}_lo"] = row[f"{name}_hi"] = 0.0 if itself else math.nan
                    row[f"{name}_p"] = math.nan
                    continue
                difference = unit_resamples[q, :, u] - unit_resamples[q, :, other]
                row[name] = observed[q] - np.nanmean(samples.observed[q, units[other]])
                row[f"{name}_lo"], row[f"{name}_hi"] = intervals.interval(difference)
                row[f"{name}_p"] = intervals.p_value(difference)
        for task, n in samples.n_items.items():
            row[f"n_{task}"] = n
        rows.append(row)
    return rows


def build_tables(metric_paths, item_paths, general: list[str], n_resamples: int = 1000,
                 seed: int = 0, domain_tasks=DEFAULT_DOMAIN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy table, one row per evaluation; grouped table, one row per model × method × LR with its seeds
    resampled), both with intervals and paired differences. `domain_tasks`: the metric keys whose mean is the
    domain score (forgetbench.evaluation.tasks.domain_score_tasks); none: no domain score columns."""
    evaluations = load_evaluations(metric_paths, item_paths, general, domain_tasks)
    tidy, grouped = [], []
    for model in dict.fromkeys(e.row["model"] for e in evaluations):
        mine = [e for e in evaluations if e.row["model"] == model]
        bases = [e for e in mine if e.row["method"] == "base"]
        if len(bases) > 1:
            raise ValueError(f"more than one base evaluation for model {model}")
        samples = _resample_model(model, mine, general, n_resamples, seed, domain_tasks)
        rng = intervals.stable_rng(seed, model, "seeds")
        keys = [(e.row["method"], e.row["lr"], e.row["seed"]) for e in mine]
        per_eval = _interval_columns(samples, [[i] for i in range(len(mine))], keys, rng)
        tidy += [{**e.row, **row} for e, row in zip(mine, per_eval)]
        group_keys = list(dict.fromkeys((k[0], k[1]) for k in keys))
        units = [[i for i, k in enumerate(keys) if (k[0], k[1]) == g] for g in group_keys]
        per_group = _interval_columns(samples, units, group_keys, rng)
        for g, columns, row in zip(group_keys, units, per_group):
            statuses = [mine[i].row["status"] for i in columns]
            cut = [mine[i].row["truncated_responses"] for i in columns]
            grouped.append({"model": model, "method": g[0], "lr": g[1], "seeds": len(columns),
                            "diverged": statuses.count("diverged"),
                            "truncated_responses": np.nan if all(np.isnan(cut)) else float(np.nanmax(cut)),
                            **{k: mine[columns[0]].row[k] for k in ("backend", "engine", "dtype")}, **row})
    tidy_df = _sorted(pd.DataFrame(tidy))
    tidy_df["is_base"] = tidy_df["method"] == "base"
    return tidy_df, _sorted(pd.DataFrame(grouped))


def display_lr(lr) -> str:
    """A learning rate as the tables and plots show it: 2e-05 and 0.0002 read as 2e-5 and 2e-4 (the results
    folders name it with forgetbench.config.sweep.format_lr)."""
    if lr is None or pd.isna(lr):
        return "—"
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _number(value: float, decimals: int = 3) -> str:
    return "—" if pd.isna(value) else f"{round(value, decimals) + 0.0:.{decimals}f}"  # + 0.0: no "-0.000"


def interval_decimals(low: float, high: float) -> int:
    """Three decimals, or as many as show two digits of a narrower interval (at most 6): a difference of 1e-4
    with an interval that excludes 0 must not print as 0.000 [0.000, 0.000]*."""
    width = high - low
    if not width > 1e-9:  # a point interval, up to float rounding
        return 3
    return max(3, min(6, math.ceil(-math.log10(width)) + 1))


def _with_interval(value: float, low: float, high: float, latex: bool) -> str:
    if pd.isna(value) or pd.isna(low):
        return _number(value)
    decimals = interval_decimals(low, high)
    text = _number(value, decimals)
    bracket = f"[{_number(low, decimals)}, {_number(high, decimals)}]"
    return f"{text} {{\\scriptsize {bracket}}}" if latex else f"{text} {bracket}"


# Header names: each catalogue task's own (its TaskSpec), and the table's derived columns; any other task shows
# as its lm-eval name.
DISPLAY = {
    **{name: spec.display for name, spec in SPECS.items()},
    "general_avg": "General avg",
    "delta_domain": "Δ domain",
    "delta_general": "Δ general",
    "forgetting": "Forgetting (Δ bpb)",
    "delta_domain_loss": "Δ domain loss",
    "vs_sft_domain": "Δ domain vs sft",
    "vs_sft_general": "Δ general vs sft",
    "vs_sft_domain_loss": "Δ domain loss vs sft",
    "vs_sft_forgetting": "Δ forgetting vs sft",
}
MARK = "*"
FEW = "†"


@dataclass
class PaperTable:
    """A displayed table and what its caption must say."""

    frame: pd.DataFrame
    caption: str


def display_name(column: str) -> str:
    """A column's header name: DISPLAY's where it has one, a domain.eval task as `Domain: <its name>`, else the
    column (an lm-eval task's own name)."""
    if column.startswith(DOMAIN_EVAL_PREFIX):
        task = column.removeprefix(DOMAIN_EVAL_PREFIX)
        return f"Domain: {DISPLAY.get(task, task)}"
    return DISPLAY.get(column, column)


def paper_table(grouped: pd.DataFrame, general: list[str], correction: str | None = None,
                latex: bool = False, domain_tasks=DEFAULT_DOMAIN) -> PaperTable:
    """Rows method × LR per model (base first); each score with its 95 % interval, the differences against the
    base model (and, in the `vs_sft` columns, against sft at the same LR) marked where significant. The domain
    score's column is absent without a domain-score task; with several, each also has a column of its own."""
    opening, own = domain_columns(domain_tasks) if "domain" in grouped else ([], [])
    shown_domain = opening if len(own) > 1 else opening[:1]
    scores = [*shown_domain, *general, "general_avg", "domain_loss"]
    # The domain score's change is the trade-off's first half: shown wherever its column is.
    domain_deltas = ["delta_domain"] if "domain" in shown_domain else []
    against_base = [*domain_deltas, "delta_general", "forgetting", "delta_domain_loss"]
    against_sft = [*(["vs_sft_domain"] if domain_deltas else []), "vs_sft_general", "vs_sft_forgetting"]
    differences = against_base + (against_sft if grouped["vs_sft_general"].notna().any() else [])
    counted = [t for t in opening if t != "domain" or not own]  # the mean of several tasks has no one n
    n_items = {t: int(grouped[f"n_{t}"].max()) for t in [*counted, "domain_loss", *general, "general_text"]}
    if len(own) == 1:
        n_items["domain"] = n_items[own[0]]

    def header(column):
        label = display_name(column) + (" avg" if column == "domain" and len(own) > 1 else "")
        task = {"forgetting": "general_text", "delta_domain_loss": "domain_loss", "delta_domain": "domain"}.get(column, column)
        if task in n_items:
            label += f" (n={n_items[task]}{FEW if n_items[task] < intervals.FEW_ITEMS else ''})"
        return label

    rows = []
    for _, r in grouped.iterrows():
        label = f"{r['method']} (diverged {r['diverged']}/{r['seeds']})" if r["diverged"] else r["method"]
        if r["seeds"] > 1:
            label += f" ({r['seeds']} seeds)"
        rows.append({"Model": r["model"], "Method": label, "LR": display_lr(r["lr"]),
                     **{header(c): _with_interval(r[c], r[f"{c}_lo"], r[f"{c}_hi"], latex) for c in scores}})
    # Marks need every comparison of the table at once (Holm ranks them together).
    cells = [(i, c) for c in differences for i, (_, r) in enumerate(grouped.iterrows()) if r["method"] != "base"]
    marked = intervals.marks([grouped.iloc[i][f"{c}_lo"] for i, c in cells], [grouped.iloc[i][f"{c}_hi"] for i, c in cells],
                             [grouped.iloc[i][f"{c}_p"] for i, c in cells], correction)
    is_marked = dict(zip(cells, marked))
    for i, (_, r) in enumerate(grouped.iterrows()):
        for c in differences:
            text = _with_interval(r[c], r[f"{c}_lo"], r[f"{c}_hi"], latex)
            rows[i][header(c)] = text + (MARK if is_marked.get((i, c)) else "")
    engines = sorted(set(grouped["engine"].dropna()) | set(grouped["dtype"].dropna().map(lambda d: f"dtype {d}")))
    mixed = grouped["engine"].nunique() > 1 or grouped["dtype"].nunique() > 1
    caption = (
        "Scores with 95 % intervals (paired bootstrap over the evaluated items; seeds "
        "resampled too where a row pools several). Δ: difference to the base model of the same model (and to sft "
        f"at the same LR); {MARK}: the interval excludes 0"
        + (" after Holm–Bonferroni correction across this table's comparisons" if correction == "holm"
           else ", per comparison, uncorrected")
        + f". {FEW}: fewer than {intervals.FEW_ITEMS} items, interval unreliable. " + _domain_note(own, opening)
        + "Domain loss: per-token NLL of the "
        "reference responses; forgetting: rise in bits per byte of held-out general text (lower is better for both). "
        + ("Evaluated with MIXED engines or dtypes: " if mixed else "Evaluated with ") + ", ".join(engines) + "."
        + _truncation_note(grouped)
    )
    return PaperTable(pd.DataFrame(rows), caption)


def _domain_note(own: list[str], opening: list[str]) -> str:
    """The caption's word on what the domain score is, where it is not the domain's answer accuracy."""
    if not opening:
        return ("No domain score is configured (no answers to score and no domain.eval tasks): the domain is "
                "measured by its loss only. ")
    if not own:
        return ""
    names = ", ".join(t.removeprefix(DOMAIN_EVAL_PREFIX) for t in own)
    if len(own) == 1:
        return f"Domain: the primary score of lm-eval task {names}. "
    return f"Domain avg: the mean of the primary scores of lm-eval tasks {names}, each resampled on its own items. "


def _truncation_note(grouped: pd.DataFrame) -> str:
    """The caption's word on training responses cut by max_seq_len (run.json's count, per cell)."""
    if "truncated_responses" not in grouped or not grouped["truncated_responses"].notna().any():
        return ""
    cut = grouped[grouped["truncated_responses"] > 0]
    if cut.empty:
        return " No training response was cut by max_seq_len."
    return (f" {len(cut)} row(s) trained with responses cut by max_seq_len (up to "
            f"{int(cut['truncated_responses'].max())} per cell; column truncated_responses of tradeoff.csv).")


def to_markdown(table: PaperTable, title: str) -> str:
    return f"# {title}\n\n" + table.frame.to_markdown(index=False) + f"\n\n{table.caption}\n"


def to_html(table: PaperTable, title: str) -> str:
    """The report's view of the table (Snakemake's report shows HTML, not Markdown): the same cells and caption."""
    return table_html(table.frame, title, table.caption)


def to_latex(table: PaperTable, title: str) -> str:
    body = table.frame.copy()
    # lm-eval task names in headers (my_task, leaderboard_bbh) carry underscores, which LaTeX reads as subscripts
    body.columns = [c.replace("_", r"\_").replace("Δ", r"$\Delta$").replace(FEW, r"$^\dagger$") for c in body.columns]
    body = body.replace({r"\*$": r"$^{*}$", "†": r"$^\\dagger$"}, regex=True)
    for column in ("Model", "Method"):  # names may hold underscores too
        body[column] = body[column].str.replace("_", r"\_", regex=False)
    # underscores (max_seq_len, lm-eval task names, experiment names) are subscripts to LaTeX outside math
    caption = f"{title}. {table.caption}".replace("_", r"\_").replace("Δ", r"$\Delta$").replace(FEW, r"$^\dagger$").replace(
        "%", r"\%").replace(MARK, r"$^{*}$", 1)
    return body.to_latex(index=False, caption=caption, label="tab:tradeoff", escape=False,
                         column_format="lll" + "r" * (len(body.columns) - 3))
