"""Robustness report tables, their statistics and rendering, and figures."""
