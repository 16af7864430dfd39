"""The participation keys of a study's (or a series') configuration: a completion code and
redirect per outcome, the consent version, the questionnaire and the debrief text.

Plain Python, no ORM, so the protocols' configuration check (`protocols.base`) and the
series' check share it. Why per outcome: Prolific pays, rejects and counts a submission
by the code it comes back with, so a screened-out or timed-out participant must not come
back with the code of a completed one.
"""
from __future__ import annotations

import hashlib
import re
import secrets

from studies.core.errors import StudyInputError

# Outcomes that end a participation, in the order the admin lists them. 'no_consent' ends
# before any participation exists (the decline page); it gets a code only when configured.
COMPLETED, SCREENED_OUT, TIMED_OUT, NO_CONSENT = "completed", "screened_out", "timed_out", "no_consent"
OUTCOMES = (COMPLETED, SCREENED_OUT, TIMED_OUT, NO_CONSENT)
# Outcomes that always get a code, so the crowdsourcing platform tells them apart even
# where the researcher configured only the completed one.
CODED_OUTCOMES = (COMPLETED, SCREENED_OUT, TIMED_OUT)

PARTICIPATION_DEFAULTS = {
    "completion_codes": {},
    "redirect_urls": {},
    "consent_version": "",
    "questionnaire": [],
    "debrief_text": "",
}
PARTICIPATION_TYPES = {"completion_codes": dict, "redirect_urls": dict, "consent_version": str,
                       "questionnaire": list, "debrief_text": str}
QUESTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ParticipationConfigError(StudyInputError):
    """A participation key that cannot run; the message names the key."""


def validate_participation(out: dict, error=ParticipationConfigError) -> dict:
    """Check and complete the participation keys of a configuration in place.

    The single `completion_code` / `redirect_url` stay valid: they are the 'completed'
    outcome's (giving both forms with different values is an error). Outcomes without a
    redirect use `redirect_url`, whose `{code}` is replaced by the outcome's own code.
    """
    for key, expected in PARTICIPATION_TYPES.items():
        if not isinstance(out.get(key), expected):
            raise error(f"{key} must be of type {expected.__name__}, got {out.get(key)!r}")
    codes, redirects = dict(out["completion_codes"]), dict(out["redirect_urls"])
    for key, mapping in (("completion_codes", codes), ("redirect_urls", redirects)):
        unknown = sorted(set(mapping) - set(OUTCOMES))
        if unknown:
            raise error(f"{key} has unknown outcomes {', '.join(unknown)} (known: {', '.join(OUTCOMES)})")
        if not all(isinstance(v, str) for v in mapping.values()):
            raise error(f"{key} values must be strings")
    single = out.get("completion_code", "")
    if single and codes.get(COMPLETED) and codes[COMPLETED] != single:
        raise error("completion_code and completion_codes['completed'] differ; give one of them")
    if out.get("redirect_url") and redirects.get(COMPLETED) and redirects[COMPLETED] != out["redirect_url"]:
        raise error("redirect_url and redirect_urls['completed'] differ; give one of them")
    codes[COMPLETED] = single or codes.get(COMPLETED) or secrets.token_hex(4).upper()
    for outcome in CODED_OUTCOMES:
        # Derived from the completed code rather than drawn, so a configuration stored
        # before outcome codes existed yields the same codes on every read; one-way, so a
        # screened-out participant cannot work the completed code out from theirs.
        if not codes.get(outcome):
            codes[outcome] = hashlib.sha256(f"{codes[COMPLETED]}:{outcome}".encode()).hexdigest()[:8].upper()
    if len({codes[o] for o in CODED_OUTCOMES}) < len(CODED_OUTCOMES):
        raise error("completion_codes must differ between outcomes (the platform tells them apart by code)")
    out["completion_code"] = codes[COMPLETED]
    out["redirect_url"] = out.get("redirect_url") or redirects.get(COMPLETED, "")
    out["completion_codes"], out["redirect_urls"] = codes, redirects
    out["questionnaire"] = validate_questionnaire(out["questionnaire"], error)
    return out


def validate_questionnaire(questions: list, error=ParticipationConfigError) -> list[dict]:
    """Questions as [{name, label, choices: [{value, text}], required}]; a choice may be
    given as a plain string (its value and text)."""
    out, names = [], set()
    for i, q in enumerate(questions):
        if not isinstance(q, dict) or not {"name", "label", "choices"} <= set(q):
            raise error(f"questionnaire[{i}] must be an object with name, label and choices")
        unknown = sorted(set(q) - {"name", "label", "choices", "required"})
        if unknown:
            raise error(f"questionnaire[{i}] has unknown keys {', '.join(unknown)}")
        name = q["name"]
        if not isinstance(name, str) or not QUESTION_NAME.match(name) or name in names:
            raise error(f"questionnaire[{i}].name must be a unique lower-case identifier, got {name!r}")
        names.add(name)
        if not isinstance(q["label"], str) or not q["label"]:
            raise error(f"questionnaire[{i}].label must be a non-empty text")
        choices = [{"value": c, "text": c} if isinstance(c, str) else c for c in q["choices"]] \
            if isinstance(q["choices"], list) else None
        if not choices or not all(isinstance(c, dict) and set(c) == {"value", "text"}
                                  and all(isinstance(v, str) and v for v in c.values()) for c in choices):
            raise error(f"questionnaire[{i}].choices must be a non-empty list of texts or {{value, text}}")
        if len({c["value"] for c in choices}) < len(choices):
            raise error(f"questionnaire[{i}].choices repeat a value")
        required = q.get("required", True)
        if not isinstance(required, bool):
            raise error(f"questionnaire[{i}].required must be true or false")
        out.append({"name": name, "label": q["label"], "choices": choices, "required": required})
    return out


def consent_version(config: dict) -> str:
    """The configured version, or a short hash of the consent text: whichever text a
    participant agreed to can be told from the stored version alone."""
    return config.get("consent_version") or hashlib.sha256(config["consent_text"].encode()).hexdigest()[:10]


def outcome_exit(config: dict, outcome: str) -> dict:
    """The code and redirect URL (with `{code}` filled) a participant leaves with."""
    code = config["completion_codes"].get(outcome, "")
    redirect = config["redirect_urls"].get(outcome) or (config["redirect_url"] if outcome in CODED_OUTCOMES else "")
    return {"outcome": outcome, "completion_code": code, "redirect_url": redirect.replace("{code}", code)}


def check_questionnaire_answers(questions: list[dict], answers: dict, require: bool = True) -> dict[str, str]:
    """Per question name, why the answers do not fit the questionnaire (empty when they
    do); unanswered required questions count only with `require`."""
    errors = {}
    known = {q["name"]: q for q in questions}
    for name in sorted(set(answers) - set(known)):
        errors[name] = "not a question of this study"
    for name, q in known.items():
        value = answers.get(name)
        values = [c["value"] for c in q["choices"]]
        if value in (None, ""):
            if q["required"] and require:
                errors[name] = "This question needs an answer."
        elif value not in values:
            errors[name] = f"Invalid choice {value!r}; choose one of: {', '.join(values)}."
    return errors


SERIES_DEFAULTS = {
    "consent_text": "I agree to take part in these studies and for my anonymous answers to be stored.",
    "completion_code": "",
    "redirect_url": "",
    **PARTICIPATION_DEFAULTS,
}


def validate_series(config: dict) -> dict:
    """A series' configuration with defaults filled: its one consent, questionnaire,
    debrief and outcome codes replace those of the studies it runs."""
    if not isinstance(config, dict):
        raise ParticipationConfigError("configuration must be a JSON object")
    unknown = sorted(set(config) - set(SERIES_DEFAULTS))
    if unknown:
        raise ParticipationConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    out = {**SERIES_DEFAULTS, **config}
    for key in ("consent_text", "completion_code", "redirect_url"):
        if not isinstance(out[key], str):
            raise ParticipationConfigError(f"{key} must be of type str, got {out[key]!r}")
    return validate_participation(out)
