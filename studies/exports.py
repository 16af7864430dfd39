"""What a study's export folder holds beside the tables, so an analysis can be re-run
elsewhere: a codebook of every exported column, the design (configuration and every
participant's trial list, answer key included), and a Psych-DS-style copy of the data.

Why: a CSV without its codebook is a puzzle for the next analyst, and statistics that
cannot be recomputed from the raw trials do not survive review. The codebook comes from
`COLUMNS` (one line per column, checked by a test against what the tables really hold)
and from each protocol's `RECORDS` (what its answer values mean), `COLUMN_NOTES` (what
its trials mean by a generic column) and `VERDICT_MEANING` (the stimuli's outcome share).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from studies.models import Study, Trial

# file -> column -> meaning. Types come from the data itself.
COLUMNS = {
    "trials.csv": {
        "study": "study slug",
        "participant": "participant pseudonym (the PROLIFIC_PID is only in participants.csv)",
        "participant_status": "active, completed, abandoned (timed out) or screened_out",
        "position": "0-based position in the participant's trial list (practice first)",
        "trial": "public trial key",
        "is_practice": "practice trial (feedback shown; never analysed)",
        "condition": "trial type: the attack method, 'sensitivity' (original vs original) or 'catch'",
        "method": "attack method of the attacked motion shown",
        "left_method": "method of the left motion ('original' for an unattacked one)",
        "right_method": "method of the right motion",
        "left_shows": "variant shown on the left: original or adversarial",
        "right_shows": "variant shown on the right",
        "dataset": "dataset of the source clip",
        "recognizer": "recognizer the sample was attacked against",
        "strategy": "attack strategy (ab, abn, sa)",
        "clip": "index of the source clip in its dataset",
        "sample": "AdversarialSample id of the left motion",
        "right_sample": "AdversarialSample id of the right motion (empty for one motion)",
        "truth": "ground-truth class index, where the trial's design records it",
        "truth_name": "ground-truth class name",
        "after": "class index the recognizer gives the attacked motion",
        "after_name": "class name the recognizer gives the attacked motion",
        "options": "option texts in display order, '|'-separated",
        "answer": "the answer value (protocol-specific, see the answer line of this codebook's note)",
        "chosen_name": "text of the chosen option, where the options are class labels",
        "correct": "answer key, where the trial has one",
        "is_correct": "answer equals the key",
        "response_time_ms": "ms from the answers unlocking to the answer",
        "playback_duration_ms": "playback duration the browser measured (rAF clock)",
        "expected_duration_ms": "planned playback duration (server plan)",
        "frames_drawn": "animation frames drawn during playback",
        "late_frames": "frames later than 1.5x the median frame interval",
        "page_hidden": "the page was hidden during a playback (which was then replayed)",
        "effective_fps": "motion frames per second on screen (recorded fps / slow motion)",
        "showings": "whole showings of the clip in the playback",
        "flags": "server findings, '|'-separated: 'early' = sent before the playback could have ended",
        "submitted_at": "answer time (ISO 8601, UTC)",
        "trial_excluded": "exclusion reasons of the trial, '|'-separated (page_hidden, late_frames, duration, "
                          "early); empty = kept",
        "participant_excluded": "exclusion reasons of the participant (test, partial, screened_out, catch)",
        "screened_out": "the participant failed the sensitivity screen (here or in their series)",
    },
    "participants.csv": {
        "participant": "participant pseudonym",
        "status": "active, completed, abandoned (timed out) or screened_out",
        "is_test": "researcher test participation",
        "prolific_pid": "PROLIFIC_PID from the study URL",
        "prolific_study_id": "STUDY_ID from the study URL",
        "prolific_session_id": "SESSION_ID from the study URL",
        "consent_version": "version of the consent text agreed to",
        "consent_at": "consent time (ISO 8601, UTC)",
        "started_at": "start time",
        "completed_at": "completion time",
        "trials": "trials assigned",
        "answered": "trials answered",
        "questionnaire": "all questionnaire answers as JSON (one q_* column per question as well)",
        "browser": "browser facts as JSON",
        "screen": "screen facts as JSON",
        "sensitivity_trials": "sensitivity (original vs original) trials answered",
        "sensitivity_accuracy": "share of sensitivity trials answered 'unchanged'",
        "screened_out": "failed the sensitivity screen",
        "excluded": "exclusion reasons, '|'-separated; empty = analysed",
        "catch_trials": "catch trials answered",
        "catch_correct": "catch trials answered right",
        "catch_accuracy": "share of catch trials answered right",
    },
    "stimuli.csv": {
        "sample": "AdversarialSample id of the judged motion",
        "method": "attack method", "recognizer": "recognizer attacked", "dataset": "dataset", "clip": "clip index",
        "mean_displacement": "mean joint displacement (m)", "max_displacement": "largest joint displacement (m)",
        "bone_length_error": "mean absolute bone-length change (m)",
        "velocity_deviation": "mean velocity deviation (m/s)", "acceleration_deviation":
            "mean acceleration deviation (m/s^2)", "jerk_deviation": "mean jerk deviation (m/s^3)",
        "judgements": "analysed judgements of this motion", "participants": "participants who judged it",
        # share_<VERDICT>: the protocol's VERDICT_MEANING (see `describe`)
    },
}


def describe(name: str, column: str, study: Study) -> str:
    """The codebook meaning of one exported column ('' when none is known)."""
    if column.startswith("q_"):
        questions = {q["name"]: q.get("label", q["name"]) for q in study.config.get("questionnaire", [])}
        return f"questionnaire: {questions.get(column[2:], column[2:])}"
    protocol = study.protocol
    if name == "stimuli.csv" and column == f"share_{protocol.VERDICT}":
        return protocol.VERDICT_MEANING
    meaning = COLUMNS.get(name, {}).get(column, "")
    if column == "answer" and name == "trials.csv":
        meaning = f"{meaning}: {protocol.RECORDS['answer']}"
    note = protocol.COLUMN_NOTES.get(name, {}).get(column)
    return f"{meaning}; {note}" if note else meaning


def codebook(study: Study, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per exported column: file, column, type (from the data), meaning."""
    rows = []
    for name, frame in tables.items():
        for column in frame.columns:
            rows.append({"file": name, "column": column, "type": _kind(frame[column]),
                         "meaning": describe(name, column, study)})
    return pd.DataFrame(rows, columns=["file", "column", "type", "meaning"])


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    values = series.dropna()
    if len(values) and values.map(lambda v: isinstance(v, bool)).all():
        return "boolean"
    if len(values) and values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
        return "number"
    return "string"


def design(study: Study, simulated: bool = False) -> dict:
    """The configuration and every participant's trial list as decided by the server
    (what each side showed, options in display order, the answer key, the playback
    plan), so the design can be audited or the analysis re-run elsewhere."""
    trials = Trial.objects.filter(participant__study=study, participant__is_simulated=simulated) \
        .select_related("participant", "left", "right").order_by("participant_id", "position")
    people: dict[str, dict] = {}
    for t in trials:
        person = people.setdefault(t.participant.pseudonym, {"participant": t.participant.pseudonym,
                                                             "seed": t.participant.seed, "trials": []})
        person["trials"].append({
            "position": t.position, "trial": t.key, "is_practice": t.is_practice, "condition": t.condition,
            "left": {"sample": t.left.sample_id, "variant": t.left.variant},
            "right": {"sample": t.right.sample_id, "variant": t.right.variant} if t.right else None,
            "options": t.options, "correct": t.correct, "design": t.design, "playback_plan": t.playback_plan})
    return {"study": study.slug, "kind": study.kind, "configuration": study.config,
            "participants": list(people.values())}


def write_psych_ds(out: Path, study: Study, tables: dict[str, pd.DataFrame], book: pd.DataFrame,
                   to_csv) -> list[str]:
    """A Psych-DS-style folder: dataset_description.json (schema.org Dataset, every
    variable described) and data/ files named by keyword-value pairs. Returns the paths
    written, relative to `out`."""
    root = out / "psychds"
    (root / "data").mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        target = root / "data" / f"study-{study.slug}_table-{name.removesuffix('.csv')}_data.csv"
        target.write_bytes(to_csv(frame))
        written.append(str(target.relative_to(out)))
    description = {
        "@context": "https://schema.org/", "@type": "Dataset", "name": study.name,
        "description": f"Perceptual study '{study.slug}' ({study.kind}) of adversarial skeleton motions: one row "
                       "per trial, per participant and per judged stimulus.",
        "variableMeasured": [{"@type": "PropertyValue", "name": f"{r.file.removesuffix('.csv')}.{r.column}",
                              "description": f"{r.meaning} ({r.type})"} for r in book.itertuples()],
    }
    (root / "dataset_description.json").write_text(json.dumps(description, indent=2), encoding="utf-8")
    written.append("psychds/dataset_description.json")
    return written
