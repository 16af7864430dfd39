"""Participant-facing rules, one DRF permission each (views compose them).

Views set `view.study` / `view.participant` before permissions run; object
permissions receive the trial an answer is addressed to.
"""
from __future__ import annotations

from django.contrib.auth import get_user
from rest_framework.permissions import BasePermission

from studies.models import Participant, Study


class StudyIsOpen(BasePermission):
    """Answers are taken while the study runs: open, or closing (no newcomers, but those
    who started may finish instead of being stranded mid-study)."""

    message = "This study is not accepting answers (it is not open)."

    def has_permission(self, request, view):
        return view.study.takes_answers


class StudyTakesNewcomers(BasePermission):
    """New participations only in an open study (a closing one lets its own finish)."""

    message = "This study is not taking new participants (it is not open)."

    def has_permission(self, request, view):
        return view.study.status == Study.OPEN


class StudyHasRoom(BasePermission):
    """A study with a target number of participants stops taking new ones at the target
    (abandoned and test participations do not count). Checked for newcomers only: a
    full study still lets its own participants come back and finish."""

    message = "This study has reached its target number of participants."

    def has_permission(self, request, view):
        target = view.study.config["target_participants"]
        if not target or getattr(view, "is_test", False):
            return True
        real = view.study.participants.exclude(status=Participant.ABANDONED).filter(is_test=False, is_simulated=False)
        return real.count() < target


class StaffOnlyTest(BasePermission):
    """A test participation (researcher preview) needs a logged-in staff member: the
    flag keeps it out of every analysis, so nobody else may set it."""

    message = "Test participations are for logged-in staff."

    def has_permission(self, request, view):
        if not getattr(view, "is_test", False):
            return True
        # The session's user: the participant API authenticates nobody (token-only), so
        # DRF's request.user is always anonymous here.
        user = get_user(request._request)
        return bool(user.is_authenticated and user.is_staff)


class ParticipationIsLive(BasePermission):
    """Abandoned participations must be reactivated by the view before answering."""

    message = "This participation has expired."

    def has_permission(self, request, view):
        return view.participant.status != Participant.ABANDONED


class OwnsTrial(BasePermission):
    message = "This trial belongs to another participation."

    def has_object_permission(self, request, view, trial):
        return trial.participant_id == view.participant.id


class TrialReached(BasePermission):
    """Answers arrive in order: the current (first unanswered) trial, or a repeat of an
    already answered one (idempotent retry). The view sets `current_position`, the
    current trial's position (None when every trial is answered)."""

    message = "This trial has not been reached yet; answer the current trial first."

    def has_object_permission(self, request, view, trial):
        if hasattr(trial, "response"):
            return True
        current = view.current_position
        return current is not None and trial.position <= current
