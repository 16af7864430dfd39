"""A study's results: answers gathered into tables, the exclusion rules, the protocol's
statistics, figures and exports (CSV one row per trial / per participant, JSON).

`build_report` is what the `study_report` command and the admin call.

Who and what is analysed (every exclusion is counted, by reason, under `exclusions`):
- participants: researcher tests (`is_test`) never; unfinished participations
  (active, abandoned) only with `include_partial`; those screened out (this study's
  sensitivity screen, or a study of their series) and those below `catch_threshold` on
  their catch trials are excluded by rule, their data kept and flagged;
- trials of the remaining participants: dropped when the playback log shows a hidden
  page, late frames above `max_late_frame_share` of the frames drawn, a measured
  duration off the expected one by more than `max_duration_error` (a share; expected:
  the server's playback plan, else the player's own figure), or when the server
  flagged the answer 'early' (sent before the playback could have ended). A log without
  the figures a rule needs cannot break that rule.
Catch trials decide the catch rule (only those the trial rules keep: a participant left
with none is not judged by it) and are never part of a protocol's statistics.

Exports name participants by their pseudonym (the PROLIFIC_PID only in participants.csv)
and escape every text cell a spreadsheet would run as a formula.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from studies.core import statistics
from studies.models import Participant, Study, Trial
from studies.protocols.base import CATCH, SENSITIVITY
from studies.core.statistics import finite

TRIAL_COLUMNS = ["study", "participant", "participant_status", "position", "trial", "is_practice",
                 "condition", "method", "left_method", "right_method", "left_shows", "right_shows", "dataset",
                 "recognizer", "strategy", "clip", "sample", "right_sample", "truth", "truth_name", "after", "after_name",
                 "options", "answer", "chosen_name", "correct", "is_correct", "response_time_ms",
                 "playback_duration_ms", "expected_duration_ms", "frames_drawn", "late_frames", "page_hidden",
                 "effective_fps", "showings", "flags", "submitted_at", "trial_excluded", "participant_excluded",
                 "screened_out"]
TRIAL_REASONS = ("page_hidden", "late_frames", "duration", "early")
PARTICIPANT_REASONS = ("test", "partial", "screened_out", "catch")
FINISHED = (Participant.COMPLETED, Participant.SCREENED_OUT)
# Cells a spreadsheet may run as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def trial_frame(study: Study, answered_only: bool = False, simulated: bool = False) -> pd.DataFrame:
    """One row per trial (long format) with the design facts, the answer and its
    playback log; `participant` is the pseudonym. Real participants' trials, or with
    `simulated` only those of simulated participants (never both together)."""
    qs = Trial.objects.filter(participant__study=study, participant__is_simulated=simulated) \
        .order_by("participant_id", "position")
    if answered_only:
        qs = qs.filter(response__isnull=False)
    protocol = study.protocol
    rows = list(qs.values(
        "participant__pseudonym", "participant__status", "position", "key", "is_practice",
        "condition", "design", "options", "correct", "left__variant", "right__variant", "left__sample_id", "right__sample_id",
        "left__sample__clip__dataset__name", "left__sample__clip__dataset__class_names",
        "left__sample__recognizer__name", "left__sample__strategy", "left__sample__clip__index",
        "playback_plan", "response__answer", "response__is_correct", "response__response_time_ms",
        "response__playback", "response__flags", "response__submitted_at"))
    out = []
    for r in rows:
        design = r["design"] or {}
        names = r["left__sample__clip__dataset__class_names"] or []
        truth, after = design.get("truth"), design.get("after")
        answer = r["response__answer"]
        own = protocol.trial_columns(design, r["options"], answer)  # method, chosen_name
        playback = r["response__playback"] or {}
        plan = r["playback_plan"] or {}
        out.append({
            "study": study.slug, "participant": r["participant__pseudonym"],
            "participant_status": r["participant__status"], "position": r["position"], "trial": r["key"],
            "is_practice": r["is_practice"], "condition": r["condition"],
            "method": own["method"],
            "left_method": design.get("left_method"), "right_method": design.get("right_method"),
            "left_shows": r["left__variant"], "right_shows": r["right__variant"],
            "dataset": r["left__sample__clip__dataset__name"], "recognizer": r["left__sample__recognizer__name"],
            "strategy": r["left__sample__strategy"], "clip": r["left__sample__clip__index"],
            "sample": r["left__sample_id"], "right_sample": r["right__sample_id"], "truth": truth,
            "truth_name": names[truth] if truth is not None and truth < len(names) else None,
            "after": after, "after_name": names[after] if after is not None and after < len(names) else None,
            "options": "|".join(o["text"] for o in r["options"]), "answer": answer, "chosen_name": own["chosen_name"],
            "correct": r["correct"] or None, "is_correct": r["response__is_correct"],
            "response_time_ms": r["response__response_time_ms"],
            "playback_duration_ms": playback.get("measured_duration_ms"),
            "expected_duration_ms": _expected_ms(plan, playback), "frames_drawn": playback.get("frames_drawn"),
            "late_frames": playback.get("late_frames"), "page_hidden": playback.get("page_hidden"),
            "effective_fps": _first(playback.get("effective_fps", plan.get("effective_fps"))),
            "showings": playback.get("showings", plan.get("showings")),
            "flags": "|".join(r["response__flags"] or []) or None,
            "submitted_at": r["response__submitted_at"].isoformat() if r["response__submitted_at"] else None,
        })
    return pd.DataFrame(out, columns=TRIAL_COLUMNS[:TRIAL_COLUMNS.index("trial_excluded")])


def _expected_ms(plan: dict, playback: dict):
    """Expected playback duration (ms): the server's plan, else what the player reported."""
    if plan.get("total_seconds") is not None:
        return float(plan["total_seconds"]) * 1000
    return playback.get("expected_duration_ms")


def _first(value):
    return value[0] if isinstance(value, list) and value else value


def trial_exclusions(frame: pd.DataFrame, config: dict) -> pd.Series:
    """Per trial row, the exclusion reasons ('|'-joined, '' when kept) under the study's
    rules (module docstring); units: a share of frames drawn, a share of the expected
    duration."""
    def reasons(r) -> str:
        out = []
        if isinstance(r.page_hidden, (bool, np.bool_)) and r.page_hidden:
            out.append("page_hidden")
        frames, late = _number(r.frames_drawn), _number(r.late_frames)
        if frames and late is not None and late / frames > config["max_late_frame_share"]:
            out.append("late_frames")
        expected, measured = _number(r.expected_duration_ms), _number(r.playback_duration_ms)
        if expected and measured is not None and abs(measured - expected) / expected > config["max_duration_error"]:
            out.append("duration")
        if isinstance(r.flags, str) and "early" in r.flags.split("|"):
            out.append("early")
        return "|".join(out)
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    return pd.Series([reasons(r) for r in frame.itertuples()], index=frame.index, dtype=object)


def _number(value):
    """A finite number, or None (missing, NaN, not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def participant_frame(study: Study, screening: pd.DataFrame | None = None, simulated: bool = False) -> pd.DataFrame:
    """One row per participant: the pseudonym (the id used everywhere else), the external
    ids, status, consent, questionnaire and browser facts (real or, with `simulated`,
    simulated participants only)."""
    rows = []
    for p in study.participants.filter(is_simulated=simulated).order_by("id"):
        rows.append({"participant": p.pseudonym, "status": p.status, "is_test": p.is_test,
                     "prolific_pid": p.prolific_pid, "prolific_study_id": p.prolific_study_id,
                     "prolific_session_id": p.prolific_session_id, "consent_version": p.consent_version,
                     "consent_at": p.consent_at.isoformat(), "started_at": p.started_at.isoformat(),
                     "completed_at": p.completed_at.isoformat() if p.completed_at else None,
                     "trials": p.trials.count(), "answered": p.responses.count(),
                     "questionnaire": json.dumps(p.questionnaire), "browser": json.dumps(p.browser),
                     "screen": json.dumps(p.screen)})
    frame = pd.DataFrame(rows, columns=["participant", "status", "is_test", "prolific_pid", "prolific_study_id",
                                        "prolific_session_id", "consent_version", "consent_at", "started_at",
                                        "completed_at", "trials", "answered", "questionnaire", "browser", "screen"])
    for question in study.config.get("questionnaire", []):  # one column per question, beside the JSON
        frame[f"q_{question['name']}"] = [json.loads(q).get(question["name"]) for q in frame["questionnaire"]]
    if screening is not None and not screening.empty:
        frame = frame.merge(screening[["participant", "sensitivity_trials", "sensitivity_accuracy", "passed"]],
                            on="participant", how="left")
        frame["screened_out"] = frame["passed"].eq(False) | frame["status"].eq(Participant.SCREENED_OUT)
        frame = frame.drop(columns="passed")
    else:
        frame["screened_out"] = frame["status"].eq(Participant.SCREENED_OUT)
    return frame


def analyse(study: Study, include_partial: bool = False,
            simulated: bool = False) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(summary with statistics and exclusions, trial table, participant table).

    The tables keep every row (flagged with its exclusion reasons); the statistics use
    only what the rules keep (module docstring). `include_partial` lets unfinished
    participations in; `simulated` reports the simulated participants instead of the
    real ones (`simulate_participants`)."""
    config = study.config
    trials = trial_frame(study, simulated=simulated)
    trials["is_practice"] = trials["is_practice"].astype(bool)
    answered_all = trials[trials["answer"].notna()].copy()
    answered_all["is_correct"] = answered_all["is_correct"].astype("boolean").fillna(False).astype(bool)
    main_all = answered_all[~answered_all["is_practice"]]
    has_sensitivity = bool((main_all["condition"] == SENSITIVITY).any())
    screening = statistics.screening(main_all, config["screening_threshold"]) \
        if has_sensitivity and not main_all.empty else None
    participants = participant_frame(study, screening, simulated=simulated)

    # Participant rules: test, partial, screened out (order of the reasons' list).
    why = {p: [] for p in participants["participant"]}
    for r in participants.itertuples():
        if r.is_test:
            why[r.participant].append("test")
        if r.status not in FINISHED and not include_partial:
            why[r.participant].append("partial")
        if r.screened_out:
            why[r.participant].append("screened_out")
    # Trial rules, then the catch rule on the catch trials that survive them.
    trials["trial_excluded"] = trial_exclusions(trials, config)
    trials.loc[trials["is_practice"] | trials["answer"].isna(), "trial_excluded"] = ""
    answered_all["trial_excluded"] = trials.loc[answered_all.index, "trial_excluded"]
    valid = answered_all[(answered_all["trial_excluded"] == "") & ~answered_all["is_practice"]]
    catch = statistics.catch_accuracy(valid, config["catch_threshold"])
    for r in catch.itertuples():
        if not r.passed:
            why[r.participant].append("catch")
    reasons = {p: "|".join(v) for p, v in why.items()}
    participants["excluded"] = participants["participant"].map(reasons).fillna("")
    participants = participants.merge(catch.drop(columns="passed"), on="participant", how="left") \
        if not catch.empty else participants.assign(catch_trials=0, catch_correct=0, catch_accuracy=None)
    trials["participant_excluded"] = trials["participant"].map(reasons).fillna("")
    trials["screened_out"] = trials["participant"].map(dict(zip(participants["participant"],
                                                                participants["screened_out"]))).fillna(False)

    kept_people = {p for p, v in why.items() if not v}
    considered = main_all[main_all["participant"].isin(kept_people) & (main_all["condition"] != CATCH)]
    analysed = valid[valid["participant"].isin(kept_people) & (valid["condition"] != CATCH)] \
        .drop(columns="trial_excluded")
    stats = study.protocol.analyse(analysed, config) if not analysed.empty else {}
    exclusions = {
        "rules": {"include_partial": include_partial, "catch_threshold": config["catch_threshold"],
                  "max_late_frame_share": config["max_late_frame_share"],
                  "max_duration_error": config["max_duration_error"]},
        "participants": {"total": len(why), "analysed": len(kept_people), "excluded": len(why) - len(kept_people),
                         "by_reason": {k: sum(k in v for v in why.values()) for k in PARTICIPANT_REASONS}},
        "trials": _trial_counts(trials.loc[considered.index, "trial_excluded"], len(analysed)),
        "catch": catch.to_dict("records"),
    }
    summary = {"study": study.slug, "name": study.name, "kind": study.kind, "status": study.status,
               "configuration": {k: v for k, v in config.items()}, "progress": study.progress(),
               "trials_answered": int(len(answered_all)), "trials_analysed": int(len(analysed)),
               "exclusions": _clean(exclusions), "statistics": _clean(stats)}
    return summary, trials, participants


def _trial_counts(reasons: pd.Series, analysed: int) -> dict:
    """Main (non-practice, non-catch) answered trials of the analysed participants: how
    many, how many dropped and why (a trial may break several rules)."""
    lists = [r.split("|") if r else [] for r in reasons]
    return {"total": len(lists), "analysed": analysed, "excluded": sum(1 for v in lists if v),
            "by_reason": {k: sum(k in v for v in lists) for k in TRIAL_REASONS}}


def build_report(study: Study, out_dir: str | Path | None = None, include_partial: bool = False,
                 simulated: bool = False) -> dict:
    """Statistics of a study; with `out_dir`, also writes report.json, trials.csv,
    participants.csv, stimuli.csv (UTF-8 with BOM), codebook.csv, design.json, a
    Psych-DS-style copy (psychds/) and the figures, listed under `files`.
    `include_partial`: analyse unfinished participations too; `simulated`: report the
    simulated participants (and only them)."""
    summary, trials, participants = analyse(study, include_partial=include_partial, simulated=simulated)
    summary["simulated"] = simulated
    kept = analysed_rows(trials)
    verdicts_section, stimuli = human_verdicts(study, kept)
    summary["verdicts"] = _clean(verdicts_section)
    if study.protocol.TABLE4:
        summary["table4"] = _clean(table4(study, kept))
    figures = report_figures(study, summary)
    summary["figures"] = sorted(figures)
    if out_dir is not None:
        from studies import exports
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tables = {"trials.csv": trials, "participants.csv": participants, "stimuli.csv": stimuli}
        book = exports.codebook(study, tables)
        files = {name: _csv(frame) for name, frame in tables.items()}
        files["codebook.csv"] = _csv(book)
        files["design.json"] = json.dumps(_clean(exports.design(study, simulated)), indent=2, default=str).encode()
        for name, data in {**files, **figures}.items():
            (out / name).write_bytes(data)
        psych = exports.write_psych_ds(out, study, tables, book, _csv)
        summary["files"] = sorted([*files, *figures, *psych, "report.json"])
        (out / "report.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary


def report_figures(study: Study, summary: dict) -> dict[str, bytes]:
    """PNG figures of a report: the protocol's own, and the human verdict per metric."""
    figures = study.protocol.figures(summary["statistics"]) if summary["statistics"] else {}
    verdicts = summary.get("verdicts") or {}
    if verdicts.get("univariate"):
        from studies.core.figures import odds_ratio_forest
        figures[f"{study.kind}_verdicts_by_metric.png"] = odds_ratio_forest(
            verdicts["univariate"], f"{verdicts['outcome'].replace('_', ' ')}: odds ratio per SD")
    return figures


def analysed_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The answered main trials the exclusion rules keep (catch trials left out)."""
    answered = trials["answer"].notna() & ~trials["is_practice"].astype(bool)
    kept = (trials["trial_excluded"].fillna("") == "") & (trials["participant_excluded"].fillna("") == "")
    out = trials[answered & kept & (trials["condition"] != CATCH)].copy()
    out["is_correct"] = out["is_correct"].astype("boolean").fillna(False).astype(bool)
    return out


def sample_metrics(ids) -> pd.DataFrame:
    """The objective perceptual metrics of these AdversarialSamples, indexed by id."""
    from attacks.models import AdversarialSample

    from studies.core.verdicts import METRICS
    rows = AdversarialSample.objects.filter(id__in=[int(i) for i in ids]).values(
        "id", "recognizer__name", "clip__dataset__name", "clip__index", *METRICS)
    frame = pd.DataFrame(list(rows), columns=["id", "recognizer__name", "clip__dataset__name", "clip__index",
                                              *METRICS])
    return frame.rename(columns={"recognizer__name": "recognizer", "clip__dataset__name": "dataset",
                                 "clip__index": "clip"}).set_index("id")


def human_verdicts(study: Study, kept: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Every analysed judgement of an attacked motion joined to that motion's objective
    metrics (`studies.core.verdicts`): the models, and the per-stimulus table."""
    from studies.core import verdicts
    outcome = study.protocol.VERDICT
    rows = verdicts.outcome_rows(kept, study.protocol)
    joined = verdicts.join_metrics(rows, sample_metrics(rows["sample"].dropna().unique()))
    stimuli = verdicts.stimulus_table(joined, outcome) if not joined.empty else pd.DataFrame(
        columns=["sample", "method", "recognizer", "dataset", "clip", *verdicts.METRICS, "judgements",
                 "participants", f"share_{outcome}"])
    return verdicts.verdict_models(joined, outcome), stimuli


def table4(study: Study, kept: pd.DataFrame) -> list[dict]:
    """The paper's Table 4 (upper) per recognizer and method: the attack's success rate
    over the samples the study draws from (its dataset / recognizer / strategy / method
    filters, successful or not) beside the share of its attacked motions people judged
    unchanged (indistinguishable), with participant-aware intervals."""
    from studies.assignment import matching_samples
    config = study.config
    candidates = pd.DataFrame(list(matching_samples(study, config).values("recognizer__name", "method", "success")),
                              columns=["recognizer__name", "method", "success"])
    attacked = kept[~kept["condition"].isin([SENSITIVITY, CATCH])].copy()
    attacked["unchanged"] = attacked["answer"] == "unchanged"
    rows = []
    for (recognizer, method), part in candidates.groupby(["recognizer__name", "method"], sort=True):
        judged = attacked[(attacked["recognizer"] == recognizer) & (attacked["method"] == method)]
        success = statistics.wilson_interval(int(part["success"].sum()), len(part))
        human = statistics.rate_row(judged, "unchanged") if len(judged) else statistics.wilson_interval(0, 0)
        rows.append({"recognizer": recognizer, "method": method, "attack_success": success["rate"],
                     "attack_success_low": success["low"], "attack_success_high": success["high"],
                     "samples": success["n"], "indistinguishable": human["rate"], "indistinguishable_low":
                     human["low"], "indistinguishable_high": human["high"], "judgements": human["n"],
                     "indistinguishable_boot_low": human.get("boot_low"),
                     "indistinguishable_boot_high": human.get("boot_high")})
    return rows


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells that start like a formula (= + - @, tab, carriage return)
    carry a leading single quote, so a spreadsheet shows them instead of running them.
    Numbers stay numbers (a negative value is no formula)."""
    def escape(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):  # object or string columns
            out[column] = out[column].map(escape)
    return out


def trials_csv(frame: pd.DataFrame) -> bytes:
    return _csv(frame)


def participants_csv(frame: pd.DataFrame) -> bytes:
    return _csv(frame)


def _csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 with BOM (spreadsheets), CRLF rows (RFC 4180: a cell holding a bare carriage
    return is then quoted too), formula-like cells escaped."""
    return spreadsheet_safe(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


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


