"""One module per study kind (jsPsych-style): each declares its configuration
(`DEFAULTS`, `validate`), how it builds a participant's trials (`pool_items`,
`build_trials`), what it records (`RECORDS`, `PROMPT`) and how it is analysed
(`analyse`, `figures`)."""
from studies.protocols import comparison, deceitfulness, indistinguishability, naturalness

PROTOCOLS = {m.KIND: m for m in (deceitfulness, naturalness, indistinguishability, comparison)}
KINDS = list(PROTOCOLS)


def get_protocol(kind: str):
    try:
        return PROTOCOLS[kind]
    except KeyError:
        raise ValueError(f"unknown study kind {kind!r}; choose one of {', '.join(KINDS)}") from None
