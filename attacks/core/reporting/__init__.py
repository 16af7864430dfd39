"""The robustness report from plain records (no Django), one module per concern:

- `records`: the columns of runs / samples / transfers and which run represents a cell;
- `tables`: Table 1, skipped clips, Table 3 transfer matrices, Table 4 upper, and
  `robustness_tables`, which builds them all;
- `protocol`: the paper's comparison protocol (Wilson intervals, matched-success pairs,
  calibrations, success curves, per-class success, budget sweeps);
- `correlations`: per-joint motion features and their cross-correlations;
- `rendering`: CSV, Markdown, text, JSON and HTML renderings of the tables;
- `figures`: stick-figure strips, heat maps, bar charts and `save_figure`.

`attacks.services.reporting` feeds it from the database. The names below are the public
API; import them from here or from the module that holds them.
"""
from attacks.core.reporting.correlations import (
    CORRELATION_KINDS, correlation_frame, correlation_summary, cross_correlation, joint_motion_features,
    vulnerability_correlations,
)
from attacks.core.reporting.figures import correlation_heatmap, save_figure, stick_figure_strip, success_bar_chart
from attacks.core.reporting.records import (
    METHOD_ORDER, METRICS, MISSING, RUN_COLUMNS, SAMPLE_COLUMNS, TRANSFER_COLUMNS, attack_name, frame, options_label,
    select_runs,
)
from attacks.core.reporting.rendering import (
    TABLE_TITLES, json_tables, markdown_report, markdown_table, table_title, tables_html, text_tables, write_tables,
)
from attacks.core.reporting.tables import (
    method_comparison, robustness_tables, skipped_table, success_table, table1, transfer_matrix, transfer_table,
)

__all__ = [
    "CORRELATION_KINDS", "METHOD_ORDER", "METRICS", "MISSING", "RUN_COLUMNS", "SAMPLE_COLUMNS", "TABLE_TITLES",
    "TRANSFER_COLUMNS", "attack_name", "correlation_frame", "correlation_heatmap", "correlation_summary",
    "cross_correlation", "frame", "joint_motion_features", "json_tables", "markdown_report", "markdown_table",
    "method_comparison", "options_label", "robustness_tables", "save_figure", "select_runs", "skipped_table",
    "stick_figure_strip", "success_bar_chart", "success_table", "table1", "table_title", "tables_html",
    "text_tables", "transfer_matrix", "transfer_table", "vulnerability_correlations", "write_tables",
]
