"""The tables as standalone HTML pages, the view of each table in `snakemake --report`.

Snakemake's report (9.x) shows images, PDFs and HTML pages inline (an HTML page in an iframe); any other file
(.md, .tex, .csv) is only a link to download. So each table the report lists is also written as one HTML page:
its title, the table as the Markdown/LaTeX views show it, and its caption. The page carries its own style (the
iframe does not inherit the report's)."""

from __future__ import annotations

import html
import re

import pandas as pd

INTERVAL = re.compile(r"^(?P<value>\S+) (?P<interval>\[[^\]]*\]\S*)$")  # "0.52 [0.41, 0.63]*", as the tables write it

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 1rem; color: #1e293b; background: #fff; }
h1 { font-size: 1.15rem; margin: 0 0 .75rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e2e8f0; text-align: right; white-space: nowrap; }
th { background: #f1f5f9; border-bottom: 2px solid #94a3b8; position: sticky; top: 0; vertical-align: bottom;
     white-space: normal; min-width: 4rem; }
td.text, th.text { text-align: left; }
tbody tr:nth-child(even) { background: #f8fafc; }
tbody tr:hover { background: #e0f2fe; }
span.ci { font-size: .75rem; color: #64748b; }
p.caption { font-size: .85rem; line-height: 1.45; max-width: 60rem; margin-top: .9rem; }
"""


def table_html(frame: pd.DataFrame, title: str, caption: str = "", float_format: str | None = None) -> str:
    """A standalone HTML page: `title`, `frame` as a table (no index; text columns left-aligned, numbers and
    intervals right-aligned, an interval under its score), `caption` under it. Everything is escaped."""
    text_columns = [c for c in frame.columns if _is_text(frame[c])]
    head = "".join(f'<th class="{"text" if c in text_columns else "num"}">{html.escape(str(c))}</th>'
                   for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = "".join(f'<td class="{"text" if c in text_columns else "num"}">{_cell(v, float_format)}</td>'
                        for c, v in zip(frame.columns, values))
        rows.append(f"<tr>{cells}</tr>")
    body = "\n".join(rows)
    caption_html = f'<p class="caption">{html.escape(caption)}</p>\n' if caption else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>\n'
        f"{caption_html}</body>\n</html>\n"
    )


def _is_text(column: pd.Series) -> bool:
    """A column of names (model, method, law...), as opposed to numbers or formatted scores ("0.52 [0.4, 0.6]")."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    values = column.dropna().astype(str)
    return not values.str.match(r"^\s*[-−+]?(\d|\.\d|—|nan)").all()


def _cell(value, float_format: str | None) -> str:
    """A cell's escaped HTML; a score with its interval ("0.52 [0.41, 0.63]*") on two lines, the interval smaller."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if float_format and isinstance(value, float):
        return html.escape(format(value, float_format))
    text = str(value)
    interval = INTERVAL.match(text)
    if interval:
        return f'{html.escape(interval["value"])}<br><span class="ci">{html.escape(interval["interval"])}</span>'
    return html.escape(text)
