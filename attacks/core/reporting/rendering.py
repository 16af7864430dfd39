"""The report's tables as files and text: CSV per table, Markdown and plain-text
renderings, JSON for storage with the report row and HTML for admin."""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from attacks.core.reporting.records import MISSING, is_missing


def write_tables(tables: dict[str, pd.DataFrame], out_dir) -> list[Path]:
    """Each table as <name>.csv in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in tables.items():
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=df.index.name is not None)
        paths.append(path)
    return paths


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (floats rounded, NaN as '–')."""
    cols = [str(c) for c in df.columns]
    if df.index.name is not None:
        cols = [str(df.index.name)] + cols
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        cells = ([idx] if df.index.name is not None else []) + list(row)
        lines.append("| " + " | ".join(_md_escape(_format(c, digits)) for c in cells) + " |")
    return "\n".join(lines)


def markdown_report(name: str, filters: dict, tables: dict[str, pd.DataFrame], figures, out_dir) -> str:
    """The report as Markdown: filters, each table under its title, figures linked
    relative to `out_dir`."""
    out_dir = Path(out_dir)
    parts = [f"# {name}", "", "Filters: " + (", ".join(f"{k}={v}" for k, v in filters.items() if v) or "none"), ""]
    for key, df in tables.items():
        parts += [f"## {table_title(key)}", "", f"`{key}.csv`", ""]
        parts += [markdown_table(df) if len(df) else "_no rows_", ""]
    if figures:
        parts += ["## Figures", ""]
        for fig in figures:
            fig = Path(fig)
            rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
            parts += [f"![{fig.stem}]({rel.as_posix()})", ""]
    return "\n".join(parts)


def text_tables(tables: dict[str, pd.DataFrame]) -> str:
    """Every table as plain text, for the terminal."""
    blocks = []
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_rows", 500,
                           "display.float_format", "{:.4g}".format):
        for key, df in tables.items():
            title = table_title(key)
            blocks.append(f"== {title} [{key}]\n" + (df.to_string(index=df.index.name is not None)
                                                    if len(df) else "(no rows)"))
    return "\n\n".join(blocks)


def json_tables(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict]]:
    """Tables as lists of plain dicts (numpy scalars unwrapped, NaN as None) for a JSONField."""
    out = {}
    for key, df in tables.items():
        df = df.reset_index() if df.index.name is not None else df
        out[key] = [{str(k): _json_value(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]
    return out


def tables_html(tables: dict[str, list[dict]]) -> str:
    """Stored (JSON) tables as escaped HTML, for the admin page of a report."""
    parts = []
    for key, rows in tables.items():
        parts.append(f"<h3>{html.escape(table_title(key))}</h3>")
        if not rows:
            parts.append("<p>no rows</p>")
            continue
        cols = list(dict.fromkeys(c for r in rows for c in r))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_format(r.get(c), 4))}</td>" for c in cols) + "</tr>"
                       for r in rows)
        parts.append(f'<table class="robustness-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    return "\n".join(parts)


def table_title(key: str) -> str:
    """A human title for a table's file stem."""
    if key.startswith("table3_transfer_"):
        attack = key.removeprefix("table3_transfer_").removesuffix("_long").upper()
        if key.endswith("_long"):
            return f"Table 3 ({attack}, long form with counts)"
        return f"Table 3: transfer of SMART {attack} samples (rows source, columns target; diagonal white box)"
    return TABLE_TITLES.get(key, key)


TABLE_TITLES = {
    "table1": "Table 1: success rate of SMART (AB, AB-N, SA) per recognizer and dataset",
    "table1_long": "Table 1 (long form, counts)",
    "skipped": "Clips skipped because the recognizer misclassified them before the attack",
    "table4": "Table 4 upper: methods compared (metrics over each method's successes; Wilson 95% interval)",
    "table4_paper": "Table 4 upper in the paper's layout: AB success of SMART, IAA and CIASA (calibrated budgets)",
    "table4_pairwise": "Table 4 upper at matched success, pairwise: SMART against each method over the clips both "
                       "fooled",
    "table3": "Table 3 in the paper's layout: transfer success AB / AB5 (rows source, columns target)",
    "calibration": "Budget calibration: IAA / CIASA epsilon tuned to the reference (SMART) run's success",
    "per_class": "Success per true class (Wilson 95% interval)",
    "budget_sweep": "Success against the budget (epsilon for IAA / CIASA, lr for SMART)",
    "success_curves_long": "Success against iteration (long form, plotted in success_curves_*.png)",
    "vulnerability": "Section 4.6: joint vulnerability correlations (summary)",
}


def _format(value, digits: int) -> str:
    if is_missing(value) and not isinstance(value, str):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _json_value(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v
