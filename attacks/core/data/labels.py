"""Class labels: a dataset stores each clip's label as an index into its list of class names.

An index the list does not name (a dataset whose names were never given, or a label a
recognizer predicts beyond them) is spelt by one rule, so the admin, the reports and
the exports name such a class the same way.
"""
from __future__ import annotations


def label_name(class_names, label: int) -> str:
    """The name of class `label`, or the index itself as text when the list has no such entry."""
    names = class_names or []
    return names[label] if 0 <= label < len(names) else str(label)
