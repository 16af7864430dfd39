"""One module per study kind (jsPsych-style), and the registry the rest of the code asks.

A protocol module declares everything that differs between kinds, so the generic code
(models, assignment, views, reports, exports, admin) never names a kind:

- `KIND`, `TITLE`; `Parameters`, a frozen dataclass of its typed configuration keys with
  defaults and checks (subclass `base.Parameters`); `DEFAULTS` and `validate` come from it;
- what the participant sees: `PROMPT`, `VIEW_LABELS`, `OPTIONS_AFTER_PLAYBACK` and the
  instructions page, templates/participant/instructions/<KIND>.html unless
  `INSTRUCTIONS_TEMPLATE` names another (the one file a new kind needs beside its module);
- how it builds a participant's trials: `pool_items`, `build_trials`, `TRIALS_PER_ITEM`,
  `BROKEN_VIEW` (catch trials);
- what it records and reports: `RECORDS` (answer values), `trial_columns` and
  `COLUMN_NOTES` (trials.csv and its codebook), `analyse`, `figures`, the per-motion human
  verdict (`VERDICT`, `VERDICT_MEANING`, `verdict_rows`) and `TABLE4`.

Optional names (see `base.OPTIONAL`) are filled in by `register`, which also refuses a
module that lacks a required one; adding a kind is its module, a `register` call (below,
for the built-in ones) and its instructions template.
"""
from __future__ import annotations

import copy

from studies.protocols import base

REQUIRED = ("KIND", "TITLE", "Parameters", "PROMPT", "RECORDS", "pool_items", "build_trials", "analyse", "figures")

PROTOCOLS: dict = {}
KINDS: list[str] = []  # in registration order; kept in step with PROTOCOLS


def register(module):
    """Add a protocol module to the registry (its optional names filled in); returns it."""
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise TypeError(f"protocol module {module.__name__} lacks {', '.join(missing)}")
    if not issubclass(module.Parameters, base.Parameters):
        raise TypeError(f"{module.__name__}.Parameters must subclass studies.protocols.base.Parameters")
    if hasattr(module, "VERDICT") != hasattr(module, "verdict_rows"):
        raise TypeError(f"{module.__name__} must declare VERDICT and verdict_rows together")
    for name, default in base.OPTIONAL.items():
        if not hasattr(module, name):
            setattr(module, name, copy.deepcopy(default))  # a list or dict of its own
    defaults = {"INSTRUCTIONS_TEMPLATE": base.instructions_template(module.KIND),
                "DEFAULTS": module.Parameters.defaults(), "validate": module.Parameters.validate,
                "trial_columns": base.trial_columns, "verdict_rows": base.verdict_rows}
    for name, default in defaults.items():
        if not hasattr(module, name):
            setattr(module, name, default)
    if module.KIND not in PROTOCOLS:
        KINDS.append(module.KIND)
    PROTOCOLS[module.KIND] = module
    return module


def unregister(kind: str):
    """Take a kind out of the registry again (tests that register one of their own)."""
    PROTOCOLS.pop(kind, None)
    if kind in KINDS:
        KINDS.remove(kind)


def get_protocol(kind: str):
    try:
        return PROTOCOLS[kind]
    except KeyError:
        raise ValueError(f"unknown study kind {kind!r}; choose one of {', '.join(KINDS)}") from None


def kind_choices() -> list[tuple[str, str]]:
    """`Study.kind`'s choices, read from the registry when asked (a callable, so that a new
    kind needs no migration)."""
    return [(kind, kind) for kind in KINDS]


from studies.protocols import comparison, deceitfulness, indistinguishability, naturalness  # noqa: E402

for _module in (deceitfulness, naturalness, indistinguishability, comparison):
    register(_module)
