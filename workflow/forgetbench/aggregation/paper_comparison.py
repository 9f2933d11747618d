"""A paper's published numbers beside ours: tables/paper_comparison.{csv,md}.

The published numbers are data, `configs/<paper>.published.yaml`, named by the config's `published:` key (a path
relative to the config file's folder):

    paper: "SFT Doesn't Always Hurt General Capabilities (Lin et al., 2025)"
    arxiv: "2509.20758"
    setup_differences:            # what our run does differently from the paper's (the table's caption)
      - "greedy decoding with vLLM; the paper's sampling settings are not stated"
    values:
      - where: "Table 1"          # the paper's table or figure, as it labels it
        read_from: "arxiv.org/html/2509.20758v1, Section 4.2, Table 1"   # where the number was read
        metric: general_avg       # a column of tables/tradeoff_grouped.csv (domain, general_avg, gsm8k, ...)
        model: qwen2.5-3b         # the config's model name
        method: sft               # the cell's method folder (sft, lora-r16, wise-0.5, ...); base for the base model
        lr: 1.0e-6                # omitted for the base model
        domain: medcalc-cot       # the config's domain.name: a file may cover several configs of one paper
        value: 0.620
        scale: 1                  # the paper's unit over ours: 100 where the paper prints percent

Ours is read from the grouped trade-off table (seeds pooled per model × method × LR, what the paper tables show):
the value, its 95 % interval and the item count behind it. A published value whose cell the sweep did not produce
(or produced without a score) is "not run"; otherwise "inside" or "outside" our interval (after `scale`). Values
of another domain belong to another config of the paper and are left out (counted in the caption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from forgetbench.errors import ConfigError

REQUIRED = ("where", "read_from", "metric", "model", "method", "domain", "value")
OPTIONAL = ("lr", "scale", "note")
# Metrics whose item count is that of another column (the differences and the forgetting of a score).
COUNT_OF = {"forgetting": "general_text", "delta_domain_loss": "domain_loss", "delta_domain": "domain",
            "vs_sft_forgetting": "general_text", "vs_sft_domain_loss": "domain_loss", "vs_sft_domain": "domain"}
GENERAL_AVERAGES = ("general_avg", "delta_general", "vs_sft_general")
NOT_GENERAL = ("domain", "domain_loss", "general_text")
COLUMNS = ["where", "read_from", "metric", "model", "method", "lr", "domain", "published", "scale", "ours",
           "ours_lo", "ours_hi", "n_items", "difference", "status"]


@dataclass
class Published:
    """One paper's published numbers (each value a dict of REQUIRED and OPTIONAL keys)."""

    paper: str
    arxiv: str
    values: list[dict]
    setup_differences: list[str] = field(default_factory=list)


def load_published(path: str | Path) -> Published:
    """Read and check a published-numbers file; a bad one raises ConfigError naming the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"published: {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a mapping with paper, arxiv and values is expected")
    unknown = set(data) - {"paper", "arxiv", "values", "setup_differences"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("paper", "arxiv"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"{path}: `{key}` must be a non-empty string")
    values = data.get("values")
    if not isinstance(values, list):
        raise ConfigError(f"{path}: `values` must be a list (empty when no number could be read)")
    for i, entry in enumerate(values):
        where = f"{path}: values[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: a mapping is expected")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        extra = set(entry) - set(REQUIRED) - set(OPTIONAL)
        if extra:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(extra))}")
        if not _is_number(entry["value"]):
            raise ConfigError(f"{where}: value {entry['value']!r} is not a number")
        if entry["method"] != "base" and not _is_number(entry.get("lr")):
            raise ConfigError(f"{where}: method {entry['method']} needs its learning rate `lr`")
        if "scale" in entry and (not _is_number(entry["scale"]) or entry["scale"] <= 0):
            raise ConfigError(f"{where}: scale must be a positive number")
    differences = data.get("setup_differences") or []
    if not isinstance(differences, list) or not all(isinstance(d, str) for d in differences):
        raise ConfigError(f"{path}: `setup_differences` must be a list of strings")
    return Published(data["paper"], data["arxiv"], values, differences)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _same_lr(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-9)


def item_count(row: pd.Series, metric: str, general: list[str]) -> int | None:
    """Items behind one of our numbers: its task's count; a general average, the items of all its tasks."""
    if metric in GENERAL_AVERAGES:
        counts = [row.get(f"n_{t}") for t in general]
        return int(sum(counts)) if counts and all(pd.notna(c) for c in counts) else None
    task = COUNT_OF.get(metric, metric[len("delta_"):] if metric.startswith("delta_") else metric)
    count = row.get(f"n_{task}")
    return None if count is None or pd.isna(count) else int(count)


def compare(grouped: pd.DataFrame, published: Published, domain: str, general: list[str]) -> pd.DataFrame:
    """One row per published value of `domain`: the published number, ours with its interval and item count, the
    difference (ours × scale − published) and the status (inside, outside, not run)."""
    rows = []
    for entry in published.values:
        if entry["domain"] != domain:
            continue
        scale = float(entry.get("scale", 1))
        lr = entry.get("lr")
        match = grouped[(grouped["model"] == entry["model"]) & (grouped["method"] == entry["method"])]
        match = match[[_same_lr(lr, v) for v in match["lr"]]] if len(match) else match
        metric = entry["metric"]
        row = {"where": entry["where"], "read_from": entry["read_from"], "metric": metric, "model": entry["model"],
               "method": entry["method"], "lr": lr, "domain": domain, "published": float(entry["value"]),
               "scale": scale, "ours": math.nan, "ours_lo": math.nan, "ours_hi": math.nan, "n_items": None,
               "difference": math.nan, "status": "not run"}
        if len(match) and metric in match.columns and pd.notna(match.iloc[0][metric]):
            ours = match.iloc[0]
            value, low, high = (float(ours.get(c, math.nan)) * scale for c in (metric, f"{metric}_lo", f"{metric}_hi"))
            row.update(ours=value, ours_lo=low, ours_hi=high, n_items=item_count(ours, metric, general),
                       difference=value - row["published"])
            if math.isnan(low) or math.isnan(high):
                row["status"] = "no interval"
            else:
                row["status"] = "inside" if low <= row["published"] <= high else "outside"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _fmt(value, decimals: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{decimals}f}"


def _lr(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):g}"


def caption(table: pd.DataFrame, grouped: pd.DataFrame, published: Published, domain: str) -> list[str]:
    """What differs from the paper's setup: the file's stated differences, then what our rows were evaluated
    with (engine, dtype, seeds) and on how many items, read from the trade-off table."""
    lines = [f"Published: {published.paper} (arXiv {published.arxiv}); ours: the grouped trade-off table, "
             "seeds pooled, 95 % paired-bootstrap intervals."]
    others = sum(1 for v in published.values if v["domain"] != domain)
    if others:
        lines.append(f"{others} published value(s) of other domains belong to the paper's other configs.")
    lines += [f"Differs from the paper: {d}" for d in published.setup_differences]
    compared = grouped[grouped["model"].isin(set(table["model"]))] if len(table) else grouped.iloc[0:0]
    for column, what in (("engine", "engine"), ("dtype", "dtype"), ("backend", "backend")):
        if column in compared and compared[column].notna().any():
            lines.append(f"Ours: {what} {', '.join(sorted(set(compared[column].dropna().astype(str))))}.")
    if "seeds" in compared and len(compared):
        lines.append(f"Ours: {int(compared['seeds'].min())}–{int(compared['seeds'].max())} seed(s) per cell.")
    counts = table.dropna(subset=["n_items"]).groupby("metric")["n_items"].max() if len(table) else {}
    if len(counts):
        lines.append("Ours: items per metric " + ", ".join(f"{m} {int(n)}" for m, n in counts.items())
                     + " (subsets where the config sets a limit).")
    if not published.values:
        lines.append("No published value is recorded yet: the file says why.")
    return lines


def to_markdown(table: pd.DataFrame, lines: list[str], title: str) -> str:
    status = table["status"].value_counts().to_dict() if len(table) else {}
    summary = ", ".join(f"{status.get(s, 0)} {s}" for s in ("inside", "outside", "not run", "no interval")
                        if status.get(s, 0) or s != "no interval")
    out = [f"# {title}", "", f"{len(table)} published value(s): {summary}.", ""]
    out += [f"- {line}" for line in lines]
    out += ["", "| where | metric | model | method | LR | published | ours [95 % CI] | n | ours − published | "
            "published in our interval |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        ours = "not run" if r["status"] == "not run" else f"{_fmt(r['ours'])} [{_fmt(r['ours_lo'])}, {_fmt(r['ours_hi'])}]"
        n = "–" if r["n_items"] is None or pd.isna(r["n_items"]) else str(int(r["n_items"]))
        difference = "–" if r["status"] == "not run" else f"{r['difference']:+.3f}"
        out.append(f"| {r['where']} | {r['metric']} | {r['model']} | {r['method']} | {_lr(r['lr'])} | "
                   f"{_fmt(r['published'])} | {ours} | {n} | {difference} | {r['status']} |")
    return "\n".join(out) + "\n"


def build(grouped_csv: str | Path, published_path: str | Path, domain: str, general: list[str],
          experiment: str) -> tuple[pd.DataFrame, str]:
    """(the comparison table, its Markdown) from the grouped trade-off table and a published-numbers file."""
    grouped = pd.read_csv(grouped_csv)
    published = load_published(published_path)
    table = compare(grouped, published, domain, general)
    return table, to_markdown(table, caption(table, grouped, published, domain),
                              f"Published numbers beside ours ({experiment})")


def published_path(value: str, config_file: str) -> Path:
    """The config's `published:` path, relative to the config file's folder (as domain.path is)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(config_file).resolve().parent / path
