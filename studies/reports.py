"""A study's results: answers gathered into tables, the protocol's statistics, figures
and exports (CSV one row per trial / per participant, JSON).

`build_report` is what the `study_report` command and the admin call.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .models import Study, Trial
from .statistics import finite

TRIAL_COLUMNS = ["study", "participant", "participant_status", "prolific_pid", "position", "trial", "is_practice",
                 "condition", "method", "left_method", "right_method", "left_shows", "right_shows", "dataset",
                 "recognizer", "strategy", "clip", "sample", "truth", "truth_name", "after", "after_name",
                 "options", "answer", "chosen_name", "correct", "is_correct", "response_time_ms",
                 "playback_duration_ms", "frames_drawn", "late_frames", "page_hidden", "submitted_at", "screened_out"]


def trial_frame(study: Study, answered_only: bool = False) -> pd.DataFrame:
    """One row per trial (long format) with the design facts, the answer and the
    participant's screening flag."""
    qs = Trial.objects.filter(participant__study=study).order_by("participant_id", "position")
    if answered_only:
        qs = qs.filter(response__isnull=False)
    rows = list(qs.values(
        "participant_id", "participant__status", "participant__prolific_pid", "position", "key", "is_practice",
        "condition", "design", "options", "correct", "left__variant", "right__variant", "left__sample_id",
        "left__sample__clip__dataset__name", "left__sample__clip__dataset__class_names",
        "left__sample__recognizer__name", "left__sample__strategy", "left__sample__clip__index",
        "response__answer", "response__is_correct", "response__response_time_ms", "response__playback",
        "response__submitted_at"))
    out = []
    for r in rows:
        design = r["design"] or {}
        names = r["left__sample__clip__dataset__class_names"] or []
        truth, after = design.get("truth"), design.get("after")
        answer = r["response__answer"]
        chosen = next((o["text"] for o in r["options"] if o["value"] == answer), None) \
            if study.kind == "deceitfulness" else None
        playback = r["response__playback"] or {}
        out.append({
            "study": study.slug, "participant": r["participant_id"], "participant_status": r["participant__status"],
            "prolific_pid": r["participant__prolific_pid"], "position": r["position"], "trial": r["key"],
            "is_practice": r["is_practice"], "condition": r["condition"],
            "method": None if study.kind == "naturalness" else design.get("right_method") or design.get("left_method"),
            "left_method": design.get("left_method"), "right_method": design.get("right_method"),
            "left_shows": r["left__variant"], "right_shows": r["right__variant"],
            "dataset": r["left__sample__clip__dataset__name"], "recognizer": r["left__sample__recognizer__name"],
            "strategy": r["left__sample__strategy"], "clip": r["left__sample__clip__index"],
            "sample": r["left__sample_id"], "truth": truth,
            "truth_name": names[truth] if truth is not None and truth < len(names) else None,
            "after": after, "after_name": names[after] if after is not None and after < len(names) else None,
            "options": "|".join(o["text"] for o in r["options"]), "answer": answer, "chosen_name": chosen,
            "correct": r["correct"] or None, "is_correct": r["response__is_correct"],
            "response_time_ms": r["response__response_time_ms"],
            "playback_duration_ms": playback.get("measured_duration_ms"), "frames_drawn": playback.get("frames_drawn"),
            "late_frames": playback.get("late_frames"), "page_hidden": playback.get("page_hidden"),
            "submitted_at": r["response__submitted_at"].isoformat() if r["response__submitted_at"] else None,
        })
    frame = pd.DataFrame(out, columns=[c for c in TRIAL_COLUMNS if c != "screened_out"])
    return frame


def participant_frame(study: Study, screening: pd.DataFrame | None = None) -> pd.DataFrame:
    rows = []
    for p in study.participants.order_by("id"):
        rows.append({"participant": p.id, "status": p.status, "prolific_pid": p.prolific_pid,
                     "prolific_study_id": p.prolific_study_id, "prolific_session_id": p.prolific_session_id,
                     "consent_at": p.consent_at.isoformat(), "started_at": p.started_at.isoformat(),
                     "completed_at": p.completed_at.isoformat() if p.completed_at else None,
                     "trials": p.trials.count(), "answered": p.responses.count(),
                     "browser": json.dumps(p.browser), "screen": json.dumps(p.screen)})
    frame = pd.DataFrame(rows, columns=["participant", "status", "prolific_pid", "prolific_study_id",
                                        "prolific_session_id", "consent_at", "started_at", "completed_at", "trials",
                                        "answered", "browser", "screen"])
    if screening is not None and not screening.empty:
        frame = frame.merge(screening[["participant", "sensitivity_trials", "sensitivity_accuracy", "passed"]],
                            on="participant", how="left")
        frame["screened_out"] = frame["passed"].eq(False)
        frame = frame.drop(columns="passed")
    else:
        frame["screened_out"] = False
    return frame


def analyse(study: Study) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(statistics, trial table, participant table) of a study's answered trials."""
    trials = trial_frame(study)
    answered = trials[trials["answer"].notna()].copy()
    answered["is_correct"] = answered["is_correct"].astype("boolean").fillna(False).astype(bool)
    answered["is_practice"] = answered["is_practice"].astype(bool)
    config = study.config
    if answered.empty:
        stats = {}
        screening = None
    else:
        stats = study.protocol.analyse(answered, config)
        screening = pd.DataFrame(stats["screening"]) if "screening" in stats else None
    participants = participant_frame(study, screening)
    flagged = set(participants.loc[participants["screened_out"], "participant"])
    trials["screened_out"] = trials["participant"].isin(flagged)
    summary = {"study": study.slug, "name": study.name, "kind": study.kind, "status": study.status,
               "configuration": {k: v for k, v in config.items()}, "progress": study.progress(),
               "trials_answered": int(len(answered)), "statistics": _clean(stats)}
    return summary, trials, participants


def build_report(study: Study, out_dir: str | Path | None = None) -> dict:
    """Statistics of a study; with `out_dir`, also writes report.json, trials.csv,
    participants.csv (UTF-8 with BOM) and the figures, listed under `files`."""
    summary, trials, participants = analyse(study)
    figures = study.protocol.figures(summary["statistics"]) if summary["statistics"] else {}
    summary["figures"] = sorted(figures)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"trials.csv": trials_csv(trials), "participants.csv": participants_csv(participants)}
        for name, data in {**files, **figures}.items():
            (out / name).write_bytes(data)
        summary["files"] = sorted([*files, *figures, "report.json"])
        (out / "report.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary


def trials_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8-sig")


def participants_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8-sig")


def _clean(value):
    """Recursively turn numpy scalars and non-finite floats into JSON-friendly values."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return finite(value)


