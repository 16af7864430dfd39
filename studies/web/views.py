"""Thin page views: look the study (or sample) up, decide what may be shown, render.

The study page carries only what any participant may know before starting (name, kind,
consent and instruction text, playback settings, API addresses); trials and answers are
fetched from the API by static/participant/app.js.
"""
from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from attacks.models import AdversarialSample

from ..models import Study
from ..payloads import encode_motion
from ..playback import plan

TOKEN_PLACEHOLDER = "__token__"
# How each kind labels its viewports (indistinguishability-type studies tell the
# participant that the left motion is the original).
VIEW_LABELS = {
    "deceitfulness": ["Motion"],
    "naturalness": ["Left", "Right"],
    "indistinguishability": ["Left: original", "Right"],
    "comparison": ["Left: original", "Right"],
}
INSTRUCTION_TEMPLATES = {
    "deceitfulness": "participant/instructions/deceitfulness.html",
    "naturalness": "participant/instructions/naturalness.html",
    "indistinguishability": "participant/instructions/indistinguishability.html",
    "comparison": "participant/instructions/indistinguishability.html",
}
# Smallest browser window (CSS pixels) in which two motions side by side stay readable.
MIN_WINDOW = {"width": 900, "height": 520}


def study_page(request, slug):
    """The participant app for one study, or a plain page saying why it cannot be taken."""
    study = get_object_or_404(Study, slug=slug)
    if study.status != Study.OPEN:
        return render(request, "participant/unavailable.html", {"study": study},
                      status=404 if study.status == Study.DRAFT else 410)
    config = study.config
    protocol = study.protocol
    return render(request, "participant/study.html", {
        "study": study,
        "config": config,
        "prompt": protocol.PROMPT,
        "instructions_template": INSTRUCTION_TEMPLATES.get(study.kind, INSTRUCTION_TEMPLATES["deceitfulness"]),
        "page_config": page_config(study, config),
        "total_seconds": config["playback_seconds"] * config["repeats"] * config["slow_motion"],
    })


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
        "view_labels": VIEW_LABELS.get(study.kind, ["Left", "Right"]),
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
    names = dataset.class_names or []

    def label(index):
        return names[index] if 0 <= index < len(names) else f"class {index}"

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
