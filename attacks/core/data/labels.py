"""Class labels: a dataset stores each clip's label as an index into its list of class names.

An index the list does not name (a dataset whose names were never given, or a label a
recognizer predicts beyond them) is spelt by one rule, so the admin, the reports and
the exports name such a class the same way.
"""
from __future__ import annotations


def label_name(class_names, label: int, unnamed: str = "{}") -> str:
    """The name of class `label`, or `unnamed` filled with the index when the list has no
    such entry: the index itself for researchers (admin, reports, exports); what
    participants read says "class 3" (`PARTICIPANT_UNNAMED`), never a bare number."""
    names = class_names or []
    return names[label] if 0 <= label < len(names) else unnamed.format(label)


PARTICIPANT_UNNAMED = "class {}"
