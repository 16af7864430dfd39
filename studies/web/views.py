"""Thin page views: look the study (or sample) up, decide what may be shown, render.

The study page carries only what any participant may know before starting (name, kind,
consent and instruction text, playback settings, API addresses); trials and answers are
fetched from the API by static/participant/app.js.
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from attacks.core.data.labels import PARTICIPANT_UNNAMED, label_name
from attacks.models import AdversarialSample

from studies.models import Study, StudySeries
from studies.core.participation_config import NO_CONSENT, consent_version, outcome_exit
from studies.core.payloads import encode_motion
from studies.core.playback import plan

TOKEN_PLACEHOLDER = "__token__"
# Smallest browser window (CSS pixels) in which two motions side by side stay readable.
MIN_WINDOW = {"width": 900, "height": 520}


def study_page(request, slug):
    """The participant app for one study, or a plain page saying why it cannot be taken."""
    study = get_object_or_404(Study, slug=slug)
    if not study.takes_answers:  # a closing study still serves its own participants
        return render(request, "participant/unavailable.html", {"study": study},
                      status=404 if study.status == Study.DRAFT else 410)
    config = study.config
    protocol = study.protocol
    test = is_staff_test(request)
    return render(request, "participant/study.html", {
        "study": study,
        "config": config,
        "test": test,
        "consent_version": study.consent_version,
        "in_series": study.series_entries.exists(),
        "prompt": protocol.PROMPT,
        "instructions_template": protocol.INSTRUCTIONS_TEMPLATE,
        "page_config": {**page_config(study, config), "test": test, "questionnaire": config["questionnaire"]},
        "total_seconds": config["playback_seconds"] * config["repeats"] * config["slow_motion"],
    })


def is_staff_test(request) -> bool:
    """`?test=1` makes a researcher's test participation, for logged-in staff only (the
    start endpoint checks the same again)."""
    return request.GET.get("test") == "1" and request.user.is_authenticated and request.user.is_staff


def declined_page(request, slug):
    """Where 'I do not agree' leads: nothing is stored; the no-consent code and redirect
    (config completion_codes / redirect_urls 'no_consent') where the researcher set them."""
    study = get_object_or_404(Study, slug=slug)
    return render_declined(request, study, study.config)


def render_declined(request, owner, config):
    exit_ = outcome_exit(config, NO_CONSENT)
    exit_["redirect_url"] = fill_redirect(exit_["redirect_url"], request.GET)
    return render(request, "participant/declined.html", {"study": owner, "exit": exit_})


def fill_redirect(raw: str, params) -> str:
    """A redirect URL with {PROLIFIC_PID}, {STUDY_ID}, {SESSION_ID} from the page's query
    filled in (URL-encoded); anything but http(s) is dropped, as app.js does."""
    for key in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        raw = raw.replace("{" + key + "}", quote(params.get(key, "")[:64], safe=""))
    return raw if urlsplit(raw).scheme in ("http", "https") else ""


def series_page(request, slug):
    """One link for a whole series: its consent and questionnaire (static/participant/series.js),
    then each study's own page in turn."""
    series = get_object_or_404(StudySeries, slug=slug)
    config = series.config
    test = is_staff_test(request)
    return render(request, "participant/series.html", {
        "study": series, "series": series, "config": config, "test": test,
        "consent_version": consent_version(config), "parts": series.entries.count(),
        "page_config": {
            "slug": series.slug, "test": test, "questionnaire": config["questionnaire"],
            "api": {"start": reverse("studies:series_start", args=[series.slug]),
                    "state": reverse("studies:series_participation", args=[TOKEN_PLACEHOLDER]),
                    "token_placeholder": TOKEN_PLACEHOLDER}},
    })


def series_declined_page(request, slug):
    series = get_object_or_404(StudySeries, slug=slug)
    return render_declined(request, series, series.config)


def page_config(study: Study, config: dict) -> dict:
    """Public settings for app.js (no answer key: the page is the same for everyone)."""
    api = {
        "start": reverse("studies:start", args=[study.slug]),
        "participation": reverse("studies:participation", args=[TOKEN_PLACEHOLDER]),
        "next": reverse("studies:next", args=[TOKEN_PLACEHOLDER]),
        "answer": reverse("studies:answer", args=[TOKEN_PLACEHOLDER]),
        "complete": reverse("studies:complete", args=[TOKEN_PLACEHOLDER]),
        "token_placeholder": TOKEN_PLACEHOLDER,
    }
    return {
        "slug": study.slug,
        "kind": study.kind,
        "trials": config["trials_per_participant"],
        "practice_trials": config["practice_trials"],
        "playback": {"seconds": config["playback_seconds"], "repeats": config["repeats"],
                     "slow_motion": config["slow_motion"], "pause_seconds": config["repeat_pause_seconds"]},
        "view_labels": study.protocol.VIEW_LABELS,  # e.g. telling that the left motion is the original
        "min_window": MIN_WINDOW,
        "api": api,
    }


@staff_member_required
def sample_preview(request, sample_id):
    """Original and adversarial motion of one AdversarialSample side by side, played by the
    participant player (same framing, same clock), for researchers."""
    sample = get_object_or_404(AdversarialSample.objects.select_related("clip__dataset", "recognizer", "run"),
                               pk=sample_id)
    dataset = sample.clip.dataset
    skeleton = dataset.get_skeleton()
    def label(index):
        return label_name(dataset.class_names, index, PARTICIPANT_UNNAMED)

    try:
        seconds = float(request.GET.get("seconds", 6))
        slow = int(request.GET.get("slow", 1))
    except ValueError:
        seconds, slow = 6.0, 1
    seconds = min(max(seconds, 0.5), 60.0)
    slow = 3 if slow == 3 else 1
    preview = {
        "motions": [encode_motion(sample.original_motion(), sample.fps),
                    encode_motion(sample.adversarial_motion(), sample.fps)],
        "skeleton": {"num_joints": len(skeleton.joints), "bones": [list(b) for b in skeleton.bones], "up": "y"},
        "playback": plan([(sample.num_frames, sample.fps)] * 2,
                         {"playback_seconds": seconds, "repeats": 1, "slow_motion": slow}),
        "view_labels": ["Original", f"Adversarial ({sample.method})"],
    }
    return render(request, "participant/admin_preview.html", {
        "sample": sample, "dataset": dataset, "preview": preview, "seconds": seconds, "slow": slow,
        "label_before": label(sample.label_before), "label_after": label(sample.label_after),
        "label_truth": label(sample.label),
        "title": f"Preview of adversarial sample {sample.pk}",
    })
